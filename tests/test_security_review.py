"""Findings of a security review, each proved on a real sshd host where a host is involved.

Test names carry the finding's number; each failed before its fix.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from rbee_infra.host import scripts
from rbee_infra.host.ssh import script_command
from tests.harness import installs, standin_cargo
from tests.harness.engine import Engine
from tests.harness.fixture_repo import RbeeRepo
from tests.harness.fleet import declare, hive_config, make_fleet
from tests.harness.git_http import GitHttpServer
from tests.harness.hosts import HostSet, free_port, rotate_host_key
from tests.harness.installs import version

pytestmark = pytest.mark.hosts

HIVE = ".local/bin/rbee-hive"
SAVED = f"{HIVE}.pre-rbee-infra"


def test_finding_4_a_saved_hand_made_binary_is_never_overwritten(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts

    def hand_made(text: str) -> None:
        host.run(f"mkdir -p .local/bin && rm -f {HIVE} && printf '#!/bin/sh\\necho {text}\\n'"
                 f" > {HIVE} && chmod +x {HIVE}")

    config = make_fleet(hosts1, rbee_repo)
    hand_made("hand-made-1")
    first = engine.up(declare(config))
    assert first.ok, first.errors
    assert version(host, HIVE) == "rbee-hive 0.1.0"
    assert version(host, SAVED) == "hand-made-1"

    # someone replaces the managed link with another binary of their own
    hand_made("hand-made-2")
    second = engine.up(declare(config))
    assert second.ok, second.errors
    assert version(host, HIVE) == "rbee-hive 0.1.0"
    assert version(host, SAVED) == "hand-made-1"
    assert version(host, f"{SAVED}.1") == "hand-made-2"
    assert engine.state()["hive-host1"].outputs["extras"] == [
        f"~/{SAVED}", f"~/{SAVED}.1"
    ]

    # destroy puts the first one back, and the second is still there
    assert engine.destroy().ok
    assert version(host, HIVE) == "hand-made-1"
    assert version(host, f"{SAVED}.1") == "hand-made-2"


def test_finding_3_a_stale_job_pid_is_never_taken_for_our_build(hosts1: HostSet) -> None:
    (host,) = hosts1.hosts
    job = ".local/share/rbee/jobs/stale/0123456789ab"
    stranger = int(host.run("setsid sleep 300 >/dev/null 2>&1 & echo $!").stdout)
    try:
        host.run(f"mkdir -p {job} && echo {stranger} > {job}/pid")

        def run(script: str, *args: str) -> str:
            return host.run(script_command(script, *args), timeout=30).stdout

        # the job is not running: waiting ends at once, a kill signals nobody
        assert run(scripts.WAIT_JOB, job) == "exit\tlost\n"
        run(scripts.KILL_JOB, job)
        assert host.run(f"kill -0 {stranger}", check=False).returncode == 0
        # and a start starts the build instead of answering `running`
        body = 'echo $$ > "$1/pid"; echo 0 > "$1/exit"'
        assert run(scripts.START_JOB, job, f"{job}/artifact", body).strip() == "started"
        assert host.run(f"kill -0 {stranger}", check=False).returncode == 0
    finally:
        host.run(f"kill {stranger}", check=False)


def _tofu(hosts: HostSet, repo: RbeeRepo, workers: int = 0, **settings: object
          ) -> dict[str, object]:
    config = make_fleet(hosts, repo, workers_per_hive=workers, **{"rbee:hostKeyPolicy": "tofu"})
    del config["rbee:knownHosts"]
    return {**config, **settings}


def test_finding_2_a_worker_added_to_a_pinned_host_does_not_trust_a_changed_key(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    assert engine.up(declare(_tofu(hosts1, rbee_repo))).ok  # the hive pins the key
    pinned = engine.state()["hive-host1"].outputs["trustedHostKey"]
    rotate_host_key(host)

    grown = declare(_tofu(hosts1, rbee_repo, workers=1))
    # the new worker takes the host's pin, in preview too: it never trusts the key shown now
    plan = engine.preview(grown)
    worker = next(step for step in plan.steps if step.name == "worker-host1-cpu")
    assert worker.op == "create"
    assert worker.detailed_changes["trustedHostKey"] == (None, pinned)
    result = engine.up(grown)
    assert not result.ok
    assert "does not match pinned key" in result.error_summary("hive-host1")
    assert "worker-host1-cpu" not in engine.state()
    assert host.run("test -e .local/share/rbee/workers/rbee-worker-cpu", check=False
                    ).returncode != 0
    assert engine.state()["hive-host1"].outputs["trustedHostKey"] == pinned


def test_finding_2_under_tofu_a_key_that_contradicts_known_hosts_is_refused(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine, tmp_path: Path
) -> None:
    (host,) = hosts1.hosts
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    known = tmp_path / "known_hosts"
    known.write_text(f"[{host.address}]:{host.port} {(tmp_path / 'other.pub').read_text()}")
    result = engine.up(declare(_tofu(hosts1, rbee_repo, **{"rbee:knownHosts": str(known)})))
    assert "does not match known_hosts" in repr(result.errors), result.errors
    assert host.run("test -e .local/bin/rbee-hive", check=False).returncode != 0


def test_finding_8_a_users_own_unit_and_hive_log_survive_install_and_destroy(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    unit = ".config/systemd/user/rbee-hive.service"
    log = ".local/share/rbee/hive.log"
    host.run(f"mkdir -p .config/systemd/user .local/share/rbee && echo '[Unit]' > {unit}"
             f" && echo 'Description=my own hive' >> {unit} && echo 'my own log' > {log}")
    port = free_port()
    decl = installs.hive(hosts1, host, {"method": "git", "repo": rbee_repo.url, "tag": "v0.1.0"},
                         autoStart=True, hivePort=port)
    assert engine.up([decl]).ok
    assert host.run(f"head -n 1 {log}").stdout.startswith("== rbee-infra ")
    assert host.run(f"cat {log}.pre-rbee-infra").stdout == "my own log\n"
    # a restart rotates only the log rbee-infra wrote
    assert engine.up([installs.hive(hosts1, host, {"method": "git", "repo": rbee_repo.url,
                                                   "tag": "v0.2.0"},
                                    autoStart=True, hivePort=port)]).ok
    assert host.run(f"cat {log}.pre-rbee-infra").stdout == "my own log\n"
    assert engine.destroy().ok
    assert host.run(f"cat {unit}").stdout == "[Unit]\nDescription=my own hive\n"
    assert host.run(f"cat {log}").stdout == "my own log\n"
    left = host.run("ls -a .local/share/rbee").stdout.split()
    assert not [name for name in left if name.startswith("hive.log.")], left



TOKEN = "ghp_ProcessListT0ken0123456789abcdef"


class _ProcessSampler:
    """Every 50 ms, as root: every process's argv and environment, and `ps -eo args`."""

    def __init__(self, needle: str) -> None:
        self.needle = needle
        self.hits: list[str] = []
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _ProcessSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for proc in Path("/proc").glob("[0-9]*"):
                for part in ("cmdline", "environ"):
                    try:
                        data = (proc / part).read_bytes().replace(b"\0", b" ").decode(
                            errors="replace")
                    except OSError:
                        continue
                    if self.needle in data:
                        self.hits.append(f"{proc.name}/{part}: {data[:300]}")
                    elif part == "cmdline":
                        self.seen.append(data)
            ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
            if self.needle in ps:
                self.hits.append(f"ps: {ps[:300]}")
            self._stop.wait(0.05)


def test_finding_5_no_secret_in_any_process_on_the_host_during_clone_and_build(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    server = GitHttpServer(rbee_repo.path.parent, TOKEN)
    try:
        config = make_fleet(hosts1, rbee_repo, workers_per_hive=1)
        hive = hive_config(config, "host1")
        hive["installMethod"] = {"git": {"repo": server.url(rbee_repo.path.name),
                                         "tag": "v0.1.0"}}
        hive["cargo"] = standin_cargo.install([host], 2)  # builds that last: time to look
        with _ProcessSampler(TOKEN) as sampler:
            plan = engine.preview(declare(config, ("rbee:hives",)))
            result = engine.up(declare(config, ("rbee:hives",)))
        assert plan.ok and result.ok, result.errors
        assert version(host, HIVE) == "rbee-hive 0.1.0"
        assert server.requests > server.unauthorized > 0  # the token was really sent, to git
        assert any("rbee-job" in line for line in sampler.seen)  # the build was watched
        assert any("stand-in" in line or "bench/cargo" in line for line in sampler.seen)
        assert sampler.hits == []
        # nothing left behind either: not in the home, not in a file of this user's in /tmp
        leftover = host.run(
            f"{{ grep -rlF {TOKEN} .; find /tmp -user \"$(id -u)\" -type f "
            f"-exec grep -lF {TOKEN} {{}} +; }} 2>/dev/null || true"
        ).stdout
        assert leftover == ""
    finally:
        server.close()
