#!/bin/sh
# Read-only when wait is 0. args: port, seconds to wait for the hive to run and listen. Prints
# mode, pid, running, listening; exits 0 when healthy, else 1 (after the last log lines).
. lib/env.sh
. lib/systemd.sh
. lib/set_aside.sh
. lib/service.sh
port=$1 wait=$2
n=0; limit=$((wait * 5))
while :; do
  rbee_pid
  running=no listening=no health=unknown
  if rbee_ours "$pid"; then running=yes; listening=$(rbee_listening "$port" "$pid"); fi
  [ "$running" = yes ] && [ "$listening" != no ] && health=$(rbee_health "$port")
  [ "$running" = yes ] && [ "$listening" != no ] && [ "${health%% *}" != fail ] && break
  [ $n -ge $limit ] && break
  # a pid-file hive that exited does not come back
  [ "$mode" = pidfile ] && [ "$running" = no ] && [ $n -ge 2 ] && break
  n=$((n+1)); sleep 0.2
done
printf 'mode\t%s\npid\t%s\nrunning\t%s\nlistening\t%s\nport\t%s\nhealth\t%s\n' \
  "$mode" "$pid" "$running" "$listening" "$port" "$health"
[ "$running" = yes ] && [ "$listening" != no ] && [ "${health%% *}" != fail ] && exit 0
if [ "$wait" != 0 ]; then
  if [ "$mode" = systemd ]; then
    journalctl --user -u "$unit_name" -n 20 --no-pager 2>/dev/null | sed 's/^/log\t/'
  else
    tail -n 20 -- "$log" 2>/dev/null | sed 's/^/log\t/'
  fi
fi
exit 1
