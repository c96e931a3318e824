# shellcheck shell=sh
# Release ids and release dirs arrive as arguments (from state, or read from a host before):
# rbee_release_id ID fails, saying so, unless ID is one (`layout.is_release_id`: hex digits,
# then features, never '/' or '.'); rbee_release_dir DIR unless DIR is
# .local/share/rbee/releases/<name>/<release id>. Nothing is removed or moved by either.
rbee_release_id() {
  case $1 in
    ''|-*|*[!0-9A-Za-z_+-]*) echo "not a release id: $1" >&2; return 2;;
  esac
}
rbee_release_dir() {
  case $1 in
    *..*|.local/share/rbee/releases/*/*/*) ;;
    .local/share/rbee/releases/?*/?*) rbee_release_id "${1##*/}"; return;;
  esac
  echo "not a release dir: $1" >&2; return 2
}
