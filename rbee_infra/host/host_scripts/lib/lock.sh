# shellcheck shell=sh
# rbee_lock LOCK WAIT HOLDER: a bounded wait for the per-host lock (fd 9); the error names the
# holder. The inode check makes it safe for the last `delete` to remove the lock file.
rbee_lock() {
  mkdir -p -- "$(dirname -- "$1")" || return 1
  while :; do
    exec 9>>"$1" || return 1
    if ! flock -w "$2" 9; then
      echo "host lock $1 is still held after $2s by: $(cat -- "$1.holder" 2>/dev/null || echo unknown)" >&2
      return 75
    fi
    [ "$(stat -Lc %i /proc/self/fd/9 2>/dev/null)" = "$(stat -c %i -- "$1" 2>/dev/null)" ] && break
    exec 9>&-
  done
  printf '%s\n' "$3" > "$1.holder"
}
