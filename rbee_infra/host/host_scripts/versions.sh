#!/bin/sh
# Read-only, for `rbee-infra status`. args: seconds allowed per `--version`, then stable
# paths. Prints `version<TAB>path<TAB>exit status or -<TAB>base64 of the first output lines`.
. lib/env.sh
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
