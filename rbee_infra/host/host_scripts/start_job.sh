#!/bin/sh
# args: job dir, artifact that a finished job leaves, job script, then the job's own args
. lib/env.sh
. lib/job_alive.sh
job=$1 artifact=$2 body=$3; shift 3
if [ -f "$job/exit" ]; then
  if [ "$(cat -- "$job/exit")" = 0 ] && [ -x "$artifact" ]; then echo reuse; exit 0; fi
  rm -rf -- "$job"
elif [ -f "$job/pid" ] && rbee_job_alive "$(cat -- "$job/pid")" "$job"; then
  echo running; exit 0
fi
rm -rf -- "$job" && mkdir -p -- "$job" || exit 1
# git credentials for the job's fetch (see lib/git_creds.sh): batch.sh's file, else standard
# input. They reach the job through a pipe, never a file: the job writes them down only once
# it holds the build lock, and removes them once fetched.
if [ -n "${RBEE_GIT_CREDENTIALS:-}" ]; then creds=$(cat -- "$RBEE_GIT_CREDENTIALS")
else creds=$(cat); fi || exit 1
{ [ -z "$creds" ] || printf '%s\n' "$creds"; } | setsid nohup sh -c "$body" rbee-job "$job" "$@" > "$job/log" 2>&1 &
creds=
n=0
while [ ! -f "$job/pid" ] && [ ! -f "$job/exit" ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done
echo started
