# shellcheck shell=sh
# Every script starts here: strict about unset variables, in the SSH user's home (all paths
# are relative to it, see `layout`), git never prompts, the C locale.
set -u
cd "$HOME" || exit 1
export GIT_TERMINAL_PROMPT=0 GIT_SSH_COMMAND='ssh -o BatchMode=yes' LC_ALL=C
