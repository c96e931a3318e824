#!/bin/sh
# Read-only: what sits in rbee's directories, for the hive's extras. args: workers dir,
# releases dir, receipts dir, then other paths to report when present.
. lib/env.sh
w=$1 r=$2 c=$3; shift 3
for f in "$w"/*; do { [ -e "$f" ] || [ -L "$f" ]; } && printf 'worker\t%s\n' "${f##*/}"; done
for f in "$r"/*; do [ -d "$f" ] && printf 'release\t%s\n' "${f##*/}"; done
for f in "$c"/*.json; do [ -f "$f" ] && { n=${f##*/}; printf 'receipt\t%s\n' "${n%.json}"; }; done
for p in "$@"; do
  for f in "$p" "$p".[0-9]*; do { [ -e "$f" ] || [ -L "$f" ]; } && printf 'path\t%s\n' "$f"; done
done
exit 0
