#!/bin/sh
# The Cargo.lock a build of one commit is to use (from the stack's state, see `kickoff`), on
# standard input. args: source dir, commit (40 hex digits). The build job copies it into the
# checkout of that commit and builds --locked.
. lib/env.sh
src=$1 commit=$2
case $commit in *[!0-9a-f]*|'') echo "not a commit id: $commit" >&2; exit 2;; esac
[ "${#commit}" = 40 ] || { echo "not a commit id: $commit" >&2; exit 2; }
mkdir -p -- "$src/locks" || exit 1
cat > "$src/locks/$commit.lock.tmp" && mv -f -- "$src/locks/$commit.lock.tmp" "$src/locks/$commit.lock"
