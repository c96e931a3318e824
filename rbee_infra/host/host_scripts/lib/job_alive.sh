# shellcheck shell=sh
# rbee_alive PID: a killed job whose parent is gone may stay a zombie where PID 1 does not
# reap: not alive.
# rbee_job_alive PID JOBDIR: a job's pid is ours only while that process is still the job,
# `sh -c BODY rbee-job JOBDIR`. After a reboot or a SIGKILL the pid file may name anything of
# this user's; a stranger is never waited for, reported running, or signalled.
rbee_alive() {
  kill -0 "$1" 2>/dev/null || return 1
  [ -r "/proc/$1/stat" ] || return 0
  case "$(sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f1)" in Z) return 1;; esac
}

rbee_job_alive() {
  case ${1:-} in ''|0|*[!0-9]*) return 1;; esac
  rbee_alive "$1" || return 1
  if [ -r "/proc/$1/cmdline" ]; then
    tr '\0' '\n' < "/proc/$1/cmdline" | grep -qxF -- rbee-job || return 1
    tr '\0' '\n' < "/proc/$1/cmdline" | grep -qxF -- "$2"
  else
    ps -p "$1" -o command= 2>/dev/null | grep -qF -- "rbee-job $2"
  fi
}
