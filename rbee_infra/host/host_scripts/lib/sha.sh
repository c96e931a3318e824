# shellcheck shell=sh
# rbee_sha FILE: the file's sha256 (GNU sha256sum, else macOS shasum).
rbee_sha() { if command -v sha256sum >/dev/null 2>&1; then sha256sum < "$1"; else shasum -a 256 < "$1"; fi | cut -d' ' -f1; }

# rbee_stat FILE: sets rbee_st to what changes whenever the file's content may have: its
# device, inode, size, and mtime and ctime in nanoseconds (a write sets both; nothing but root's
# clock or raw disk sets ctime back). Fails without GNU stat or with whole-second times (a write
# in the same second would go unseen). A variable, not output: no subshell per call.
rbee_stat() {
  rbee_st=$(stat -L -c '%d %i %s %.9Y %.9Z' -- "$1" 2>/dev/null) || return 1
  case ${rbee_st##* } in *.000000000) return 1 ;; *.[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]) ;; *) return 1 ;; esac
}

# rbee_sign FILE: record FILE's sha256 with its stat beside it (FILE.rbee-stat), for
# rbee_signed_sha. Records nothing if the file changed while it was read, or without rbee_stat.
rbee_sign() {
  rm -f -- "$1.rbee-stat"
  rbee_stat "$1" || return 0
  _before=$rbee_st
  _sum=$(rbee_sha "$1") || return 0
  case $_sum in *[!0-9a-f]*) return 0 ;; esac
  [ ${#_sum} = 64 ] && rbee_stat "$1" && [ "$rbee_st" = "$_before" ] || return 0
  printf '%s %s\n' "$_before" "$_sum" > "$1.rbee-stat.$$" && mv -f -- "$1.rbee-stat.$$" "$1.rbee-stat"
}

# rbee_signed_sha STABLE LINK: sets rbee_sum to the sha256 recorded by rbee_sign for the file
# that LINK (the symlink STABLE's target, relative to STABLE's dir) names, while that file's stat
# is still the one recorded; fails otherwise (the caller then hashes the file).
rbee_signed_sha() {
  case $2 in '') return 1 ;; /*) _f=$2 ;; *) _f=${1%/*}/$2 ;; esac
  [ -f "$_f.rbee-stat" ] || return 1
  read -r _rec < "$_f.rbee-stat" || return 1
  rbee_stat "$_f" || return 1
  [ "${_rec% *}" = "$rbee_st" ] || return 1
  rbee_sum=${_rec##* }
  # only a checksum's 64 hex digits go on into the inventory's line
  case $rbee_sum in *[!0-9a-f]*) return 1 ;; esac
  [ ${#rbee_sum} = 64 ]
}
