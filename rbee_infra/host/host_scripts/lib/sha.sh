# shellcheck shell=sh
# rbee_sha FILE: the file's sha256 (GNU sha256sum, else macOS shasum).
rbee_sha() { if command -v sha256sum >/dev/null 2>&1; then sha256sum < "$1"; else shasum -a 256 < "$1"; fi | cut -d' ' -f1; }
