#!/bin/sh
# args: job dir. Kills the job's whole process group (it is a session leader).
. lib/env.sh
. lib/job_alive.sh
pid=$(cat -- "$1/pid" 2>/dev/null) || exit 0
if rbee_job_alive "$pid" "$1"; then
  # `kill -s SIG -- -PGID`: the one spelling dash and bash both take for a process group
  kill -s TERM -- "-$pid" 2>/dev/null || kill -s TERM "$pid" 2>/dev/null
  sleep 1; kill -s KILL -- "-$pid" 2>/dev/null
fi
rm -f -- "$1/cred"  # a job killed outright takes no trap: its credentials go here
echo 124 > "$1/exit"
