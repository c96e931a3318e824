#!/bin/sh
# args: repo, then full ref names to look up. Read-only: safe during preview.
. lib/env.sh
. lib/git_creds.sh
repo=$1; shift
if [ -z "${RBEE_GIT_CREDENTIALS:-}" ]; then
  RBEE_GIT_CREDENTIALS=$(rbee_creds_in) || exit 1
  [ -z "$RBEE_GIT_CREDENTIALS" ] || rbee_creds_cleanup "$RBEE_GIT_CREDENTIALS"
fi
rbee_git ls-remote -- "$repo" "$@"
