# shellcheck shell=sh
# The hive as a service (see `service`): a systemd user unit where `systemctl --user` works,
# else a background process with a pid file. `rbee_ours` accepts a pid only when it is this
# user's rbee-hive started from the stable path, so a stale pid file never kills a stranger.
# Needs lib/systemd.sh and lib/set_aside.sh.
unit_name=rbee-hive.service
unit=.config/systemd/user/rbee-hive.service
pidf=.local/share/rbee/hive.pid
log=.local/share/rbee/hive.log
hive="$HOME/.local/bin/rbee-hive"
rbee_ours() {
  case ${1:-} in ''|0|*[!0-9]*) return 1;; esac
  kill -0 "$1" 2>/dev/null || return 1
  if [ -r "/proc/$1/cmdline" ]; then a0=$(tr '\0' '\n' < "/proc/$1/cmdline" | head -n 1)
  else a0=$(ps -p "$1" -o command= 2>/dev/null | cut -d' ' -f1); fi
  [ "$a0" = "$hive" ]
}
# Until a process is a zombie or reaped it may still hold its port: an exiting process loses its
# cmdline before it closes its files, so rbee_ours turns false too early to wait on.
rbee_running() {
  kill -0 "$1" 2>/dev/null || return 1
  if [ -r "/proc/$1/stat" ]; then st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
  else st=$(ps -p "$1" -o stat= 2>/dev/null | tr -d ' ' | cut -c1); fi
  [ "$st" != Z ]
}
# What rbee-infra wrote carries a mark (first line); anything else in its place is the user's:
# set aside (see lib/set_aside.sh) and put back by a purge.
rbee_unit_mine() {
  [ -f "$unit" ] || return 1
  head -n 1 -- "$unit" | grep -q '^# rbee-infra managed unit' && return 0
  grep -qxF 'Description=rbee hive (installed by rbee-infra)' -- "$unit"  # before the mark
}
rbee_log_mine() { head -n 1 -- "$1" 2>/dev/null | grep -Eq '^== (rbee-infra|[0-9]{4}-)'; }
# shellcheck disable=SC2034  # rbee_pid's results: its callers read $mode and $pid
rbee_pid() {
  if rbee_unit_mine && rbee_systemd; then
    mode=systemd; pid=$(systemctl --user show -p MainPID --value "$unit_name" 2>/dev/null || true)
  else
    mode=pidfile; pid=$(cat -- "$pidf" 2>/dev/null || true)
  fi
}
rbee_listening() {
  if command -v ss >/dev/null 2>&1; then
    if ss -ltnp 2>/dev/null | grep -E "[:.]$1[[:space:]]" | grep -q "pid=$2,"; then echo yes; else echo no; fi
  elif command -v lsof >/dev/null 2>&1; then
    if lsof -nP -a -p "$2" -iTCP:"$1" -sTCP:LISTEN >/dev/null 2>&1; then echo yes; else echo no; fi
  elif command -v bash >/dev/null 2>&1; then
    if bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' rbee "$1" 2>/dev/null; then echo yes; else echo no; fi
  else
    echo unknown
  fi
}
# rbee-hive's own health check: GET /health on 127.0.0.1 (it binds nothing else) answers `ok`.
# Prints "ok", "fail <status> <first line of the body>" or "unknown" (no curl and no bash).
rbee_health() {
  if command -v curl >/dev/null 2>&1; then
    got=$(curl -s -m 5 -w '\n%{http_code}' "http://127.0.0.1:$1/health" 2>/dev/null)
    code=$(printf '%s\n' "$got" | tail -n 1); body=$(printf '%s\n' "$got" | sed '$d')
  elif command -v bash >/dev/null 2>&1; then
    # shellcheck disable=SC2016  # the quoted text is bash's own script; the port is its $1
    got=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
      printf "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3; cat <&3' rbee "$1" 2>/dev/null \
      | tr -d '\r')
    code=$(printf '%s\n' "$got" | head -n 1 | cut -d' ' -f2); body=$(printf '%s\n' "$got" | sed '1,/^$/d')
  else
    echo unknown; return 0
  fi
  body=$(printf '%s' "$body" | head -n 1 | cut -c1-200)
  if [ "$code" = 200 ] && [ "$body" = ok ]; then echo ok; else echo "fail ${code:-000} $body"; fi
}
rbee_stop() {
  if rbee_unit_mine && rbee_systemd; then
    systemctl --user stop "$unit_name" >/dev/null 2>&1
    [ "$1" = 1 ] && systemctl --user disable "$unit_name" >/dev/null 2>&1
  fi
  if [ "$1" = 1 ] && rbee_unit_mine; then
    rm -f -- "$unit"
    rbee_put_back "$unit"
    rbee_systemd && systemctl --user daemon-reload >/dev/null 2>&1
  fi
  old=$(cat -- "$pidf" 2>/dev/null || true)
  if rbee_ours "$old"; then
    kill -TERM "$old" 2>/dev/null
    n=0; while rbee_running "$old" && [ "$n" -lt 50 ]; do sleep 0.2; n=$((n+1)); done
    if rbee_running "$old"; then
      kill -KILL "$old" 2>/dev/null
      n=0; while rbee_running "$old" && [ "$n" -lt 25 ]; do sleep 0.2; n=$((n+1)); done
    fi
    printf 'stopped\t%s\n' "$old"
  fi
  rm -f -- "$pidf"
  if [ "$1" = 1 ]; then
    for f in "$log" "$log.1"; do rbee_log_mine "$f" && rm -f -- "$f"; done
    rbee_put_back "$log"
  fi
  return 0
}
