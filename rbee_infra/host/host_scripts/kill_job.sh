#!/bin/sh
# args: job dir. Kills the job's whole process group (it is a session leader).
. lib/env.sh
. lib/job_alive.sh
pid=$(cat -- "$1/pid" 2>/dev/null) || exit 0
if rbee_job_alive "$pid" "$1"; then
  # `-s SIG --`: dash's kill refuses `-SIG -- -PGID`, and then only the job's shell died
  kill -s TERM -- "-$pid" 2>/dev/null || kill -s TERM "$pid" 2>/dev/null
  sleep 1; kill -s KILL -- "-$pid" 2>/dev/null
fi
rm -f -- "$1/cred"  # a job killed outright takes no trap: its credentials go here
# killed (or it had already ended on its own: its status stays)
[ -f "$1/exit" ] || echo 124 > "$1/exit"
