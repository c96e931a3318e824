# shellcheck shell=sh
# A file of the user's where rbee-infra installs its own: rbee_set_aside moves it to
# `<path>.pre-rbee-infra`, or, when one was saved before, to the first free
# `<path>.pre-rbee-infra.N` (never over a saved one; `$saved` names where it went).
# `rbee_put_back` restores the first saved one.
rbee_set_aside() {
  saved="$1.pre-rbee-infra" n=0
  while [ -e "$saved" ] || [ -L "$saved" ]; do n=$((n + 1)); saved="$1.pre-rbee-infra.$n"; done
  mv -- "$1" "$saved"
}
rbee_put_back() {
  if [ -e "$1.pre-rbee-infra" ] && [ ! -e "$1" ]; then mv -- "$1.pre-rbee-infra" "$1"; fi
  return 0
}
