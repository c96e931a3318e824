#!/bin/sh
# args: lock, wait, holder, mode (delete | abort-create | abort-update), stable path, receipt
# path, install id, releases dir of this name, source dir (may be empty), marker, jobs dir,
# then release ids this resource made (removed unless the stable path points at them).
. lib/env.sh
. lib/lock.sh
. lib/build_lock.sh
. lib/release_id.sh
. lib/set_aside.sh
[ -z "$9" ] || rbee_build_lock "$1.build" "$2" "$3" || exit $?
rbee_lock "$1" "$2" "$3" || exit $?
mode=$4 stable=$5 receipt=$6 id=$7 reldir=$8 src=$9; shift 9
marker=$1 jobs=$2; shift 2
for rid in "$@"; do rbee_release_id "${rid%.incoming}" || exit 2; done
owned=0
if [ "$mode" = delete ]; then
  if [ -f "$receipt" ]; then
    grep -qF -- "\"installId\": \"$id\"" "$receipt" && owned=1
  elif [ -L "$stable" ]; then
    case "$(readlink -- "$stable")" in *"/releases/${reldir##*/}/"*) owned=1;; esac
  fi
fi
if [ $owned = 1 ]; then
  case "$(readlink -- "$stable" 2>/dev/null)" in
    *"/releases/${reldir##*/}/"*) rm -f -- "$stable" || exit 1;;
    # not our link (a binary of the user's replaced it): never removed, set aside like the
    # first one (which goes back below, so a lone one stays where it is)
    *) if [ -e "$stable" ] || [ -L "$stable" ]; then rbee_set_aside "$stable" || exit 1; fi;;
  esac
  rm -f -- "$receipt" || exit 1
  rm -rf -- "$reldir" || exit 1
  rbee_put_back "$stable"
else
  current=$(readlink -- "$stable" 2>/dev/null || true)
  for rid in "$@"; do
    # shellcheck disable=SC2115  # $reldir is always given (.local/share/rbee/releases/NAME)
    case "$current" in *"/$rid/"*) ;; *) rm -rf -- "$reldir/$rid" || exit 1;; esac
  done
fi
rm -rf -- "$jobs"
if [ -n "$src" ]; then
  [ "$mode" = abort-update ] || rm -f -- "$marker"
  if [ -z "$(ls -A -- "$src/users" 2>/dev/null)" ]; then rm -rf -- "$src" || exit 1; fi
fi
root=.local/share/rbee
for d in "$reldir" "$root/releases" "$root/workers" "$root/receipts" "$root/build" "$root/jobs"; do
  rmdir -- "$d" 2>/dev/null
done
# shellcheck disable=SC2010  # only asks whether any name but the lock files is left
if ! ls -A -- "$root" 2>/dev/null | grep -qv '^\.lock'; then
  rm -f -- "$root/.lock.holder" "$root/.lock" "$root/.lock.build.holder" "$root/.lock.build"
  rmdir -- "$root" 2>/dev/null
fi
exit 0
