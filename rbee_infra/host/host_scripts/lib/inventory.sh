# shellcheck shell=sh
# What is installed, printed for the (install name, stable path, receipt path) triples in
# "$@": per triple the stable path's kind, link target, sha256 and the receipt (base64).
# Read-only; a few processes per binary. Top-level code, not a function: it consumes "$@".
printf 'home\t%s\n' "$HOME"
while [ $# -ge 3 ]; do
  name=$1 stable=$2 receipt=$3; shift 3
  if [ -L "$stable" ]; then kind='symlink'; elif [ -e "$stable" ]; then kind='file'; else kind='missing'; fi
  link=$(readlink -- "$stable" 2>/dev/null || true)
  # the checksum recorded at activation while the file's stat is unchanged, else read again
  sha=-; [ -f "$stable" ] && { sha=$(rbee_signed_sha "$stable" "$link") || sha=$(rbee_sha "$stable" 2>/dev/null || echo -); }
  rec=; [ -f "$receipt" ] && rec=$(base64 < "$receipt" | tr -d '\n')
  printf 'item\t%s\t%s\t%s\t%s\t%s\n' "$name" "$kind" "$link" "$sha" "$rec"
done
