# shellcheck shell=sh
# rbee_get TOOL FILE: GET the URL read from stdin (never an argument: a token in it would
# show in `ps`) into FILE with TOOL (curl | wget). Prints "@@http<TAB><status>" on stderr;
# returns the tool's exit status. Only curl is given a URL with a credential: it never sends
# it on to another host a redirect points at (wget is refused one, see `release.pick_tool`).
rbee_get() {
  code=
  if [ "$1" = curl ]; then
    code=$(sed 's/^/url = "/; s/$/"/' | curl -sS --fail --location --connect-timeout 30 --speed-time 120 --speed-limit 1 -K - -o "$2" -w '%{http_code}')
    s=$?
  else
    IFS= read -r url || url=
    rest=${url#*://}
    case ${rest%%/*} in
      *@*) echo "wget is never given a URL with a credential" >&2; printf '@@http\t000\n' >&2; return 2;;
    esac
    printf '%s\n' "$url" | wget --tries=1 --timeout=60 --progress=dot:giga -i - -O "$2" 2> "$2.log"
    s=$?
    code=$(sed -n 's/.*ERROR \([0-9][0-9][0-9]\).*/\1/p' "$2.log" | tail -n 1)
    [ $s -eq 0 ] || grep -E 'ERROR|Giving up|failed|unable|Unable|closed' "$2.log" | tail -n 3 >&2
    rm -f -- "$2.log"
  fi
  printf '@@http\t%s\n' "${code:-000}" >&2
  return $s
}
