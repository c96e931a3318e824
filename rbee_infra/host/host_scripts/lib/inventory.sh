# shellcheck shell=sh
# What is installed, printed for the (install name, stable path, receipt path) triples in
# "$@": per triple the stable path's kind, link target, sha256 and the receipt (its one line of
# JSON, else base64). Read-only; two processes per binary when nothing changed. Top-level
# code, not a function: it consumes "$@".
printf 'home\t%s\n' "$HOME"
while [ $# -ge 3 ]; do
  name=$1 stable=$2 receipt=$3; shift 3
  if [ -L "$stable" ]; then kind='symlink'; elif [ -e "$stable" ]; then kind='file'; else kind='missing'; fi
  link=''
  [ "$kind" = symlink ] && link=$(readlink -- "$stable" 2>/dev/null)
  # the checksum recorded at activation while the file's stat is unchanged, else read again
  sha=-
  if [ -f "$stable" ]; then
    # shellcheck disable=SC2154  # rbee_sum: set by rbee_signed_sha (lib/sha.sh)
    if rbee_signed_sha "$stable" "$link"; then sha=$rbee_sum; else sha=$(rbee_sha "$stable" 2>/dev/null || echo -); fi
  fi
  # the receipt as it is when it is one line of printable ASCII that opens with "{" (what
  # activation writes; base64 never starts so), else base64: read by the shell, no process
  rec='' line='' more=''
  if [ -f "$receipt" ]; then
    { IFS= read -r line && ! IFS= read -r more && [ -z "$more" ]; } < "$receipt" 2>/dev/null || line=
    case $line in *[!\ -~]* | [!'{']*) line= ;; esac
    rec=$line
    [ -n "$rec" ] || rec=$(base64 < "$receipt" | tr -d '\n')
  fi
  printf 'item\t%s\t%s\t%s\t%s\t%s\n' "$name" "$kind" "$link" "$sha" "$rec"
done
