# shellcheck shell=sh
# Host facts for preflight (see `preflight`): rbee_free PATH prints the free KiB of the
# filesystem holding PATH (or its nearest existing parent), rbee_os the OS name, rbee_gpus the
# GPUs nvidia-smi sees.
rbee_free() { d=$1; while [ ! -d "$d" ]; do d=$(dirname -- "$d"); done; df -Pk -- "$d" 2>/dev/null | awk 'NR==2 {print $4}'; }
rbee_os() {
  if [ -r /etc/os-release ]; then sed -n 's/^PRETTY_NAME=//p' /etc/os-release | tr -d '"' | head -n 1
  elif command -v sw_vers >/dev/null 2>&1; then printf '%s %s\n' "$(sw_vers -productName)" "$(sw_vers -productVersion)"; fi
}
rbee_gpus() {
  command -v nvidia-smi >/dev/null 2>&1 || return 0
  if command -v timeout >/dev/null 2>&1; then set -- timeout 20; else set --; fi
  "$@" nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 16
}
