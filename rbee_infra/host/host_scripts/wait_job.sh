#!/bin/sh
# args: job dir. Blocks until the job ends; prints its exit status, phase and commit.
. lib/env.sh
. lib/job_alive.sh
job=$1
while [ ! -f "$job/exit" ]; do
  pid=$(cat -- "$job/pid" 2>/dev/null || true)
  if ! rbee_job_alive "$pid" "$job"; then
    [ -f "$job/exit" ] && break
    printf 'exit\tlost\n'; exit 0
  fi
  sleep 0.2
done
printf 'exit\t%s\nphase\t%s\ncommit\t%s\ntimes\t%s\n' "$(cat -- "$job/exit")" \
  "$(cat -- "$job/phase" 2>/dev/null)" "$(cat -- "$job/commit" 2>/dev/null)" \
  "$(tr '\n' ';' < "$job/times" 2>/dev/null)"
