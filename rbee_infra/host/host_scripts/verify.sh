#!/bin/sh
# args: binary path. Prints the `--version` output then the sha256 (after a marker line).
. lib/env.sh
. lib/sha.sh
out=$("$1" --version 2>&1); status=$?
printf '%s\n' "$out"
[ $status -eq 0 ] || exit $status
printf '@@sha256\t%s\n' "$(rbee_sha "$1")"
