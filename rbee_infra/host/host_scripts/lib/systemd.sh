# shellcheck shell=sh
# rbee_systemd: `systemctl --user` works here (a user manager is running and reachable).
rbee_systemd() {
  [ -n "${XDG_RUNTIME_DIR:-}" ] || { d="/run/user/$(id -u)"; [ -d "$d" ] && export XDG_RUNTIME_DIR="$d"; }
  command -v systemctl >/dev/null 2>&1 || return 1
  if command -v timeout >/dev/null 2>&1; then timeout 10 systemctl --user show-environment >/dev/null 2>&1
  else systemctl --user show-environment >/dev/null 2>&1; fi
}
