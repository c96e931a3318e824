#!/bin/sh
# args: binary. The builds this host keeps for others (`build: {builder: <alias>}`), read-only:
# for each .local/share/rbee/artifacts/<key>/ that holds the binary and its build.json, a line
# `artifact <key> <the binary's sha256 now> <build.json, base64>`.
. lib/env.sh
. lib/sha.sh
bin=$1
for d in .local/share/rbee/artifacts/*/; do
  if [ ! -f "$d$bin" ] || [ ! -f "${d}build.json" ]; then continue; fi
  key=${d%/}; key=${key##*/}
  printf 'artifact\t%s\t%s\t%s\n' "$key" "$(rbee_sha "$d$bin")" "$(base64 < "${d}build.json" | tr -d '\n')"
done
exit 0
