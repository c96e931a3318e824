#!/bin/sh
# Download a release asset on the host, check its sha256, unpack it if it is a .tar.gz, and
# only then move it into the release dir. args: lock, wait, holder, tool, stage dir, asset
# name, expected sha256, binary, archive (1 | 0); URL on stdin. On failure nothing is left and
# stderr ends with "@@failed<TAB><step>" (download | checksum | unpack | missing | place).
. lib/env.sh
. lib/lock.sh
. lib/sha.sh
. lib/get.sh
. lib/release_id.sh
rbee_lock "$1" "$2" "$3" || exit $?
tool=$4 stage=$5 asset=$6 sha=$7 bin=$8 archive=$9
rbee_release_dir "$stage" || exit 2
inc="$stage.incoming"
fail() { rm -rf -- "$inc"; printf '@@failed\t%s\n' "$1" >&2; exit "$2"; }
{ rm -rf -- "$inc" && mkdir -p -- "$inc"; } || fail place 1
rbee_get "$tool" "$inc/$asset" || fail download $?
got=$(rbee_sha "$inc/$asset") || fail checksum 1
if [ "$got" != "$sha" ]; then printf '@@sha256\t%s\n' "$got" >&2; fail checksum 65; fi
if [ "$archive" = 1 ]; then
  { mkdir -- "$inc/.unpack" && tar -xzf "$inc/$asset" -C "$inc/.unpack"; } || fail unpack $?
  found=$(find "$inc/.unpack" -type f -name "$bin" | head -n 1)
  [ -n "$found" ] || fail missing 66
  # shellcheck disable=SC2115  # $inc is "$stage.incoming", never empty
  { mv -f -- "$found" "$inc/.bin" && rm -rf -- "$inc/.unpack" "$inc/$asset" \
    && mv -f -- "$inc/.bin" "$inc/$bin"; } || fail place 1
elif [ "$asset" != "$bin" ]; then
  mv -f -- "$inc/$asset" "$inc/$bin" || fail place 1
fi
chmod 0755 -- "$inc/$bin" || fail place 1
{ rm -rf -- "$stage" && mv -f -- "$inc" "$stage"; } || fail place 1
exit 0
