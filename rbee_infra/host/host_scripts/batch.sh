#!/bin/sh
# Several scripts in one round trip, in order (see `hostview`). args: for each part, the
# script, the number of its arguments, then those arguments. Each part's stdout is followed by
# lines "@@rbee-stderr", its stderr, "@@rbee-end<TAB><exit status>". The eval'd text is only
# `"${1}" "${2}" ...` (positions, never values).
. lib/env.sh
. lib/git_creds.sh
RBEE_GIT_CREDENTIALS=$(rbee_creds_in) || exit 1
if [ -n "$RBEE_GIT_CREDENTIALS" ]; then
  export RBEE_GIT_CREDENTIALS  # a path: the parts' git calls read the credentials from it
  rbee_creds_cleanup "$RBEE_GIT_CREDENTIALS"
else
  unset RBEE_GIT_CREDENTIALS
fi
exec 3>&1
while [ $# -ge 2 ]; do
  body=$1 n=$2; shift 2
  case $n in ''|*[!0-9]*) echo "bad argument count: $n" >&2; exit 2;; esac
  [ "$n" -le $# ] || { echo "part wants $n arguments, $# left" >&2; exit 2; }
  list='' i=1
  while [ $i -le "$n" ]; do list="$list \"\${$i}\""; i=$((i+1)); done
  # the part's stdout to ours (fd 3), its stderr captured; the command substitution is the
  # only subshell
  err=$(eval "set -- $list"; exec sh -c "$body" rbee "$@" 2>&1 1>&3 3>&- < /dev/null)
  s=$?
  shift "$n"
  printf '\n@@rbee-stderr\n%s\n@@rbee-end\t%s\n' "$err" "$s"
done
