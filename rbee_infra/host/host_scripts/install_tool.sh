#!/bin/sh
# ensureToolchain for what a build script runs (see `buildneeds`), in the user's home, no sudo.
# args: lock, wait, holder, step, then the step's own:
#   toolchain RUSTUP CHANNEL | target RUSTUP TOOLCHAIN TARGET... | pnpm VERSION (npm|corepack)
#   | wasm-pack CARGO
# pnpm goes to npm's user prefix ~/.local (~/.local/bin/pnpm), staged beside it and moved in
# only once it answers --version: a failed install leaves no broken pnpm behind.
# On failure stderr ends with the step's last output lines and "@@failed<TAB><step>".
. lib/env.sh
. lib/lock.sh
rbee_lock "$1" "$2" "$3" || exit $?
step=$4; shift 4
stage=
tmp=$(mktemp -d) || exit 1
: > "$tmp/out"
fail() { tail -n 12 -- "$tmp/out" >&2; rm -rf -- "$tmp" ${stage:+"$stage"}; printf '@@failed\t%s\n' "$step" >&2; exit "$1"; }
# shellcheck disable=SC2088  # a literal "~/" from the config, made absolute here
home() { case $1 in "~/"*) printf '%s' "$HOME/${1#"~/"}";; *) printf '%s' "$1";; esac; }
run() { "$@" >> "$tmp/out" 2>&1 || fail $?; }
export COREPACK_ENABLE_DOWNLOAD_PROMPT=0
case $step in
  toolchain) run "$(home "$1")" toolchain install "$2" --profile minimal;;
  target) r=$(home "$1") tc=$2; shift 2; run "$r" target add --toolchain "$tc" "$@";;
  wasm-pack)
    if command -v wasm-pack >/dev/null 2>&1 || [ -x .cargo/bin/wasm-pack ]; then rm -rf -- "$tmp"; exit 0; fi
    run "$(home "$1")" install wasm-pack --locked;;
  pnpm)
    version=$1 via=$2 bin=.local/bin lib=.local/lib/node_modules
    want=pnpm${version:+@$version}
    if [ -x "$bin/pnpm" ] && got=$("$bin/pnpm" --version 2>/dev/null) && { [ -z "$version" ] || [ "$got" = "$version" ]; }; then
      rm -rf -- "$tmp"; exit 0
    fi
    mkdir -p -- "$bin" "$lib" || fail 1
    stage=$(mktemp -d "$HOME/.local/lib/.rbee-pnpm.XXXXXX") || fail 1
    if [ "$via" = npm ]; then
      # --prefix also moves npm's global config: keep the machine's (its registry, its CA)
      gc=$(npm config get globalconfig 2>>"$tmp/out") || fail $?
      run npm install -g --prefix "$stage" --globalconfig "$gc" --no-fund --no-audit --no-update-notifier "$want"
      shim=$stage/bin
    else
      run corepack enable --install-directory "$stage" pnpm
      run corepack install -g "$want"
      shim=$stage
    fi
    got=$("$shim/pnpm" --version 2>>"$tmp/out") || fail $?
    [ -z "$version" ] || [ "$got" = "$version" ] || { echo "installed pnpm answers --version with '$got'" >> "$tmp/out"; fail 1; }
    if [ "$via" = npm ]; then
      # the shims are relative links into lib/node_modules/pnpm: move the package, then them
      [ ! -e "$lib/pnpm" ] || mv -f -- "$lib/pnpm" "$stage/old" || fail 1
      if ! mv -- "$stage/lib/node_modules/pnpm" "$lib/pnpm"; then
        [ ! -e "$stage/old" ] || mv -f -- "$stage/old" "$lib/pnpm"; fail 1
      fi
    fi
    for name in pnpx pnpm; do
      if [ -L "$shim/$name" ] || [ -f "$shim/$name" ]; then mv -f -- "$shim/$name" "$bin/$name" || fail 1; fi
    done
    rm -rf -- "$stage";;
  *) echo "unknown step" >> "$tmp/out"; fail 2;;
esac
rm -rf -- "$tmp"
