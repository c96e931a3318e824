# shellcheck shell=sh
# Credentials for git never travel in argv or the environment, which every user of the host
# can read (/proc): `ssh.without_credentials` makes each URL plain and sends the credentials on
# standard input as git-credential-store lines. rbee_creds_in puts them in a file only this
# user can read (prints its path, or nothing when there were none); rbee_git runs git with
# git's own `store` helper reading that file (the user's helpers are switched off, so none
# keeps them).
rbee_creds_in() {
  # nothing on standard input (the usual case): no file, and no process started to find out
  rbee_first=
  IFS= read -r rbee_first || [ -n "$rbee_first" ] || return 0
  f=$(umask 077 && mktemp) || return 1
  { printf '%s\n' "$rbee_first"; cat; } > "$f" || { rm -f -- "$f"; return 1; }
  echo "$f"
}
# rbee_creds_cleanup FILE: remove FILE when the script ends, a signal included: dash runs no
# EXIT trap when a signal kills it, but does when a signal's trap exits.
rbee_creds_cleanup() {
  rbee_cred_file=$1
  trap 'rm -f -- "$rbee_cred_file"' EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 141' PIPE
  trap 'exit 143' TERM
}
rbee_git() {
  if [ -n "${RBEE_GIT_CREDENTIALS:-}" ]; then
    # git runs the helper through the shell: the path is quoted for it (a $HOME or $TMPDIR
    # with a space, or a quote, stays one argument)
    rbee_q=$(printf '%s' "$RBEE_GIT_CREDENTIALS" | sed "s/'/'\\\\''/g")
    git -c credential.helper= -c "credential.helper=store --file='$rbee_q'" "$@"
  else
    git "$@"
  fi
}
