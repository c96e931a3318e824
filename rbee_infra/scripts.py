"""The remote shell scripts. Each is a constant: values reach it only as positional arguments
("$1".."$n", see `ssh.script_command`), so no input can ever become shell syntax.
Every script starts in the SSH user's home; all paths are relative to it (see `layout`).
"""

from __future__ import annotations

_ENV = """
set -u
cd "$HOME" || exit 1
export GIT_TERMINAL_PROMPT=0 GIT_SSH_COMMAND='ssh -o BatchMode=yes' LC_ALL=C
"""

# Bounded wait for the per-host lock; the error names the holder. The inode check makes it
# safe for the last `delete` to remove the lock file.
_LOCK = """
rbee_lock() {
  mkdir -p -- "$(dirname -- "$1")" || return 1
  while :; do
    exec 9>>"$1" || return 1
    if ! flock -w "$2" 9; then
      echo "host lock $1 is still held after $2s by: $(cat -- "$1.holder" 2>/dev/null || echo unknown)" >&2
      return 75
    fi
    [ "$(stat -Lc %i /proc/self/fd/9 2>/dev/null)" = "$(stat -c %i -- "$1" 2>/dev/null)" ] && break
    exec 9>&-
  done
  printf '%s\\n' "$3" > "$1.holder"
}
"""

# The build lock (fd 8, "<host lock>.build"): builds share the checkout and the cargo target
# dir, so they take turns on it; the host lock stays free for activations meanwhile. Order:
# build lock before host lock (BUILD_JOB, REMOVE), so they cannot deadlock.
_BUILD_LOCK = """
rbee_build_lock() {
  mkdir -p -- "$(dirname -- "$1")" || return 1
  while :; do
    exec 8>>"$1" || return 1
    if ! flock -w "$2" 8; then
      echo "build lock $1 is still held after $2s by: $(cat -- "$1.holder" 2>/dev/null || echo unknown)" >&2
      return 75
    fi
    [ "$(stat -Lc %i /proc/self/fd/8 2>/dev/null)" = "$(stat -c %i -- "$1" 2>/dev/null)" ] && break
    exec 8>&-
  done
  printf '%s\\n' "$3" > "$1.holder"
}
"""

# cargo runs from inside the checkout: anchor `~/...` and home-relative paths to $HOME
_ANCHOR_CARGO = """
case $cargo in "~/"*) cargo="$HOME/${cargo#"~/"}";; /*) ;; */*) cargo="$HOME/$cargo";; esac
"""

# A killed job whose parent is gone may stay a zombie where PID 1 does not reap: not alive.
_ALIVE = """
rbee_alive() {
  kill -0 "$1" 2>/dev/null || return 1
  [ -r "/proc/$1/stat" ] || return 0
  case "$(sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f1)" in Z) return 1;; esac
}
"""

# Credentials for git never travel in argv or the environment, which every user of the host
# can read (/proc): `ssh.without_credentials` makes each URL plain and sends the credentials on
# standard input as git-credential-store lines. They go to a file only this user can read,
# which git's own `store` helper reads (the user's helpers are switched off, so none keeps them).
_GIT_CREDS = """
rbee_creds_in() {
  f=$(umask 077 && mktemp) || return 1
  cat > "$f" || { rm -f -- "$f"; return 1; }
  if [ -s "$f" ]; then echo "$f"; else rm -f -- "$f"; fi
}
rbee_git() {
  if [ -n "${RBEE_GIT_CREDENTIALS:-}" ]; then
    git -c credential.helper= -c "credential.helper=store --file=$RBEE_GIT_CREDENTIALS" "$@"
  else
    git "$@"
  fi
}
"""

# A job's pid is ours only while that process is still the job: `sh -c BODY rbee-job JOBDIR`.
# After a reboot or a SIGKILL the pid file may name anything of this user's; a stranger is
# never waited for, reported running, or signalled.
_JOB_ALIVE = _ALIVE + """
rbee_job_alive() {
  case ${1:-} in ''|0|*[!0-9]*) return 1;; esac
  rbee_alive "$1" || return 1
  if [ -r "/proc/$1/cmdline" ]; then
    tr '\\0' '\\n' < "/proc/$1/cmdline" | grep -qxF -- rbee-job || return 1
    tr '\\0' '\\n' < "/proc/$1/cmdline" | grep -qxF -- "$2"
  else
    ps -p "$1" -o command= 2>/dev/null | grep -qF -- "rbee-job $2"
  fi
}
"""

_SHA = """
rbee_sha() { if command -v sha256sum >/dev/null 2>&1; then sha256sum < "$1"; else shasum -a 256 < "$1"; fi | cut -d' ' -f1; }
"""

# `systemctl --user` works here (a user manager is running and reachable)
_SYSTEMD = r"""
rbee_systemd() {
  [ -n "${XDG_RUNTIME_DIR:-}" ] || { d="/run/user/$(id -u)"; [ -d "$d" ] && export XDG_RUNTIME_DIR="$d"; }
  command -v systemctl >/dev/null 2>&1 || return 1
  if command -v timeout >/dev/null 2>&1; then timeout 10 systemctl --user show-environment >/dev/null 2>&1
  else systemctl --user show-environment >/dev/null 2>&1; fi
}
"""

# Host facts for preflight (see `preflight`): free KiB of the filesystem holding a path (or its
# nearest existing parent), the OS name, the GPUs nvidia-smi sees.
_FACTS = r"""
rbee_free() { d=$1; while [ ! -d "$d" ]; do d=$(dirname -- "$d"); done; df -Pk -- "$d" 2>/dev/null | awk 'NR==2 {print $4}'; }
rbee_os() {
  if [ -r /etc/os-release ]; then sed -n 's/^PRETTY_NAME=//p' /etc/os-release | tr -d '"' | head -n 1
  elif command -v sw_vers >/dev/null 2>&1; then printf '%s %s\n' "$(sw_vers -productName)" "$(sw_vers -productVersion)"; fi
}
rbee_gpus() {
  command -v nvidia-smi >/dev/null 2>&1 || return 0
  if command -v timeout >/dev/null 2>&1; then set -- timeout 20; else set --; fi
  "$@" nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 16
}
"""

# What is installed: per (install name, stable path, receipt path) triple, the stable path's
# kind, link target, sha256 and the receipt (base64). Read-only; a few processes per binary.
_INVENTORY = r"""
printf 'home\t%s\n' "$HOME"
while [ $# -ge 3 ]; do
  name=$1 stable=$2 receipt=$3; shift 3
  if [ -L "$stable" ]; then kind=symlink; elif [ -e "$stable" ]; then kind=file; else kind=missing; fi
  link=$(readlink -- "$stable" 2>/dev/null || true)
  sha=-; [ -f "$stable" ] && sha=$(rbee_sha "$stable" 2>/dev/null || echo -)
  rec=; [ -f "$receipt" ] && rec=$(base64 < "$receipt" | tr -d '\n')
  printf 'item\t%s\t%s\t%s\t%s\t%s\n' "$name" "$kind" "$link" "$sha" "$rec"
done
"""

# args: triples of (install name, stable path, receipt path). What a no-op check needs to
# know (receipts and checksums), without the toolchain and platform facts: read-only.
INVENTORY = _ENV + _SHA + _INVENTORY

# args: cargo, then triples as for INVENTORY. Everything preflight needs as well (tools,
# cargo/rustc versions, GPUs, free disk, systemd) in the same round trip; read-only.
PROBE = (
    _ENV
    + _SHA
    + _SYSTEMD
    + _FACTS
    + r"""
cargo=$1; shift
case $cargo in "~/"*) cargo="$HOME/${cargo#"~/"}";; esac
printf 'user\t%s\n' "$(id -un 2>/dev/null)"
printf 'uname\t%s\n' "$(uname -sm 2>/dev/null)"
printf 'os\t%s\n' "$(rbee_os 2>/dev/null)"
for t in git flock curl wget tar nvidia-smi setsid; do printf 'tool\t%s\t%s\n' "$t" "$(command -v "$t" 2>/dev/null)"; done
nvcc=$(command -v nvcc 2>/dev/null) || nvcc=
[ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
printf 'tool\tnvcc\t%s\n' "$nvcc"
[ -n "$nvcc" ] && printf 'nvcc\t%s\n' "$("$nvcc" --version 2>/dev/null | grep -i 'release' | head -n 1)"
rbee_gpus | while IFS= read -r g; do printf 'gpu\t%s\n' "$g"; done
printf 'cargopath\t%s\n' "$(command -v "$cargo" 2>/dev/null)"
printf 'cargo\t%s\n' "$("$cargo" --version 2>/dev/null | head -n 1)"
rustc=rustc
case $cargo in */*) [ -x "${cargo%/*}/rustc" ] && rustc="${cargo%/*}/rustc";; esac
printf 'rustc\t%s\n' "$("$rustc" --version 2>/dev/null | head -n 1)"
printf 'homecargo\t%s\n' "$(.cargo/bin/cargo --version 2>/dev/null | head -n 1)"
printf 'disk\tdata\t%s\n' "$(rbee_free .local/share/rbee)"
printf 'disk\tbin\t%s\n' "$(rbee_free .local/bin)"
if rbee_systemd; then printf 'systemd\tyes\n'; else printf 'systemd\tno\n'; fi
"""
    + _INVENTORY
)

# args: repo, then full ref names to look up. Read-only: safe during preview.
RESOLVE = (
    _ENV
    + _GIT_CREDS
    + r"""
repo=$1; shift
if [ -z "${RBEE_GIT_CREDENTIALS:-}" ]; then
  RBEE_GIT_CREDENTIALS=$(rbee_creds_in) || exit 1
  [ -z "$RBEE_GIT_CREDENTIALS" ] || trap 'rm -f -- "$RBEE_GIT_CREDENTIALS"' EXIT
fi
rbee_git ls-remote -- "$repo" "$@"
"""
)

# The detached build job. args: job dir, lock, lock wait, holder, source dir, marker, repo,
# ref to fetch, expected commit (may be empty), cargo, binary, features (comma list or empty),
# stage dir, fresh (1 = wipe checkout and target first)
BUILD_JOB = (
    _ENV
    + _LOCK
    + _BUILD_LOCK
    + _GIT_CREDS
    + r"""
job=$1 lock=$2 wait=$3 holder=$4 src=$5 marker=$6 repo=$7 ref=$8 commit=$9; shift 9
cargo=$1 bin=$2 features=$3 stage=$4 fresh=$5
RBEE_GIT_CREDENTIALS=
# START_JOB put them there; git runs in the checkout, so the path is made absolute
if [ -f "$job/cred" ]; then case $job in /*) RBEE_GIT_CREDENTIALS=$job/cred;; *) RBEE_GIT_CREDENTIALS=$HOME/$job/cred;; esac; fi
""" + _ANCHOR_CARGO + r"""echo $$ > "$job/pid.tmp" && mv -f -- "$job/pid.tmp" "$job/pid"
finish() { rm -f -- "$job/cred"; echo "end $(date +%s.%N)" >> "$job/times"; echo "$1" > "$job/exit.tmp"; mv -f -- "$job/exit.tmp" "$job/exit"; exit "$1"; }
phase() { echo "$1" > "$job/phase"; echo "$1 $(date +%s.%N)" >> "$job/times"; echo "== $1" >&2; }
phase lock
rbee_build_lock "$lock.build" "$wait" "$holder" || finish $?
# a run holding the host lock keeps builds out too; the build itself does not keep it
rbee_lock "$lock" "$wait" "$holder" || finish $?
exec 9>&-
mkdir -p -- "$src/users" && : > "$marker" || finish 1
phase clone
if [ "$fresh" = 1 ]; then rm -rf -- "$src/checkout" "$src/target"; fi
if [ ! -d "$src/checkout/.git" ]; then
  rm -rf -- "$src/checkout"
  git init -q -- "$src/checkout" || finish $?
fi
if [ -n "$commit" ] && git -C "$src/checkout" cat-file -e "$commit^{commit}" 2>/dev/null; then
  got=$commit  # already here (a sibling's build fetched it): no fetch
else
  rbee_git -C "$src/checkout" fetch -q --depth 1 --no-tags -- "$repo" "$ref" || finish $?
  got=$(git -C "$src/checkout" rev-parse "FETCH_HEAD^{commit}") || finish $?
  if [ -n "$commit" ] && [ "$got" != "$commit" ]; then
    rbee_git -C "$src/checkout" fetch -q --depth 1 --no-tags -- "$repo" "$commit" || finish $?
    got=$commit
  fi
fi
rm -f -- "$job/cred"; RBEE_GIT_CREDENTIALS=
git -C "$src/checkout" checkout -q --force --detach "$got" || finish $?
rm -f -- "$src/checkout/.git/FETCH_HEAD"  # it records the URL, which may carry a token
echo "$got" > "$job/commit"
phase build
if [ -n "$features" ]; then set -- --features "$features"; else set --; fi
(cd -- "$src/checkout" && CARGO_TARGET_DIR="$HOME/$src/target" "$cargo" build --release --bin "$bin" "$@") || finish $?
phase install
rm -rf -- "$stage.incoming" && mkdir -p -- "$stage.incoming" || finish $?
cp -- "$src/target/release/$bin" "$stage.incoming/$bin" && chmod 0755 -- "$stage.incoming/$bin" \
  || finish $?
rm -rf -- "$stage" && mv -f -- "$stage.incoming" "$stage" || finish $?
finish 0
"""
)

# args: job dir, artifact that a finished job leaves, job script, then the job's own args
START_JOB = (
    _ENV
    + _JOB_ALIVE
    + r"""
job=$1 artifact=$2 body=$3; shift 3
if [ -f "$job/exit" ]; then
  if [ "$(cat -- "$job/exit")" = 0 ] && [ -x "$artifact" ]; then echo reuse; exit 0; fi
  rm -rf -- "$job"
elif [ -f "$job/pid" ] && rbee_job_alive "$(cat -- "$job/pid")" "$job"; then
  echo running; exit 0
fi
rm -rf -- "$job" && mkdir -p -- "$job" || exit 1
# git credentials for the job's fetch (see _GIT_CREDS): BATCH's file, else standard input;
# the job removes them once fetched
if [ -n "${RBEE_GIT_CREDENTIALS:-}" ]; then (umask 077 && cp -- "$RBEE_GIT_CREDENTIALS" "$job/cred")
else (umask 077 && cat > "$job/cred"); fi || exit 1
[ -s "$job/cred" ] || rm -f -- "$job/cred"
setsid nohup sh -c "$body" rbee-job "$job" "$@" > "$job/log" 2>&1 < /dev/null &
n=0
while [ ! -f "$job/pid" ] && [ ! -f "$job/exit" ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done
echo started
"""
)

# args: job dir. Blocks until the job ends; prints its exit status, phase and commit.
WAIT_JOB = (
    _ENV
    + _JOB_ALIVE
    + r"""
job=$1
while [ ! -f "$job/exit" ]; do
  pid=$(cat -- "$job/pid" 2>/dev/null || true)
  if ! rbee_job_alive "$pid" "$job"; then
    [ -f "$job/exit" ] && break
    printf 'exit\tlost\n'; exit 0
  fi
  sleep 0.2
done
printf 'exit\t%s\nphase\t%s\ncommit\t%s\ntimes\t%s\n' "$(cat -- "$job/exit")" \
  "$(cat -- "$job/phase" 2>/dev/null)" "$(cat -- "$job/commit" 2>/dev/null)" \
  "$(tr '\n' ';' < "$job/times" 2>/dev/null)"
"""
)

# args: job dir, lines of log to print
JOB_LOG = (
    _ENV
    + r"""
tail -n "$2" -- "$1/log" 2>/dev/null || true
"""
)

# args: job dir. Kills the job's whole process group (it is a session leader).
KILL_JOB = (
    _ENV
    + _JOB_ALIVE
    + r"""
pid=$(cat -- "$1/pid" 2>/dev/null) || exit 0
if rbee_job_alive "$pid" "$1"; then
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  sleep 1; kill -KILL -- "-$pid" 2>/dev/null
fi
echo 124 > "$1/exit"
"""
)

# args: binary path. Prints the `--version` output then the sha256 (after a marker line).
VERIFY = (
    _ENV
    + _SHA
    + r"""
out=$("$1" --version 2>&1); status=$?
printf '%s\n' "$out"
[ $status -eq 0 ] || exit $status
printf '@@sha256\t%s\n' "$(rbee_sha "$1")"
"""
)

# A file of the user's where rbee-infra installs its own: moved to `<path>.pre-rbee-infra`, or,
# when one was saved before, to the first free `<path>.pre-rbee-infra.N` (never over a saved
# one; `$saved` names where it went). `rbee_put_back` restores the first saved one.
_SET_ASIDE = """
rbee_set_aside() {
  saved="$1.pre-rbee-infra" n=0
  while [ -e "$saved" ] || [ -L "$saved" ]; do n=$((n + 1)); saved="$1.pre-rbee-infra.$n"; done
  mv -- "$1" "$saved"
}
rbee_put_back() {
  if [ -e "$1.pre-rbee-infra" ] && [ ! -e "$1" ]; then mv -- "$1.pre-rbee-infra" "$1"; fi
  return 0
}
"""

# args: lock, wait, holder, stable path, link target, receipt path, receipt json,
# releases dir of this name, finished job dir, then the release ids to keep (others are pruned)
ACTIVATE = (
    _ENV
    + _LOCK
    + _SET_ASIDE
    + r"""
rbee_lock "$1" "$2" "$3" || exit $?
stable=$4 target=$5 receipt=$6 json=$7 reldir=$8 job=$9; shift 9
mkdir -p -- "$(dirname -- "$stable")" "$(dirname -- "$receipt")" || exit 1
printf '%s\n' "$json" > "$receipt.tmp.$$" || { rm -f -- "$receipt.tmp.$$"; exit 1; }
previous=$(readlink -- "$stable" 2>/dev/null || true)
moved=0
if [ -e "$stable" ] && [ ! -L "$stable" ]; then
  # a hand-made binary (the first one saved is what `destroy` puts back; later ones are
  # numbered and listed as extras)
  rbee_set_aside "$stable" || { rm -f -- "$receipt.tmp.$$"; exit 1; }
  moved=1
fi
undo() {
  rm -f -- "$receipt.tmp.$$" "$stable.rbee-tmp.$$"
  if [ -n "$previous" ]; then ln -sfn -- "$previous" "$stable"; elif [ $moved = 1 ]; then mv -f -- "$saved" "$stable"; else rm -f -- "$stable"; fi
  exit 1
}
ln -s -- "$target" "$stable.rbee-tmp.$$" || undo
mv -fT -- "$stable.rbee-tmp.$$" "$stable" 2>/dev/null || mv -fh -- "$stable.rbee-tmp.$$" "$stable" || undo
mv -f -- "$receipt.tmp.$$" "$receipt" || undo
for d in "$reldir"/*; do
  [ -d "$d" ] || continue
  keep=0
  for k in "$@"; do [ "${d##*/}" = "$k" ] && keep=1; done
  [ $keep = 1 ] || rm -rf -- "$d"
done
rm -rf -- "$job"
exit 0
"""
)

# args: lock, wait, holder, mode (delete | abort-create | abort-update), stable path, receipt
# path, install id, releases dir of this name, source dir (may be empty), marker, jobs dir,
# then release ids this resource made (removed unless the stable path points at them).
REMOVE = (
    _ENV
    + _LOCK
    + _BUILD_LOCK
    + r"""
[ -z "$9" ] || rbee_build_lock "$1.build" "$2" "$3" || exit $?
rbee_lock "$1" "$2" "$3" || exit $?
mode=$4 stable=$5 receipt=$6 id=$7 reldir=$8 src=$9; shift 9
marker=$1 jobs=$2; shift 2
owned=0
if [ "$mode" = delete ]; then
  if [ -f "$receipt" ]; then
    grep -qF -- "\"installId\": \"$id\"" "$receipt" && owned=1
  elif [ -L "$stable" ]; then
    case "$(readlink -- "$stable")" in *"/releases/${reldir##*/}/"*) owned=1;; esac
  fi
fi
if [ $owned = 1 ]; then
  rm -f -- "$stable" "$receipt" || exit 1
  rm -rf -- "$reldir" || exit 1
  if [ -e "$stable.pre-rbee-infra" ]; then mv -f -- "$stable.pre-rbee-infra" "$stable"; fi
else
  current=$(readlink -- "$stable" 2>/dev/null || true)
  for rid in "$@"; do
    case "$current" in *"/$rid/"*) ;; *) rm -rf -- "$reldir/$rid" || exit 1;; esac
  done
fi
rm -rf -- "$jobs"
if [ -n "$src" ]; then
  [ "$mode" = abort-update ] || rm -f -- "$marker"
  if [ -z "$(ls -A -- "$src/users" 2>/dev/null)" ]; then rm -rf -- "$src" || exit 1; fi
fi
root=.local/share/rbee
for d in "$reldir" "$root/releases" "$root/workers" "$root/receipts" "$root/build" "$root/jobs"; do
  rmdir -- "$d" 2>/dev/null
done
if [ -z "$(ls -A -- "$root" 2>/dev/null | grep -v '^\.lock')" ]; then
  rm -f -- "$root/.lock.holder" "$root/.lock" "$root/.lock.build.holder" "$root/.lock.build"
  rmdir -- "$root" 2>/dev/null
fi
exit 0
"""
)

# Read-only, for `rbee-infra status`. args: seconds allowed per `--version`, then stable
# paths. Prints `version<TAB>path<TAB>exit status or -<TAB>base64 of the first output lines`.
VERSIONS = (
    _ENV
    + r"""
secs=$1; shift
for p in "$@"; do
  if [ -f "$p" ] && [ -x "$p" ]; then
    if command -v timeout >/dev/null 2>&1; then
      out=$(timeout "$secs" "$p" --version 2>&1 < /dev/null); st=$?
    else
      out=$("$p" --version 2>&1 < /dev/null); st=$?
    fi
    printf 'version\t%s\t%s\t%s\n' "$p" "$st" "$(printf '%s\n' "$out" | head -n 5 | base64 | tr -d '\n')"
  else
    printf 'version\t%s\t-\t\n' "$p"
  fi
done
"""
)

# GET the URL read from stdin (never an argument: a token in it would show in `ps`) into a
# file. Prints "@@http<TAB><status>" on stderr; returns the tool's exit status.
_GET = r"""
rbee_get() {
  code=
  if [ "$1" = curl ]; then
    code=$(sed 's/^/url = "/; s/$/"/' | curl -sS --fail --location --connect-timeout 30 --speed-time 120 --speed-limit 1 -K - -o "$2" -w '%{http_code}')
    s=$?
  else
    # wget sends a bare token (`https://TOKEN@host`) only when it is written `TOKEN:`
    sed 's#^\([A-Za-z][A-Za-z0-9+.-]*://[^/:@]*\)@#\1:@#' \
      | wget --tries=1 --timeout=60 --auth-no-challenge --progress=dot:giga -i - -O "$2" 2> "$2.log"
    s=$?
    code=$(sed -n 's/.*ERROR \([0-9][0-9][0-9]\).*/\1/p' "$2.log" | tail -n 1)
    [ $s -eq 0 ] || grep -E 'ERROR|Giving up|failed|unable|Unable|closed' "$2.log" | tail -n 3 >&2
    rm -f -- "$2.log"
  fi
  printf '@@http\t%s\n' "${code:-000}" >&2
  return $s
}
"""

# Read-only: a small text file (a published checksum). args: tool (curl | wget); URL on stdin.
FETCH_TEXT = (
    _ENV
    + _GET
    + r"""
tmp=$(mktemp -d) || exit 1
rbee_get "$1" "$tmp/body"; s=$?
[ $s -eq 0 ] && head -c 1048576 -- "$tmp/body"
rm -rf -- "$tmp"
exit $s
"""
)

# Download a release asset on the host, check its sha256, unpack it if it is a .tar.gz, and
# only then move it into the release dir. args: lock, wait, holder, tool, stage dir, asset
# name, expected sha256, binary, archive (1 | 0); URL on stdin. On failure nothing is left and
# stderr ends with "@@failed<TAB><step>" (download | checksum | unpack | missing | place).
DOWNLOAD_RELEASE = (
    _ENV
    + _LOCK
    + _SHA
    + _GET
    + r"""
rbee_lock "$1" "$2" "$3" || exit $?
tool=$4 stage=$5 asset=$6 sha=$7 bin=$8 archive=$9
inc="$stage.incoming"
fail() { rm -rf -- "$inc"; printf '@@failed\t%s\n' "$1" >&2; exit "$2"; }
rm -rf -- "$inc" && mkdir -p -- "$inc" || fail place 1
rbee_get "$tool" "$inc/$asset" || fail download $?
got=$(rbee_sha "$inc/$asset") || fail checksum 1
if [ "$got" != "$sha" ]; then printf '@@sha256\t%s\n' "$got" >&2; fail checksum 65; fi
if [ "$archive" = 1 ]; then
  mkdir -- "$inc/.unpack" && tar -xzf "$inc/$asset" -C "$inc/.unpack" || fail unpack $?
  found=$(find "$inc/.unpack" -type f -name "$bin" | head -n 1)
  [ -n "$found" ] || fail missing 66
  mv -f -- "$found" "$inc/.bin" && rm -rf -- "$inc/.unpack" "$inc/$asset" \
    && mv -f -- "$inc/.bin" "$inc/$bin" || fail place 1
elif [ "$asset" != "$bin" ]; then
  mv -f -- "$inc/$asset" "$inc/$bin" || fail place 1
fi
chmod 0755 -- "$inc/$bin" || fail place 1
rm -rf -- "$stage" && mv -f -- "$inc" "$stage" || fail place 1
exit 0
"""
)

# Before an SFTP upload: an empty "<stage>.incoming". args: lock, wait, holder, stage dir
PREPARE_UPLOAD = (
    _ENV
    + _LOCK
    + r"""
rbee_lock "$1" "$2" "$3" || exit $?
rm -rf -- "$4.incoming" && mkdir -p -- "$4.incoming"
"""
)

# After an SFTP upload: check the sha256 on the host, then move it into the release dir.
# args: lock, wait, holder, stage dir, binary, expected sha256
PLACE_UPLOAD = (
    _ENV
    + _LOCK
    + _SHA
    + r"""
rbee_lock "$1" "$2" "$3" || exit $?
stage=$4 bin=$5 sha=$6
inc="$stage.incoming"
fail() { rm -rf -- "$inc"; printf '@@failed\t%s\n' "$1" >&2; exit "$2"; }
got=$(rbee_sha "$inc/$bin") || fail checksum 1
if [ "$got" != "$sha" ]; then printf '@@sha256\t%s\n' "$got" >&2; fail checksum 65; fi
chmod 0755 -- "$inc/$bin" || fail place 1
rm -rf -- "$stage" && mv -f -- "$inc" "$stage" || fail place 1
exit 0
"""
)

# Read-only: what sits in rbee's directories, for the hive's extras. args: workers dir,
# releases dir, receipts dir, then other paths to report when present.
EXTRAS_SCAN = (
    _ENV
    + r"""
w=$1 r=$2 c=$3; shift 3
for f in "$w"/*; do { [ -e "$f" ] || [ -L "$f" ]; } && printf 'worker\t%s\n' "${f##*/}"; done
for f in "$r"/*; do [ -d "$f" ] && printf 'release\t%s\n' "${f##*/}"; done
for f in "$c"/*.json; do [ -f "$f" ] && { n=${f##*/}; printf 'receipt\t%s\n' "${n%.json}"; }; done
for p in "$@"; do
  for f in "$p" "$p".[0-9]*; do { [ -e "$f" ] || [ -L "$f" ]; } && printf 'path\t%s\n' "$f"; done
done
exit 0
"""
)

# args: lock, wait, holder, then paths to remove; only paths inside rbee's own directories
# (and the hive's moved-aside hand-made binary) are accepted.
PRUNE = (
    _ENV
    + _LOCK
    + r"""
rbee_lock "$1" "$2" "$3" || exit $?
shift 3
for p in "$@"; do
  case "$p" in
    *..*|*/|*//*) echo "refusing to remove $p" >&2; exit 2;;
    .local/share/rbee/workers/?*|.local/share/rbee/releases/?*|.local/share/rbee/receipts/?*.json) ;;
    .local/bin/rbee-hive.pre-rbee-infra|.local/bin/rbee-hive.pre-rbee-infra.[0-9]*) ;;
    *) echo "refusing to remove $p: outside rbee's directories" >&2; exit 2;;
  esac
done
for p in "$@"; do
  case "$p" in .local/share/rbee/*/*/*) echo "refusing to remove $p" >&2; exit 2;; esac
done
for p in "$@"; do rm -rf -- "$p" || exit 1; printf 'removed\t%s\n' "$p"; done
exit 0
"""
)

# The hive as a service (see `service`): a systemd user unit where `systemctl --user` works,
# else a background process with a pid file. `rbee_ours` accepts a pid only when it is this
# user's rbee-hive started from the stable path, so a stale pid file never kills a stranger.
_SERVICE = r"""
unit_name=rbee-hive.service
unit=.config/systemd/user/rbee-hive.service
pidf=.local/share/rbee/hive.pid
log=.local/share/rbee/hive.log
hive="$HOME/.local/bin/rbee-hive"
rbee_ours() {
  case ${1:-} in ''|0|*[!0-9]*) return 1;; esac
  kill -0 "$1" 2>/dev/null || return 1
  if [ -r "/proc/$1/cmdline" ]; then a0=$(tr '\0' '\n' < "/proc/$1/cmdline" | head -n 1)
  else a0=$(ps -p "$1" -o command= 2>/dev/null | cut -d' ' -f1); fi
  [ "$a0" = "$hive" ]
}
# Until a process is a zombie or reaped it may still hold its port: an exiting process loses its
# cmdline before it closes its files, so rbee_ours turns false too early to wait on.
rbee_running() {
  kill -0 "$1" 2>/dev/null || return 1
  if [ -r "/proc/$1/stat" ]; then st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
  else st=$(ps -p "$1" -o stat= 2>/dev/null | tr -d ' ' | cut -c1); fi
  [ "$st" != Z ]
}
# What rbee-infra wrote carries a mark (first line); anything else in its place is the user's:
# set aside (see _SET_ASIDE) and put back by a purge.
rbee_unit_mine() {
  [ -f "$unit" ] || return 1
  head -n 1 -- "$unit" | grep -q '^# rbee-infra managed unit' && return 0
  grep -qxF 'Description=rbee hive (installed by rbee-infra)' -- "$unit"  # before the mark
}
rbee_log_mine() { head -n 1 -- "$1" 2>/dev/null | grep -Eq '^== (rbee-infra|[0-9]{4}-)'; }
rbee_pid() {
  if rbee_unit_mine && rbee_systemd; then
    mode=systemd; pid=$(systemctl --user show -p MainPID --value "$unit_name" 2>/dev/null || true)
  else
    mode=pidfile; pid=$(cat -- "$pidf" 2>/dev/null || true)
  fi
}
rbee_listening() {
  if command -v ss >/dev/null 2>&1; then
    if ss -ltnp 2>/dev/null | grep -E "[:.]$1[[:space:]]" | grep -q "pid=$2,"; then echo yes; else echo no; fi
  elif command -v lsof >/dev/null 2>&1; then
    if lsof -nP -a -p "$2" -iTCP:"$1" -sTCP:LISTEN >/dev/null 2>&1; then echo yes; else echo no; fi
  elif command -v bash >/dev/null 2>&1; then
    if bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' rbee "$1" 2>/dev/null; then echo yes; else echo no; fi
  else
    echo unknown
  fi
}
# rbee-hive's own health check: GET /health on 127.0.0.1 (it binds nothing else) answers `ok`.
# Prints "ok", "fail <status> <first line of the body>" or "unknown" (no curl and no bash).
rbee_health() {
  if command -v curl >/dev/null 2>&1; then
    got=$(curl -s -m 5 -w '\n%{http_code}' "http://127.0.0.1:$1/health" 2>/dev/null)
    code=$(printf '%s\n' "$got" | tail -n 1); body=$(printf '%s\n' "$got" | sed '$d')
  elif command -v bash >/dev/null 2>&1; then
    got=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
      printf "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3; cat <&3' rbee "$1" 2>/dev/null \
      | tr -d '\r')
    code=$(printf '%s\n' "$got" | head -n 1 | cut -d' ' -f2); body=$(printf '%s\n' "$got" | sed '1,/^$/d')
  else
    echo unknown; return 0
  fi
  body=$(printf '%s' "$body" | head -n 1 | cut -c1-200)
  if [ "$code" = 200 ] && [ "$body" = ok ]; then echo ok; else echo "fail ${code:-000} $body"; fi
}
rbee_stop() {
  if rbee_unit_mine && rbee_systemd; then
    systemctl --user stop "$unit_name" >/dev/null 2>&1
    [ "$1" = 1 ] && systemctl --user disable "$unit_name" >/dev/null 2>&1
  fi
  if [ "$1" = 1 ] && rbee_unit_mine; then
    rm -f -- "$unit"
    rbee_put_back "$unit"
    rbee_systemd && systemctl --user daemon-reload >/dev/null 2>&1
  fi
  old=$(cat -- "$pidf" 2>/dev/null || true)
  if rbee_ours "$old"; then
    kill -TERM "$old" 2>/dev/null
    n=0; while rbee_running "$old" && [ $n -lt 50 ]; do sleep 0.2; n=$((n+1)); done
    if rbee_running "$old"; then
      kill -KILL "$old" 2>/dev/null
      n=0; while rbee_running "$old" && [ $n -lt 25 ]; do sleep 0.2; n=$((n+1)); done
    fi
    printf 'stopped\t%s\n' "$old"
  fi
  rm -f -- "$pidf"
  if [ "$1" = 1 ]; then
    for f in "$log" "$log.1"; do rbee_log_mine "$f" && rm -f -- "$f"; done
    rbee_put_back "$log"
  fi
  return 0
}
"""

# Read-only when wait is 0. args: port, seconds to wait for the hive to run and listen. Prints
# mode, pid, running, listening; exits 0 when healthy, else 1 (after the last log lines).
HEALTH = (
    _ENV
    + _SYSTEMD
    + _SET_ASIDE
    + _SERVICE
    + r"""
port=$1 wait=$2
n=0; limit=$((wait * 5))
while :; do
  rbee_pid
  running=no listening=no health=unknown
  if rbee_ours "$pid"; then running=yes; listening=$(rbee_listening "$port" "$pid"); fi
  [ $running = yes ] && [ "$listening" != no ] && health=$(rbee_health "$port")
  [ $running = yes ] && [ "$listening" != no ] && [ "${health%% *}" != fail ] && break
  [ $n -ge $limit ] && break
  # a pid-file hive that exited does not come back
  [ $mode = pidfile ] && [ $running = no ] && [ $n -ge 2 ] && break
  n=$((n+1)); sleep 0.2
done
printf 'mode\t%s\npid\t%s\nrunning\t%s\nlistening\t%s\nport\t%s\nhealth\t%s\n' \
  "$mode" "$pid" "$running" "$listening" "$port" "$health"
[ $running = yes ] && [ "$listening" != no ] && [ "${health%% *}" != fail ] && exit 0
if [ "$wait" != 0 ]; then
  if [ $mode = systemd ]; then
    journalctl --user -u "$unit_name" -n 20 --no-pager 2>/dev/null | sed 's/^/log\t/'
  else
    tail -n 20 -- "$log" 2>/dev/null | sed 's/^/log\t/'
  fi
fi
exit 1
"""
)

# args: mode (systemd | pidfile), port, unit file text (systemd), hive id, queen URL (may be
# empty). Stops whatever runs now, then starts
# ~/.local/bin/rbee-hive --port PORT --hive-id ID [--queen-url URL]; `HEALTH` says whether it
# came up.
START_SERVICE = (
    _ENV
    + _SYSTEMD
    + _SET_ASIDE
    + _SERVICE
    + r"""
mode=$1 port=$2 text=$3 hive_id=$4 queen=$5
rbee_stop 0
[ -x "$hive" ] || { echo "$hive is missing" >&2; exit 1; }
mkdir -p -- .local/share/rbee || exit 1
if [ "$mode" = systemd ]; then
  rbee_systemd || { echo "systemctl --user is not available" >&2; exit 1; }
  mkdir -p -- "$(dirname -- "$unit")" || exit 1
  if [ -f "$unit" ] && ! rbee_unit_mine; then rbee_set_aside "$unit" || exit 1; fi
  printf '%s' "$text" > "$unit.tmp" && mv -f -- "$unit.tmp" "$unit" || exit 1
  systemctl --user daemon-reload || exit $?
  systemctl --user enable "$unit_name" 2>&1 || exit $?
  systemctl --user restart "$unit_name" || exit $?
  echo started
  exit 0
fi
if [ -f "$log" ]; then
  if rbee_log_mine "$log"; then mv -f -- "$log" "$log.1"; else rbee_set_aside "$log" || exit 1; fi
fi
printf '== rbee-infra %s: %s --port %s --hive-id %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  "$(readlink -- "$hive")" "$port" "$hive_id" > "$log"
if command -v setsid >/dev/null 2>&1; then set -- setsid nohup; else set -- nohup; fi
"$@" sh -c 'p=$1 h=$2; shift 2; echo $$ > "$p.tmp" && mv -f -- "$p.tmp" "$p" && exec "$h" "$@"' \
  rbee-hive "$pidf" "$hive" --port "$port" --hive-id "$hive_id" ${queen:+--queen-url "$queen"} \
  >> "$log" 2>&1 < /dev/null &
n=0; while [ ! -s "$pidf" ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done
[ -s "$pidf" ] || { echo "no pid file after 5s; see ~/$log" >&2; exit 1; }
echo started
"""
)

# args: purge (1: also disable and remove the unit file and the logs). Stops the hive (unit or
# pid file); a pid that is not our rbee-hive is never signalled.
STOP_SERVICE = (
    _ENV
    + _SYSTEMD
    + _SET_ASIDE
    + _SERVICE
    + r"""
rbee_stop "$1"
exit 0
"""
)

# A user-local Rust toolchain with rustup (`ensureToolchain`). args: lock, wait, holder,
# rustup-init URL. On failure stderr ends with "@@failed<TAB><step>" (notool | download | install).
INSTALL_RUST = (
    _ENV
    + _LOCK
    + r"""
rbee_lock "$1" "$2" "$3" || exit $?
url=$4
if .cargo/bin/cargo --version 2>/dev/null; then exit 0; fi
tmp=$(mktemp -d) || exit 1
fail() { tail -n "$3" -- "$tmp/err" >&2; rm -rf -- "$tmp"; printf '@@failed\t%s\n' "$1" >&2; exit "$2"; }
: > "$tmp/err"
if command -v curl >/dev/null 2>&1; then
  curl --proto '=https' --tlsv1.2 -sSf --connect-timeout 30 -o "$tmp/rustup-init.sh" -- "$url" 2> "$tmp/err"
elif command -v wget >/dev/null 2>&1; then
  wget --https-only --secure-protocol=TLSv1_2 --tries=1 --timeout=30 -nv -O "$tmp/rustup-init.sh" -- "$url" 2> "$tmp/err"
else
  fail notool 127 0
fi
s=$?; [ $s -eq 0 ] || fail download $s 3
sh "$tmp/rustup-init.sh" -y --no-modify-path --profile minimal > "$tmp/err" 2>&1 || fail install $? 15
rm -rf -- "$tmp"
.cargo/bin/cargo --version
"""
)

# Several scripts in one round trip, in order (see `hostview`). args: for each part, the
# script, the number of its arguments, then those arguments. Each part's stdout is followed by
# lines "@@rbee-stderr", its stderr, "@@rbee-end<TAB><exit status>". The eval'd text is only
# `"${1}" "${2}" ...` (positions, never values).
BATCH = (
    _ENV
    + _GIT_CREDS
    + r"""
RBEE_GIT_CREDENTIALS=$(rbee_creds_in) || exit 1
if [ -n "$RBEE_GIT_CREDENTIALS" ]; then
  export RBEE_GIT_CREDENTIALS  # a path: the parts' git calls read the credentials from it
  trap 'rm -f -- "$RBEE_GIT_CREDENTIALS"' EXIT
else
  unset RBEE_GIT_CREDENTIALS
fi
exec 3>&1
while [ $# -ge 2 ]; do
  body=$1 n=$2; shift 2
  case $n in ''|*[!0-9]*) echo "bad argument count: $n" >&2; exit 2;; esac
  [ "$n" -le $# ] || { echo "part wants $n arguments, $# left" >&2; exit 2; }
  list= i=1
  while [ $i -le "$n" ]; do list="$list \"\${$i}\""; i=$((i+1)); done
  err=$( (eval "set -- $list"; exec sh -c "$body" rbee "$@") 2>&1 1>&3 3>&- < /dev/null )
  s=$?
  shift "$n"
  printf '\n@@rbee-stderr\n%s\n@@rbee-end\t%s\n' "$err" "$s"
done
"""
)
