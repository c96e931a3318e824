#!/bin/sh
# args: job dir, and at most how many seconds to wait (empty: until it ends). Prints its exit
# status, phase, commit and phase times once it ended; when it is still running after that
# many seconds: `exit running`, its phase, the crates cargo compiled so far and its age (the
# install reports them: a long build shows it is alive).
. lib/env.sh
. lib/job_alive.sh
job=$1 most=${2:-}
waited=0
while [ ! -f "$job/exit" ]; do
  pid=$(cat -- "$job/pid" 2>/dev/null || true)
  if ! rbee_job_alive "$pid" "$job"; then
    [ -f "$job/exit" ] && break
    printf 'exit\tlost\n'; exit 0
  fi
  if [ -n "$most" ] && [ "$waited" -ge "$((most * 5))" ]; then
    started=$(sed -n '1s/^[a-z]* \([0-9]*\).*/\1/p' "$job/times" 2>/dev/null)
    printf 'exit\trunning\nphase\t%s\ncompiled\t%s\nstarted\t%s\nnow\t%s\n' \
      "$(cat -- "$job/phase" 2>/dev/null)" "$(grep -c '^ *Compiling ' "$job/log" 2>/dev/null)" \
      "$started" "$(date +%s)"
    exit 0
  fi
  sleep 0.2
  waited=$((waited + 1))
done
printf 'exit\t%s\nphase\t%s\ncommit\t%s\ntimes\t%s\nlock\t%s\n' "$(cat -- "$job/exit")" \
  "$(cat -- "$job/phase" 2>/dev/null)" "$(cat -- "$job/commit" 2>/dev/null)" \
  "$(tr '\n' ';' < "$job/times" 2>/dev/null)" "$(cat -- "$job/lock.sha256" 2>/dev/null)"
