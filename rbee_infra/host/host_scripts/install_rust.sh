#!/bin/sh
# A user-local Rust toolchain with rustup (`ensureToolchain`). args: lock, wait, holder,
# rustup-init URL. On failure stderr ends with "@@failed<TAB><step>" (notool | download | install).
. lib/env.sh
. lib/lock.sh
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
