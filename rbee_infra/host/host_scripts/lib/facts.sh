# shellcheck shell=sh
# Host facts for preflight (see `preflight`): rbee_free PATH prints the free KiB of the
# filesystem holding PATH (or its nearest existing parent), rbee_os the OS name, rbee_gpus the
# GPUs nvidia-smi sees, rbee_build_tools CARGO CARGOPATH RUSTC what a build script may run
# (see `buildneeds`): one process per tool found, none for one that is not.
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
# the first line of a command's output ("" when it fails), without another process; corepack's
# shims never download here (the probe is read-only)
rbee_first() { _v=$(COREPACK_ENABLE_NETWORK=0 "$@" 2>/dev/null) || _v=; printf '%s' "${_v%%"$RBEE_NL"*}"; }
RBEE_NL='
'
# `target<TAB>KEY<TAB>TRIPLE` per target with a standard library (libcore) under DIR/lib/rustlib
rbee_targets() {
  for _d in "$1"/lib/rustlib/*/lib; do
    set -- "$1" "$2" "$_d"/libcore-*.rlib
    [ -e "$3" ] || continue
    _t=${_d%/lib}; printf 'target\t%s\t%s\n' "$2" "${_t##*/}"
  done
}
# pnpm's version: an npm-installed pnpm's package.json says it (starting pnpm takes ~1 s);
# another (corepack's shim, a standalone binary) is asked
rbee_pnpm_version() {
  _l=$(readlink -f -- "$1" 2>/dev/null) || _l=
  case $_l in
    */node_modules/pnpm/bin/pnpm.cjs)
      while IFS= read -r _line; do
        case $_line in *'"version":'*) _v=${_line#*'"version":'}; _v=${_v#*'"'}; printf '%s' "${_v%%'"'*}"; return 0;; esac
      done < "${_l%/bin/pnpm.cjs}/package.json";;
  esac
  rbee_first "$1" --version
}
# node and pnpm: ~/.local/bin (npm's user prefix) first, as the build job's PATH has it;
# wasm-pack: on PATH, else ~/.cargo/bin (where `cargo install` puts it)
rbee_build_tools() {
  for _n in node pnpm; do
    if [ -x ".local/bin/$_n" ]; then _p=$HOME/.local/bin/$_n; else _p=$(command -v "$_n" 2>/dev/null) || _p=; fi
    printf 'tool\t%s\t%s\n' "$_n" "$_p"
    if [ "$_n" = pnpm ] && [ -n "$_p" ]; then printf 'pnpm\t%s\n' "$(rbee_pnpm_version "$_p")"
    elif [ -n "$_p" ]; then printf '%s\t%s\n' "$_n" "$(rbee_first "$_p" --version)"; fi
  done
  for _n in npm corepack yarn; do printf 'tool\t%s\t%s\n' "$_n" "$(command -v "$_n" 2>/dev/null)"; done
  _p=$(command -v wasm-pack 2>/dev/null) || _p=
  [ -n "$_p" ] || { [ -x .cargo/bin/wasm-pack ] && _p=$HOME/.cargo/bin/wasm-pack; }
  printf 'tool\twasm-pack\t%s\n' "$_p"
  [ -z "$_p" ] || printf 'wasmpack\t%s\n' "$(rbee_first "$_p" --version)"
  _r=
  case $1 in */*) [ -x "${1%/*}/rustup" ] && _r=${1%/*}/rustup;; esac
  [ -n "$_r" ] || _r=$(command -v rustup 2>/dev/null) || _r=
  [ -n "$_r" ] || { [ -x .cargo/bin/rustup ] && _r=$HOME/.cargo/bin/rustup; }
  printf 'tool\trustup\t%s\n' "$_r"
  # shellcheck disable=SC3013  # dash, bash, busybox and macOS sh all have -ef
  if [ -n "$_r" ] && [ -n "$2" ] && [ "$2" -ef "$_r" ]; then printf 'rustupcargo\tyes\n'; fi
  _s=$(rbee_first "$3" --print sysroot)
  printf 'sysroot\t%s\n' "$_s"
  [ -z "$_s" ] || rbee_targets "$_s" -
  [ -n "$_r" ] || return 0
  for _tc in "${RUSTUP_HOME:-$HOME/.rustup}"/toolchains/*; do
    [ -d "$_tc" ] && rbee_targets "$_tc" "${_tc##*/}"
  done
  return 0
}
