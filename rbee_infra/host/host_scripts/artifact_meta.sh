#!/bin/sh
# args: artifact dir, binary. Prints the binary's sha256; with a build.json on standard input
# (what was built there, for whom: see artifacts.sh), writes it beside the binary.
. lib/env.sh
. lib/sha.sh
[ -f "$1/$2" ] || { echo "no $2 in $1" >&2; exit 1; }
rbee_sha "$1/$2" || exit 1
cat > "$1/build.json.tmp" || exit 1
if [ -s "$1/build.json.tmp" ]; then mv -f -- "$1/build.json.tmp" "$1/build.json"; else rm -f -- "$1/build.json.tmp"; fi
