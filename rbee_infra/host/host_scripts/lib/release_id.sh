# shellcheck shell=sh
# Release ids and release dirs arrive as arguments (from state, or read from a host before):
# rbee_release_id ID fails, saying so, unless ID is one (`layout.is_release_id`: hex digits,
# then features, never '/' or '.'); rbee_release_dir DIR unless DIR is
# .local/share/rbee/releases/<name>/<release id>, or a builder's cache dir for a build,
# .local/share/rbee/artifacts/<16 hex digits>. Nothing is removed or moved by either.
rbee_release_id() {
  case $1 in
    ''|-*|*[!0-9A-Za-z_+-]*) echo "not a release id: $1" >&2; return 2;;
  esac
}
rbee_release_dir() {
  case $1 in
    *..*|.local/share/rbee/releases/*/*/*) ;;
    .local/share/rbee/releases/?*/?*) rbee_release_id "${1##*/}"; return;;
    .local/share/rbee/artifacts/*[!0-9a-f]*) ;;
    .local/share/rbee/artifacts/????????????????) return 0;;
  esac
  echo "not a release dir: $1" >&2; return 2
}
