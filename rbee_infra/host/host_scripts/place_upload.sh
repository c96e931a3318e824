#!/bin/sh
# After an SFTP upload: check the sha256 on the host, then move it into the release dir.
# args: lock, wait, holder, stage dir, binary, expected sha256
. lib/env.sh
. lib/lock.sh
. lib/sha.sh
. lib/release_id.sh
rbee_lock "$1" "$2" "$3" || exit $?
stage=$4 bin=$5 sha=$6
rbee_release_dir "$stage" || exit 2
inc="$stage.incoming"
fail() { rm -rf -- "$inc"; printf '@@failed\t%s\n' "$1" >&2; exit "$2"; }
got=$(rbee_sha "$inc/$bin") || fail checksum 1
if [ "$got" != "$sha" ]; then printf '@@sha256\t%s\n' "$got" >&2; fail checksum 65; fi
chmod 0755 -- "$inc/$bin" || fail place 1
{ rm -rf -- "$stage" && mv -f -- "$inc" "$stage"; } || fail place 1
exit 0
