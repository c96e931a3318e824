"""The hive as a service on real sshd hosts, through the engine boundary: started and listening
after `up`, restarted on the new binary by an upgrade, brought back when it died, moved by a
port change without a rebuild, the previous binary restored (and running) when the new one
fails to start, stopped and removed by `destroy`.

The harness hosts have no systemd, so the pid-file supervisor is what runs here; the unit file
for systemd hosts is checked with `systemd-analyze verify`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from rbee_infra.config.fleet import parse_fleet
from rbee_infra.host import service
from rbee_infra.status import collect as status
from rbee_infra.status.model import ConfigSource, ServiceStatus
from tests.harness import installs
from tests.harness.engine import Decl, Engine
from tests.harness.fixture_repo import RbeeRepo
from tests.harness.hosts import Host, HostSet, free_port, wait_until

pytestmark = pytest.mark.hosts

PID_FILE = ".local/share/rbee/hive.pid"


def hive(hosts: HostSet, host: Host, repo: RbeeRepo, port: int, **ref: str) -> Decl:
    source = {"method": "git", "repo": repo.url, **ref}
    return installs.hive(hosts, host, source, autoStart=True, hivePort=port)


def pid_of(host: Host) -> int:
    return int((host.home / PID_FILE).read_text())


def exe_of(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/exe")


def alive(pid: int) -> bool:
    # not the cmdline: an exiting process loses it before it closes its listening socket
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def http_get(port: int) -> str:
    """What the hive answers on 127.0.0.1:port (the fixture says `ok`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
    return data.decode().rsplit("\r\n\r\n", 1)[-1]


def refused(port: int, timeout: float = 5.0) -> bool:
    """Nothing listens on 127.0.0.1:port, or stops listening within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                # Linux can connect a socket to itself when the port is in the ephemeral range
                # and nothing listens (TCP simultaneous open): that is no listener either
                if sock.getsockname() == sock.getpeername():
                    return True
        except ConnectionRefusedError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def release_of(host: Host, pid: int) -> str:
    """The release id the running process was started from."""
    exe = exe_of(pid)
    prefix = f"{host.home}/.local/share/rbee/releases/rbee-hive/"
    assert exe.startswith(prefix), exe
    return exe[len(prefix) :].split("/")[0]


def service_status(hosts: HostSet, host: Host, repo: RbeeRepo, port: int) -> ServiceStatus:
    """What `rbee-infra status` reports for the hive's service."""
    fleet = parse_fleet(
        {
            "hives": [
                {
                    "alias": "h1",
                    "hostname": host.address,
                    "sshUser": host.user,
                    "sshPort": host.port,
                    "hivePort": port,
                    "installMethod": {"git": {"repo": repo.url, "tag": "v0.2.0"}},
                }
            ]
        }
    )
    creds = status.Credentials(
        private_key_path=str(hosts.client_key_path), known_hosts=str(hosts.known_hosts_path)
    )
    source = ConfigSource(kind="stack", stack="test", file="Pulumi.test.yaml")
    report = asyncio.run(status.collect(fleet, source=source, creds=creds, resolve=False))
    (hive_status,) = report.hives
    assert hive_status.service is not None, hive_status
    return hive_status.service


def test_hive_service_follows_up_upgrades_port_changes_and_destroy(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    port = free_port()
    first = hive(hosts1, host, rbee_repo, port, tag="v0.1.0")
    installs.ok(engine.up([first]))
    pid = pid_of(host)
    assert alive(pid) and http_get(port) == "ok"
    outputs = engine.state()["hive-h1"].outputs
    assert release_of(host, pid) == outputs["releaseId"]
    assert outputs["serviceState"] == "running"
    assert outputs["service"] == {"mode": "pidfile", "state": "running", "pid": pid, "port": port}
    assert outputs["hostFacts"]["os"] == "Linux"
    assert outputs["hostFacts"]["cargo"].startswith("cargo ")
    assert outputs["hostFacts"]["serviceManager"] == "pidfile"
    assert engine.preview([first]).ops() == {"hive-h1": "same"}

    # the hive died: the preview shows it, `up` starts it again on the same binary
    os.kill(pid, 15)
    assert wait_gone(pid) and refused(port)
    plan = engine.preview([first])
    assert plan.ops() == {"hive-h1": "update"}
    assert plan.steps[0].detailed_changes["serviceState"][1] == "stopped"
    assert service_status(hosts1, host, rbee_repo, port) == ServiceStatus(
        auto_start=True, mode="pidfile", state="stopped", pid=None, port=port
    )
    installs.ok(engine.up([first]))
    restarted = pid_of(host)
    assert restarted != pid and http_get(port) == "ok"
    assert release_of(host, restarted) == outputs["releaseId"]  # no rebuild
    assert engine.state()["hive-h1"].outputs["service"]["pid"] == restarted

    # an upgrade restarts it on the new binary
    installs.ok(engine.up([hive(hosts1, host, rbee_repo, port, tag="v0.2.0")]))
    upgraded = pid_of(host)
    assert upgraded != restarted and not alive(restarted)
    new_release = engine.state()["hive-h1"].outputs["releaseId"]
    assert release_of(host, upgraded) == new_release != outputs["releaseId"]
    assert installs.version(host, exe_of(upgraded)) == "rbee-hive 0.2.0"
    assert http_get(port) == "ok"

    # another port: restarted there, no rebuild
    moved = free_port()
    result = installs.ok(engine.up([hive(hosts1, host, rbee_repo, moved, tag="v0.2.0")]))
    assert result.ops() == {"hive-h1": "update"}
    assert http_get(moved) == "ok" and refused(port)
    on_new_port = pid_of(host)
    assert release_of(host, on_new_port) == new_release
    assert service_status(hosts1, host, rbee_repo, moved) == ServiceStatus(
        auto_start=True, mode="pidfile", state="running", pid=on_new_port, port=moved
    )

    # autoStart off: stopped, nothing rebuilt; on again: started
    source = {"method": "git", "repo": rbee_repo.url, "tag": "v0.2.0"}
    off = installs.hive(hosts1, host, source, autoStart=False, hivePort=moved)
    installs.ok(engine.up([off]))
    assert wait_gone(on_new_port) and refused(moved)
    assert not (host.home / PID_FILE).exists()
    assert engine.state()["hive-h1"].outputs["releaseId"] == new_release
    assert "serviceState" not in engine.state()["hive-h1"].outputs
    assert engine.preview([off]).ops() == {"hive-h1": "same"}
    installs.ok(engine.up([hive(hosts1, host, rbee_repo, moved, tag="v0.2.0")]))
    last = pid_of(host)
    assert http_get(moved) == "ok"

    # destroy stops it before removing the files
    installs.ok(engine.destroy())
    assert wait_gone(last) and refused(moved)
    assert installs.leftovers(host) == []


def test_failed_start_restores_the_previous_binary_and_runs_it(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    port = free_port()
    no_listen = hive(hosts1, host, rbee_repo, port, branch="no-listen")

    # a create whose hive cannot start leaves nothing behind (but the build cache)
    error = installs.failed(engine.up([no_listen]), "hive-h1")
    assert (
        f"hive h1: service failed: rbee-hive 0.3.0 did not start: rbee-hive exited instead of "
        f"listening on port {port}; its log ends with:\n"
    ) in error
    assert "rbee-hive: refusing to listen (no-listen fixture)\nnothing was installed" in error
    assert engine.state() == {} and installs.leftovers(host, but_the_build_cache=True) == []

    installs.ok(engine.up([hive(hosts1, host, rbee_repo, port, tag="v0.2.0")]))
    (good,) = installs.release_ids(host, "rbee-hive")
    first_pid = pid_of(host)

    # the upgrade builds and verifies, the new binary does not start: 0.2.0 is back and running
    error = installs.failed(engine.up([no_listen]), "hive-h1")
    assert "hive h1: service failed: rbee-hive 0.3.0 did not start: " in error
    assert "refusing to listen (no-listen fixture)" in error
    assert "the previous version (rbee-hive 0.2.0) was restored and is running" in error
    assert installs.link(host, installs.HIVE_STABLE).split("/")[-2] == good
    assert installs.release_ids(host, "rbee-hive") == [good]  # the failed release is gone
    assert installs.version(host, f"{host.home}/{installs.HIVE_STABLE}") == "rbee-hive 0.2.0"
    running = pid_of(host)
    assert running != first_pid and release_of(host, running) == good
    assert http_get(port) == "ok"
    assert engine.state()["hive-h1"].outputs["version"] == "rbee-hive 0.2.0"


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (apt-get install systemd)",
)
def test_systemd_unit_passes_systemd_analyze_verify(hosts1: HostSet) -> None:
    """The unit written on systemd hosts, checked as the host user (`%h` is their home)."""
    (host,) = hosts1.hosts
    # verify wants ExecStart to name an executable; any will do for checking the unit
    host.run("mkdir -p .local/bin unit && cp /bin/true .local/bin/rbee-hive")
    verify = (
        'd=$(mktemp -d) && XDG_RUNTIME_DIR="$d" systemd-analyze --user verify '
        'unit/rbee-hive.service; s=$?; rm -rf "$d"; exit $s'
    )
    (host.home / "unit" / "rbee-hive.service").write_text(service.unit_text(8600))
    result = host.run(verify, check=False)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    # the check has teeth: a unit without ExecStart is refused
    broken = service.unit_text(8600).replace("ExecStart=", "ExecStrat=")
    (host.home / "unit" / "rbee-hive.service").write_text(broken)
    result = host.run(verify, check=False)
    assert "ExecStrat" in result.stderr


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def built_hive(repo: RbeeRepo, branch: str, where: Path) -> Path:
    """rbee-hive built from `branch` of the fixture repo, outside any host."""
    src = where / branch
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", "--branch", branch, repo.url, str(src)], check=True
    )
    subprocess.run(
        ["cargo", "build", "-q", "--release", "--bin", "rbee-hive"], cwd=src, check=True
    )
    return src / "target" / "release" / "rbee-hive"


def test_the_hive_runs_with_rbee_hives_flags_and_health_is_its_http_answer(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine, tmp_path: Path
) -> None:
    (host,) = hosts1.hosts
    port = free_port()
    source = {"method": "git", "repo": rbee_repo.url, "tag": "v0.2.0"}

    # it listens, but GET /health answers 503 for good: the create fails and leaves nothing
    # (but the build cache, for the next build)
    sick = hive(hosts1, host, rbee_repo, port, branch="unhealthy")
    error = installs.failed(engine.up([sick]), "hive-h1")
    assert "hive h1: service failed: rbee-hive 0.3.0 did not start: rbee-hive (pid " in error
    assert (
        f") listens on port {port} but GET /health answered 503 starting: no worker yet"
    ) in error
    assert engine.state() == {} and installs.leftovers(host, but_the_build_cache=True) == []

    # --port, --hive-id <alias>, and --queen-url when queenUrl is set
    queen = "http://127.0.0.1:7833"
    with_queen = installs.hive(
        hosts1, host, source, autoStart=True, hivePort=port, queenUrl=queen
    )
    installs.ok(engine.up([with_queen]))
    pid = pid_of(host)
    assert cmdline(pid)[1:] == ["--port", str(port), "--hive-id", "h1", "--queen-url", queen]
    assert http_get(port) == "ok"
    plain = installs.hive(hosts1, host, source, autoStart=True, hivePort=port)
    assert installs.ok(engine.up([plain])).ops() == {"hive-h1": "update"}  # restarted only
    restarted = pid_of(host)
    assert restarted != pid and cmdline(restarted)[1:] == ["--port", str(port), "--hive-id", "h1"]

    # a hive that runs and listens but answers /health with an error: status says unhealthy
    binary = built_hive(rbee_repo, "unhealthy", tmp_path)
    shutil.copy(binary, host.home / "sick-hive")
    os.chown(host.home / "sick-hive", host.uid, host.gid)
    host.run(f"kill {restarted}; while kill -0 {restarted} 2>/dev/null; do sleep 0.05; done")
    host.run(
        "setsid nohup bash -c 'echo $$ > " + PID_FILE + "; exec -a \"$HOME/.local/bin/rbee-hive\" "
        f"./sick-hive --port {port}' >/dev/null 2>&1 < /dev/null &"
    )
    wait_until(lambda: not refused(port, timeout=0) and http_get(port) != "")
    assert http_get(port) == "starting: no worker yet"
    assert service_status(hosts1, host, rbee_repo, port) == ServiceStatus(
        auto_start=True, mode="pidfile", state="unhealthy", pid=pid_of(host), port=port,
        health="503 starting: no worker yet",
    )
    # `up` puts the installed hive back in its place, no rebuild
    plan = engine.preview([plain])
    assert plan.ops() == {"hive-h1": "update"}
    assert plan.steps[0].detailed_changes["serviceState"][1] == (
        f"unhealthy on port {port}: /health answered 503 starting: no worker yet"
    )
    installs.ok(engine.up([plain]))
    assert http_get(port) == "ok" and cmdline(pid_of(host))[0].endswith("/.local/bin/rbee-hive")
    installs.ok(engine.destroy())
    assert installs.leftovers(host) == []
