# shellcheck shell=sh
# rbee_build_lock LOCK WAIT HOLDER: the build lock (fd 8, "<host lock>.build"). Builds share the
# checkout and the cargo target dir, so they take turns on it; the host lock stays free for
# activations meanwhile. Order: build lock before host lock (build_job.sh, remove.sh), so they
# cannot deadlock. WAIT "now": do not wait; 75, quietly, when another holds it.
rbee_build_lock() {
  mkdir -p -- "$(dirname -- "$1")" || return 1
  while :; do
    exec 8>>"$1" || return 1
    if [ "$2" = now ]; then
      flock -n 8 || { exec 8>&-; return 75; }
    elif ! flock -w "$2" 8; then
      echo "build lock $1 is still held after $2s by: $(cat -- "$1.holder" 2>/dev/null || echo unknown)" >&2
      return 75
    fi
    [ "$(stat -Lc %i /proc/self/fd/8 2>/dev/null)" = "$(stat -c %i -- "$1" 2>/dev/null)" ] && break
    exec 8>&-
  done
  printf '%s\n' "$3" > "$1.holder"
}
