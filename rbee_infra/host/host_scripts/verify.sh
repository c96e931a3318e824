#!/bin/sh
# Runs a binary to see that it works (judged by `decide/verify`). args: seconds allowed per
# run, binary path, binary name, 1 to print its sha256, a cargo metadata file to print (or
# empty), then the configured check's arguments. Without those: `--version`, and `--help` too
# unless `--version` exited 0 with the binary's name in its first line. Prints one line per
# run, `@@run<TAB>check<TAB>exit status<TAB>base64 of its output`, then `@@sha256<TAB>...`
# and `@@metadata<TAB><the file's text on one line>`. A missing binary is not run.
. lib/env.sh
. lib/sha.sh
secs=$1 path=$2 name=$3 hash=$4 meta=$5; shift 5
case $path in */*) ;; *) path=./$path;; esac  # a path, never a command looked up on PATH
run() {
  label=$1; shift
  if command -v timeout >/dev/null 2>&1; then
    out=$(timeout "$secs" "$path" "$@" 2>&1 < /dev/null); st=$?
  else
    out=$("$path" "$@" 2>&1 < /dev/null); st=$?
  fi
  printf '@@run\t%s\t%s\t%s\n' "$label" "$st" \
    "$(printf '%s\n' "$out" | head -n 200 | base64 | tr -d '\n')"
}
if [ -f "$path" ] && [ -x "$path" ]; then
  if [ $# -gt 0 ]; then
    run configured "$@"
  else
    run --version --version
    first=$(printf '%s\n' "$out" | sed -n '/[^[:space:]]/{p;q;}')
    case "$st:$first" in 0:*"$name"*) ;; *) run --help --help;; esac
  fi
fi
[ "$hash" = 1 ] && [ -f "$path" ] && printf '@@sha256\t%s\n' "$(rbee_sha "$path")"
[ -n "$meta" ] && [ -s "$meta" ] && printf '@@metadata\t%s\n' "$(tr -d '\n' < "$meta")"
exit 0
