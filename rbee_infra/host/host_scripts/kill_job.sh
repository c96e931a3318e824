#!/bin/sh
# args: job dir. Kills the job's whole process group (it is a session leader).
. lib/env.sh
. lib/job_alive.sh
pid=$(cat -- "$1/pid" 2>/dev/null) || exit 0
if rbee_job_alive "$pid" "$1"; then
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  sleep 1; kill -KILL -- "-$pid" 2>/dev/null
fi
echo 124 > "$1/exit"
