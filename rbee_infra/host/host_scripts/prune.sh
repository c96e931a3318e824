#!/bin/sh
# args: lock, wait, holder, then paths to remove; only paths inside rbee's own directories
# (and the hive's moved-aside hand-made binary) are accepted.
. lib/env.sh
. lib/lock.sh
rbee_lock "$1" "$2" "$3" || exit $?
shift 3
for p in "$@"; do
  case "$p" in
    *..*|*/|*//*) echo "refusing to remove $p" >&2; exit 2;;
    .local/share/rbee/workers/?*|.local/share/rbee/releases/?*|.local/share/rbee/receipts/?*.json) ;;
    .local/bin/rbee-hive.pre-rbee-infra|.local/bin/rbee-hive.pre-rbee-infra.[0-9]*) ;;
    *) echo "refusing to remove $p: outside rbee's directories" >&2; exit 2;;
  esac
done
for p in "$@"; do
  case "$p" in .local/share/rbee/*/*/*) echo "refusing to remove $p" >&2; exit 2;; esac
done
for p in "$@"; do rm -rf -- "$p" || exit 1; printf 'removed\t%s\n' "$p"; done
exit 0
