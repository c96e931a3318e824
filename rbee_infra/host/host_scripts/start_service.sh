#!/bin/sh
# args: mode (systemd | pidfile), port, unit file text (systemd), hive id, queen URL (may be
# empty). Stops whatever runs now, then starts
# ~/.local/bin/rbee-hive --port PORT --hive-id ID [--queen-url URL]; health.sh says whether it
# came up.
. lib/env.sh
. lib/systemd.sh
. lib/set_aside.sh
. lib/service.sh
mode=$1 port=$2 text=$3 hive_id=$4 queen=$5
rbee_stop 0
[ -x "$hive" ] || { echo "$hive is missing" >&2; exit 1; }
mkdir -p -- .local/share/rbee || exit 1
if [ "$mode" = systemd ]; then
  rbee_systemd || { echo "systemctl --user is not available" >&2; exit 1; }
  mkdir -p -- "$(dirname -- "$unit")" || exit 1
  if [ -f "$unit" ] && ! rbee_unit_mine; then rbee_set_aside "$unit" || exit 1; fi
  printf '%s' "$text" > "$unit.tmp" && mv -f -- "$unit.tmp" "$unit" || exit 1
  systemctl --user daemon-reload || exit $?
  systemctl --user enable "$unit_name" 2>&1 || exit $?
  systemctl --user restart "$unit_name" || exit $?
  echo started
  exit 0
fi
if [ -f "$log" ]; then
  if rbee_log_mine "$log"; then mv -f -- "$log" "$log.1"; else rbee_set_aside "$log" || exit 1; fi
fi
printf '== rbee-infra %s: %s --port %s --hive-id %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  "$(readlink -- "$hive")" "$port" "$hive_id" > "$log"
if command -v setsid >/dev/null 2>&1; then set -- setsid nohup; else set -- nohup; fi
# shellcheck disable=SC2016  # the quoted text is the inner shell's script; values are its $1..
"$@" sh -c 'p=$1 h=$2; shift 2; echo $$ > "$p.tmp" && mv -f -- "$p.tmp" "$p" && exec "$h" "$@"' \
  rbee-hive "$pidf" "$hive" --port "$port" --hive-id "$hive_id" ${queen:+--queen-url "$queen"} \
  >> "$log" 2>&1 < /dev/null &
n=0; while [ ! -s "$pidf" ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done
[ -s "$pidf" ] || { echo "no pid file after 5s; see ~/$log" >&2; exit 1; }
echo started
