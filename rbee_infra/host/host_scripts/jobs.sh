#!/bin/sh
# Read-only: the build jobs (see build_job.sh) under a jobs dir. args: the jobs dir, then job
# dirs (none: every job under the jobs dir). Per job one line:
# `job<TAB>dir<TAB>state<TAB>phase<TAB>started<TAB>now<TAB>holder<TAB>binary`, where state is
# `running`, `exit N` or `lost` (neither running nor ended: killed, or the host rebooted),
# started the epoch second of its first phase and now the host's clock.
. lib/env.sh
. lib/job_alive.sh
root=$1; shift
[ $# -gt 0 ] || set -- "$root"/*/*
now=$(date +%s)
for job in "$@"; do
  [ -d "$job" ] || continue
  if [ -f "$job/exit" ]; then state="exit $(cat -- "$job/exit" 2>/dev/null)"
  elif rbee_job_alive "$(cat -- "$job/pid" 2>/dev/null)" "$job"; then state=running
  else state=lost; fi
  started=$(head -n 1 -- "$job/times" 2>/dev/null | cut -d' ' -f2 | cut -d. -f1)
  printf 'job\t%s\t%s\t%s\t%s\t%s\t%s\n' "$job" "$state" "$(cat -- "$job/phase" 2>/dev/null)" \
    "$started" "$now" "$(paste -s -d '\t' -- "$job/about" 2>/dev/null)"
done
