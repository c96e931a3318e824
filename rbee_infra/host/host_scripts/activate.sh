#!/bin/sh
# args: lock, wait, holder, stable path, link target, receipt path, receipt json,
# releases dir of this name, finished job dir, then the release ids to keep (others are pruned)
. lib/env.sh
. lib/lock.sh
. lib/set_aside.sh
. lib/sha.sh
rbee_lock "$1" "$2" "$3" || exit $?
stable=$4 target=$5 receipt=$6 json=$7 reldir=$8 job=$9; shift 9
mkdir -p -- "$(dirname -- "$stable")" "$(dirname -- "$receipt")" || exit 1
printf '%s\n' "$json" > "$receipt.tmp.$$" || { rm -f -- "$receipt.tmp.$$"; exit 1; }
previous=$(readlink -- "$stable" 2>/dev/null || true)
moved=0
if [ -e "$stable" ] && [ ! -L "$stable" ]; then
  # a hand-made binary (the first one saved is what `destroy` puts back; later ones are
  # numbered and listed as extras)
  rbee_set_aside "$stable" || { rm -f -- "$receipt.tmp.$$"; exit 1; }
  moved=1
fi
undo() {
  rm -f -- "$receipt.tmp.$$" "$stable.rbee-tmp.$$"
  if [ -n "$previous" ]; then ln -sfn -- "$previous" "$stable"; elif [ $moved = 1 ]; then mv -f -- "$saved" "$stable"; else rm -f -- "$stable"; fi
  exit 1
}
ln -s -- "$target" "$stable.rbee-tmp.$$" || undo
mv -fT -- "$stable.rbee-tmp.$$" "$stable" 2>/dev/null || mv -fh -- "$stable.rbee-tmp.$$" "$stable" || undo
mv -f -- "$receipt.tmp.$$" "$receipt" || undo
# the checksum of what the link names, for the inventory to reuse while its stat is the same
case $target in /*) file=$target ;; *) file=${stable%/*}/$target ;; esac
rbee_sign "$file"
for d in "$reldir"/*; do
  [ -d "$d" ] || continue
  keep=0
  for k in "$@"; do [ "${d##*/}" = "$k" ] && keep=1; done
  [ $keep = 1 ] || rm -rf -- "$d"
done
rm -rf -- "$job"
exit 0
