#!/bin/sh
# Before an SFTP upload: an empty "<stage>.incoming". args: lock, wait, holder, stage dir
. lib/env.sh
. lib/lock.sh
. lib/release_id.sh
rbee_lock "$1" "$2" "$3" || exit $?
rbee_release_dir "$4" || exit 2
rm -rf -- "$4.incoming" && mkdir -p -- "$4.incoming"
