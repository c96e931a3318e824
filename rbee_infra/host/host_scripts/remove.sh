#!/bin/sh
# args: lock, wait, holder, mode, stable path, receipt path, install id, releases dir of this
# name, source dir (may be empty), marker, jobs dir, build lock wait (seconds, or "now"), then
# release ids this resource made (removed unless the stable path points at them). Modes:
# `delete` (the resource goes: its files, and the build cache once no resource uses it),
# `undo-create` (a create that was activated but did not start: its files, not the build
# cache), `abort-create` and `abort-update` (a failed install: the release ids given and the
# jobs). Only `delete` ever removes a checkout and its cargo target dir: after a failure the
# next build is incremental. The build lock guards the shared checkout; a delete with "now"
# never waits for another resource's build (minutes): while one holds the lock, the checkout
# is in use and stays.
. lib/env.sh
. lib/lock.sh
. lib/build_lock.sh
. lib/release_id.sh
. lib/set_aside.sh
keep_src=1
if [ "$4" = delete ] && [ -n "$9" ]; then
  rbee_build_lock "$1.build" "${12}" "$3"; s=$?
  if [ $s = 0 ]; then keep_src=0; elif [ $s != 75 ] || [ "${12}" != now ]; then exit $s; fi
fi
rbee_lock "$1" "$2" "$3" || exit $?
mode=$4 stable=$5 receipt=$6 id=$7 reldir=$8 src=$9; shift 9
marker=$1 jobs=$2; shift 3
for rid in "$@"; do rbee_release_id "${rid%.incoming}" || exit 2; done
owned=0
if [ "$mode" = delete ] || [ "$mode" = undo-create ]; then
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
  if [ $keep_src = 0 ] && [ -z "$(ls -A -- "$src/users" 2>/dev/null)" ]; then
    rm -rf -- "$src" || exit 1
  fi
fi
root=.local/share/rbee
if [ "$mode" = delete ] && [ -z "$(ls -A -- "$root/jobs" 2>/dev/null)" ]; then
  # no build is under way or pending on the host: the build caches no resource uses (a failed
  # create leaves its cache for the next build) go too
  for d in "$root/build"/*/; do
    [ -d "$d" ] && [ -z "$(ls -A -- "${d}users" 2>/dev/null)" ] && { rm -rf -- "${d%/}" || exit 1; }
  done
fi
for d in "$reldir" "$root/releases" "$root/workers" "$root/receipts" "$root/build" "$root/jobs"; do
  rmdir -- "$d" 2>/dev/null
done
# shellcheck disable=SC2010  # only asks whether any name but the lock files is left
if ! ls -A -- "$root" 2>/dev/null | grep -qv '^\.lock'; then
  rm -f -- "$root/.lock.holder" "$root/.lock" "$root/.lock.build.holder" "$root/.lock.build"
  rmdir -- "$root" 2>/dev/null
fi
exit 0
