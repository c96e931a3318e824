"""What every benchmark shares: the lab (real sshd hosts, the fixture repo), timing, the
rbee-infra run through the engine driver, and counting SSH handshakes on the hosts' side.

Handshakes and remote commands are counted from each host's sshd log ("Accepted publickey"
lines are completed logins, "Starting session" lines are commands), so every tool is counted
the same way, whatever its SSH client.
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.harness import standin_cargo
from tests.harness.engine import Decl, Engine, UpResult
from tests.harness.fixture_repo import RbeeRepo, make_rbee_repo
from tests.harness.fleet import declare, make_fleet
from tests.harness.hosts import Host, HostSet, start_hosts

T = TypeVar("T")
TAG = "v0.1.0"
WORKER_TYPES = ("cpu", "cuda")
# hive + 2 workers: (install name, binary, features), as rbee-infra installs them
BINARIES = (
    ("rbee-hive", "rbee-hive", ""),
    ("rbee-worker-cpu", "llm-worker-rbee-cpu", "cpu"),
    ("rbee-worker-cuda", "llm-worker-rbee-cuda", "cuda"),
)
PEER_ROOT = ".rbee-peer-{tool}"


@dataclass
class Lab:
    hosts: HostSet
    repo: RbeeRepo
    tmp: Path
    results: list[dict[str, Any]] = field(default_factory=list)

    def first(self, n: int) -> list[Host]:
        if n > len(self.hosts.hosts):
            raise ValueError(f"the lab has {len(self.hosts.hosts)} hosts, {n} asked for")
        return self.hosts.hosts[:n]

    def close(self) -> None:
        self.hosts.close()
        self.repo.remove()
        shutil.rmtree(self.tmp, ignore_errors=True)


def lab_pids(lab: Lab) -> list[int]:
    """The processes whose children's CPU is the lab's side of a run: every host's sshd
    listener (each session it served, and what ran in it) and the git server."""
    pids = [host.sshd_pid for host in lab.hosts.hosts] + [lab.repo.server_pid]
    return [pid for pid in pids if pid is not None]


def open_lab(n: int) -> Lab:
    tmp = Path(tempfile.mkdtemp(prefix="rbee-bench-"))
    repo = make_rbee_repo(Path(tempfile.gettempdir()))
    try:
        hosts = start_hosts(n)
    except BaseException:
        repo.remove()
        raise
    return Lab(hosts, repo, tmp)


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.monotonic()
    value = fn()
    return time.monotonic() - start, value


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


# --------------------------------------------------------------------------- hosts


def clean(hosts: Sequence[Host]) -> None:
    """Back to a fresh account: nothing of rbee-infra's or the peers' left."""
    for host in hosts:
        # '[r]bee-job' matches the build jobs but not this command line itself
        host.run("pkill -u \"$(id -u)\" -f '[r]bee-job'", check=False)
        host.run(
            "rm -rf .local/share/rbee .local/bin/rbee-hive .local/bin/rbee-hive.pre-rbee-infra "
            ".rbee-peer-* .ansible"
        )
        left = host.run(
            'for p in .local/share/rbee .local/bin/rbee-hive .rbee-peer-*; do [ -e "$p" ] '
            '&& echo "$p"; done; true'
        )
        if left.stdout.strip():
            raise RuntimeError(f"{host.name}: could not clean up: {left.stdout}")


def sshd_counts(host: Host) -> tuple[int, int]:
    """(completed logins, commands started) so far, from the host's sshd log."""
    text = host.sshd_log.read_text(errors="replace") if host.sshd_log.exists() else ""
    return text.count("Accepted publickey"), text.count("Starting session")


def counting(hosts: Sequence[Host], fn: Callable[[], T]) -> tuple[T, list[tuple[int, int]]]:
    """Run fn; per host the logins and commands it caused."""
    before = [sshd_counts(h) for h in hosts]
    value = fn()
    after = [sshd_counts(h) for h in hosts]
    return value, [(a[0] - b[0], a[1] - b[1]) for a, b in zip(after, before, strict=True)]


def ssh_command(lab: Lab, host: Host) -> list[str]:
    """The OpenSSH client, host key checked, our key only."""
    return [
        "ssh", "-q", "-F", "none", "-i", str(lab.hosts.client_key_path),
        "-o", f"UserKnownHostsFile={lab.hosts.known_hosts_path}",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
        "-p", str(host.port), f"{host.user}@{host.address}",
    ]  # fmt: skip


def standin(hosts: Sequence[Host], seconds: float) -> str:
    return standin_cargo.install(hosts, seconds)


def versions(lab: Lab, host: Host, paths: Sequence[str]) -> list[str]:
    """`--version` of each path, else (rbee's workers have none) its `--help` usage line, over
    SSH (an independent check of what a tool installed)."""
    script = "; ".join(
        f'{{ "$HOME/{p}" --version 2>/dev/null || "$HOME/{p}" --help | grep -i -m 1 "^usage:"; }}'
        for p in paths
    )
    r = subprocess.run(
        [*ssh_command(lab, host), script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if r.returncode != 0:
        raise AssertionError(f"{host.name}: {script} failed: {r.stderr.strip()}")
    return r.stdout.split("\n")[: len(paths)]


# --------------------------------------------------------------------------- rbee-infra


RBEE_PATHS = (
    ".local/bin/rbee-hive",
    ".local/share/rbee/workers/rbee-worker-cpu",
    ".local/share/rbee/workers/rbee-worker-cuda",
)


def rbee_config(
    lab: Lab, hosts: Sequence[Host], *, cargo: str | None = None,
    worker_types: Sequence[str] = WORKER_TYPES,
) -> dict[str, Any]:
    """hive + cpu + cuda worker (or `worker_types`) per host, from the fixture repo's v0.1.0
    (no service: the peers run none either)."""
    sub = dataclasses.replace(lab.hosts, hosts=list(hosts))
    config = make_fleet(
        sub,
        lab.repo,
        workers_per_hive=len(worker_types),
        worker_types=worker_types,
        ref={"tag": TAG},
    )
    for hive in config["rbee:hives"]:
        hive["autoStart"] = False
        hive["checkPlatform"] = False
        if cargo:
            hive["cargo"] = cargo
    return config


def without_kickoff(decls: list[Decl]) -> list[Decl]:
    """The naive design: no BuildKickoff, each install starts its own build."""
    kept = [d for d in decls if not d.name.startswith("build-")]
    return [
        dataclasses.replace(
            d, depends_on=tuple(x for x in d.depends_on if not x.startswith("build-"))
        )
        for d in kept
    ]


@dataclass
class RbeeStack:
    """One Pulumi stack of the lab, driven like `pulumi up` drives the provider."""

    lab: Lab
    name: str
    config: dict[str, Any]
    kickoff: bool = True
    engine: Engine | None = None

    def __post_init__(self) -> None:
        self.engine = Engine(self.lab.tmp / self.name / "state.json", stack="bench")

    def decls(self) -> list[Decl]:
        # the program runs on the stack the engine records (receipts name it; `status`
        # computes the same install ids only for the same stack)
        assert self.engine is not None
        decls = declare(self.config, stack=self.engine.stack)
        return decls if self.kickoff else without_kickoff(decls)

    def up(self) -> tuple[float, UpResult]:
        assert self.engine is not None
        seconds, result = timed(lambda: self.engine.up(self.decls()))  # type: ignore[union-attr]
        if not result.ok:
            raise AssertionError(f"rbee-infra up failed: {result.errors}")
        return seconds, result

    def preview_ops(self) -> dict[str, str]:
        assert self.engine is not None
        return self.engine.preview(self.decls()).ops()

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


def answers(line: str, binary: str) -> bool:
    """`versions` saw the binary run: its `--version` line, or its `--help` usage line."""
    return line.startswith(binary) or line.lower().startswith("usage:")


def check_rbee_installed(
    lab: Lab, hosts: Sequence[Host], worker_types: Sequence[str] = WORKER_TYPES
) -> None:
    paths = [RBEE_PATHS[0], *(f".local/share/rbee/workers/rbee-worker-{t}" for t in worker_types)]
    expected = ["rbee-hive", *(f"llm-worker-rbee-{t}" for t in worker_types)]
    for host in hosts:
        lines = versions(lab, host, paths)
        for line, binary in zip(lines, expected, strict=True):
            if not answers(line, binary):
                raise AssertionError(f"{host.name}: {binary} --version/--help said {line!r}")


# --------------------------------------------------------------------------- reporting


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
