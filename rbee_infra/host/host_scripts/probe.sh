#!/bin/sh
# args: cargo, then triples as for inventory.sh. Everything preflight needs as well (tools,
# cargo/rustc versions, GPUs, free disk, systemd, and what a build script may run: Node.js,
# pnpm, wasm-pack, rustup and the Rust targets installed) in the same round trip; read-only.
. lib/env.sh
. lib/sha.sh
. lib/systemd.sh
. lib/facts.sh
cargo=$1; shift
# shellcheck disable=SC2088  # a literal "~/" from the config, made absolute here
case $cargo in "~/"*) cargo="$HOME/${cargo#"~/"}";; esac
printf 'user\t%s\n' "$(id -un 2>/dev/null)"
printf 'uname\t%s\n' "$(uname -sm 2>/dev/null)"
printf 'os\t%s\n' "$(rbee_os 2>/dev/null)"
printf 'glibc\t%s\n' "$(getconf GNU_LIBC_VERSION 2>/dev/null | sed -n 's/^glibc //p')"
for t in git flock curl wget tar nvidia-smi setsid; do printf 'tool\t%s\t%s\n' "$t" "$(command -v "$t" 2>/dev/null)"; done
nvcc=$(command -v nvcc 2>/dev/null) || nvcc=
[ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
printf 'tool\tnvcc\t%s\n' "$nvcc"
[ -n "$nvcc" ] && printf 'nvcc\t%s\n' "$("$nvcc" --version 2>/dev/null | grep -i 'release' | head -n 1)"
rbee_gpus | while IFS= read -r g; do printf 'gpu\t%s\n' "$g"; done
cargopath=$(command -v "$cargo" 2>/dev/null) || cargopath=
printf 'cargopath\t%s\n' "$cargopath"
printf 'cargo\t%s\n' "$("$cargo" --version 2>/dev/null | head -n 1)"
rustc=rustc
case $cargo in */*) [ -x "${cargo%/*}/rustc" ] && rustc="${cargo%/*}/rustc";; esac
printf 'rustc\t%s\n' "$("$rustc" --version 2>/dev/null | head -n 1)"
printf 'rusthost\t%s\n' "$("$rustc" -vV 2>/dev/null | sed -n 's/^host: //p')"
rbee_build_tools "$cargo" "$cargopath" "$rustc"
printf 'homecargo\t%s\n' "$(.cargo/bin/cargo --version 2>/dev/null | head -n 1)"
printf 'disk\tdata\t%s\n' "$(rbee_free .local/share/rbee)"
printf 'disk\tbin\t%s\n' "$(rbee_free .local/bin)"
if rbee_systemd; then printf 'systemd\tyes\n'; else printf 'systemd\tno\n'; fi
. lib/inventory.sh
