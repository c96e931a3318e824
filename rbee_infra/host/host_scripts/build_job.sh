#!/bin/sh
# The detached build job (started by start_job.sh). args: job dir, lock, lock wait, holder,
# source dir, marker, repo, ref to fetch, expected commit (may be empty), cargo, binary,
# features (comma list or empty), stage dir, fresh (1 = wipe checkout and target first), build
# mode (see `buildneeds`: "" | path | pnpm | npm; set: ~/.local/bin first and ~/.cargo/bin last
# on PATH for the build script's tools; pnpm/npm: the workspace install runs first, phase deps).
# When the fetched ref is not the expected commit, it fails in phase clone with exit 3 and
# the commit it fetched in "$job/commit". Standard input: git credentials for the fetch
# (start_job.sh's pipe), written to "$job/cred" only once the build lock is held.
. lib/env.sh
. lib/lock.sh
. lib/build_lock.sh
. lib/git_creds.sh
. lib/release_id.sh
. lib/sha.sh
job=$1 lock=$2 wait=$3 holder=$4 src=$5 marker=$6 repo=$7 ref=$8 commit=$9; shift 9
cargo=$1 bin=$2 features=$3 stage=$4 fresh=$5 mode=${6:-}
RBEE_GIT_CREDENTIALS=
# cargo runs from inside the checkout: anchor `~/...` and home-relative paths to $HOME
# shellcheck disable=SC2088  # a literal "~/" from the config, made absolute here
case $cargo in "~/"*) cargo="$HOME/${cargo#"~/"}";; /*) ;; */*) cargo="$HOME/$cargo";; esac
# a cargo given by path builds with the rustc beside it (the one preflight asked), never with
# another toolchain's rustc that PATH finds first: mixed, they refuse each other's crates
case $cargo in */*) if [ -x "${cargo%/*}/rustc" ]; then RUSTC=${cargo%/*}/rustc; export RUSTC; fi;; esac
echo $$ > "$job/pid.tmp" && mv -f -- "$job/pid.tmp" "$job/pid"
printf '%s\n%s\n' "$holder" "$bin" > "$job/about"  # whose build this is (jobs.sh)
finish() { rm -f -- "$job/cred"; echo "end $(date +%s.%N)" >> "$job/times"; echo "$1" > "$job/exit.tmp"; mv -f -- "$job/exit.tmp" "$job/exit"; exit "$1"; }
# a signal (kill_job.sh's TERM) ends the job as before (kill_job.sh records its status), and
# the credentials go with it
rbee_creds_cleanup "$job/cred"
phase() { echo "$1" > "$job/phase"; echo "$1 $(date +%s.%N)" >> "$job/times"; echo "== $1" >&2; }
rbee_release_dir "$stage" || finish 2
phase lock
rbee_build_lock "$lock.build" "$wait" "$holder" || finish $?
# a run holding the host lock keeps builds out too; the build itself does not keep it
rbee_lock "$lock" "$wait" "$holder" || finish $?
exec 9>&-
{ mkdir -p -- "$src/users" && : > "$marker"; } || finish 1
phase clone
# the credentials, written down only now that the build lock is held (git runs in the
# checkout, so the path is absolute)
{ (umask 077 && cat > "$job/cred") && [ -s "$job/cred" ]; } || rm -f -- "$job/cred"
if [ -f "$job/cred" ]; then case $job in /*) RBEE_GIT_CREDENTIALS=$job/cred;; *) RBEE_GIT_CREDENTIALS=$HOME/$job/cred;; esac; fi
if [ "$fresh" = 1 ]; then rm -rf -- "$src/checkout" "$src/target"; fi
if [ ! -d "$src/checkout/.git" ]; then
  rm -rf -- "$src/checkout"
  git init -q -- "$src/checkout" || finish $?
fi
if [ -n "$commit" ] && git -C "$src/checkout" cat-file -e -- "$commit^{commit}" 2>/dev/null; then
  got=$commit  # already here (a sibling's build fetched it): no fetch
else
  # only the ref is ever fetched (a configured rev is its own ref), never a commit id the
  # ref does not name now: what is built is what the host's own fetch of the ref says
  rbee_git -C "$src/checkout" fetch -q --depth 1 --no-tags -- "$repo" "$ref" || finish $?
  got=$(git -C "$src/checkout" rev-parse --verify -q "FETCH_HEAD^{commit}") || finish $?
  case $got in
    "$commit"*) ;;
    *) rm -f -- "$job/cred" "$src/checkout/.git/FETCH_HEAD"
       echo "$got" > "$job/commit"
       echo "$ref moved: expected $commit, fetched $got" >&2
       finish 3;;
  esac
fi
rm -f -- "$job/cred"; RBEE_GIT_CREDENTIALS=
git -C "$src/checkout" checkout -q --force --detach "$got" || finish $?
rm -f -- "$src/checkout/.git/FETCH_HEAD"  # it records the URL, which may carry a token
echo "$got" > "$job/commit"
if [ -n "$mode" ]; then
  case $cargo in */*) ;; *) cargo=$(command -v "$cargo") || finish 127;; esac
  PATH=$HOME/.local/bin:$PATH:$HOME/.cargo/bin; export PATH
fi
case $mode in
  pnpm) phase deps; (cd -- "$src/checkout" && pnpm install --frozen-lockfile) || finish $?;;
  npm) phase deps; (cd -- "$src/checkout" && npm ci) || finish $?;;
esac
phase build
# --locked: the tree's own Cargo.lock, else the one the stack keeps for this commit (put_lock.sh);
# with neither, cargo resolves the dependencies and writes one
locked=
if git -C "$src/checkout" cat-file -e -- "$got:Cargo.lock" 2>/dev/null; then locked=--locked
elif [ -f "$src/locks/$got.lock" ]; then
  cp -f -- "$src/locks/$got.lock" "$src/checkout/Cargo.lock" || finish $?; locked=--locked
fi
if [ -n "$features" ]; then set -- --features "$features"; else set --; fi
(cd -- "$src/checkout" && CARGO_TARGET_DIR="$HOME/$src/target" "$cargo" build --release $locked --bin "$bin" "$@") || finish $?
if [ -f "$src/checkout/Cargo.lock" ]; then rbee_sha "$src/checkout/Cargo.lock" > "$job/lock.sha256"; fi
# the package versions at this commit (the install records its binary's; best effort)
(cd -- "$src/checkout" && "$cargo" metadata --no-deps --format-version 1 --offline) \
  > "$job/metadata.json" 2> /dev/null || rm -f -- "$job/metadata.json"
phase install
{ rm -rf -- "$stage.incoming" && mkdir -p -- "$stage.incoming"; } || finish $?
{ cp -- "$src/target/release/$bin" "$stage.incoming/$bin" && chmod 0755 -- "$stage.incoming/$bin"; } \
  || finish $?
{ rm -rf -- "$stage" && mv -f -- "$stage.incoming" "$stage"; } || finish $?
finish 0
