"""The hive as a service: pure planners (mode, unit file, health parsing) and the host calls.

After an install with `autoStart`, the hive runs `~/.local/bin/rbee-hive --port <hivePort>`:
as the systemd user unit `rbee-hive.service` where `systemctl --user` works (it survives
logout only with `loginctl enable-linger <user>`, see docs/service.md), otherwise as a
background process in its own session with a pid file. Workers never run as services.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rbee_infra.base import layout
from rbee_infra.config.spec import InstallSpec
from rbee_infra.decide import plan
from rbee_infra.decide.facts import HostFacts, parse_fields
from rbee_infra.host import scripts
from rbee_infra.host.remote import Link
from rbee_infra.host.ssh import Session

Mode = Literal["systemd", "pidfile"]

UNIT_NAME = "rbee-hive.service"
UNIT_PATH = f".config/systemd/user/{UNIT_NAME}"
PID_FILE = f"{layout.ROOT}/hive.pid"
LOG_FILE = f"{layout.ROOT}/hive.log"
HEALTH_WAIT_SECONDS = 15
STOP_TIMEOUT = 60.0
RUNNING = plan.SERVICE_RUNNING


def mode_for(facts: HostFacts) -> Mode:
    return "systemd" if facts.systemd_user else "pidfile"


# The first line of the unit file rbee-infra writes: a unit without it is the user's own, set
# aside on install and put back on destroy (see host_scripts/lib/service.sh).
UNIT_MARKER = "# rbee-infra managed unit: changes here are replaced on the next install"


def hive_args(port: int, hive_id: str, queen_url: str | None) -> list[str]:
    """rbee-hive's own flags: its port, its id (the alias), and the queen when one is set."""
    return ["--port", str(port), "--hive-id", hive_id] + (
        ["--queen-url", queen_url] if queen_url else []
    )


def unit_text(port: int, hive_id: str = "localhost", queen_url: str | None = None) -> str:
    """The systemd user unit. `%h` is the user's home, so the file holds no absolute path.
    The values are validated (no spaces or quotes); `%` is systemd's specifier sign."""
    args = " ".join(a.replace("%", "%%") for a in hive_args(port, hive_id, queen_url))
    return (
        f"{UNIT_MARKER}\n"
        "[Unit]\n"
        "Description=rbee hive (installed by rbee-infra)\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        "WorkingDirectory=%h\n"
        f"ExecStart=%h/{layout.stable_path('rbee-hive')} {args}\n"
        "Restart=on-failure\n"
        "RestartSec=5\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def start_args(mode: Mode, port: int, hive_id: str, queen_url: str | None) -> list[str]:
    """START_SERVICE's arguments."""
    text = unit_text(port, hive_id, queen_url) if mode == "systemd" else ""
    return [mode, str(port), text, hive_id, queen_url or ""]


@dataclass(frozen=True)
class ServiceState:
    mode: Mode
    port: int
    pid: int | None
    running: bool
    listening: bool | None  # None: the host has no way to tell
    # GET /health: None when not asked (not listening) or the host cannot ask (no curl, bash)
    health_ok: bool | None = None
    # what /health answered instead of `ok`: "<status> <first line of the body>"
    health_response: str = ""
    log: tuple[str, ...] = field(default=(), compare=False)

    @property
    def healthy(self) -> bool:
        return self.running and self.listening is not False and self.health_ok is not False

    @property
    def unhealthy(self) -> bool:
        """It runs and listens, but /health does not answer `ok`."""
        return self.running and self.listening is not False and self.health_ok is False

    @property
    def summary(self) -> str:
        """`running` or why not: what `check` compares and `status` shows."""
        if self.healthy:
            return RUNNING
        if self.unhealthy:
            return f"unhealthy on port {self.port}: /health answered {self.health_response}"
        if self.running:
            return f"not listening on port {self.port}"
        return "stopped"

    def why(self) -> str:
        """For errors: what went wrong, then the last lines of its log."""
        if self.unhealthy:
            what = (
                f"rbee-hive (pid {self.pid}) listens on port {self.port} but GET /health "
                f"answered {self.health_response}"
            )
        elif self.running:
            what = f"rbee-hive (pid {self.pid}) runs but does not listen on port {self.port}"
        else:
            what = f"rbee-hive exited instead of listening on port {self.port}"
        log = "\n".join(self.log[-10:])
        return what + (f"; its log ends with:\n{log}" if log else "")


def parse_health(output: str, port: int) -> ServiceState:
    fields = parse_fields(output)
    pid = fields.get("pid", "")
    listening = fields.get("listening", "no")
    health = fields.get("health", "unknown")
    log = tuple(line[4:] for line in output.splitlines() if line.startswith("log\t"))
    return ServiceState(
        mode="systemd" if fields.get("mode") == "systemd" else "pidfile",
        port=port,
        pid=int(pid) if pid.isdigit() and pid != "0" else None,
        running=fields.get("running") == "yes",
        listening=None if listening == "unknown" else listening == "yes",
        health_ok=True if health == "ok" else False if health.startswith("fail") else None,
        health_response=health.removeprefix("fail").strip() or "nothing",
        log=log,
    )


def outputs(state: ServiceState | None) -> dict[str, object]:
    """The hive's `service` output."""
    if state is None:
        return {"service": None}
    return {
        "service": {
            "mode": state.mode,
            "state": state.summary,
            "pid": state.pid,
            "port": state.port,
        }
    }


# --- on the host ---------------------------------------------------------------------------


async def health(session: Session | Link, spec: InstallSpec, wait: int = 0) -> ServiceState:
    """Read-only with wait 0 (check, status); after a start, waits up to `wait` seconds."""
    result = await session.run(
        scripts.HEALTH,
        str(spec.hive_port),
        str(wait),
        phase="service",
        check=False,
        timeout=wait + 60,
    )
    return parse_health(result.stdout, spec.hive_port)


async def start(link: Link, spec: InstallSpec, mode: Mode) -> ServiceState:
    """(Re)start the hive on the binary the stable path points at now; wait until healthy."""
    await link.run(
        scripts.START_SERVICE,
        *start_args(mode, spec.hive_port, spec.alias, spec.queen_url),
        phase="service",
        timeout=STOP_TIMEOUT,
        summary=f"starting rbee-hive on port {spec.hive_port}",
    )
    return await health(link, spec, HEALTH_WAIT_SECONDS)


async def stop(session: Session | Link, *, purge: bool) -> None:
    """Stop the hive; `purge` also removes the unit file, the pid file and the logs."""
    await session.run(
        scripts.STOP_SERVICE,
        "1" if purge else "0",
        phase="service",
        timeout=STOP_TIMEOUT,
        summary="stopping rbee-hive",
    )
