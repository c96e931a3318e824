"""Benchmark 7: the SSH handshake, the CPU every host costs before its one batched command.
All hosts connect at once, as the provider does; each row is the wall time until every
connection is authenticated and has run `true`, and the CPU the client process spent.

- OpenSSH's `ssh` client against the lab's sshd (OpenSSH's defaults: a post-quantum hybrid
  where both ends have one, else curve25519-sha256), and with curve25519-sha256 alone;
- asyncssh (what the provider uses) against the lab's sshd, with its default list and with
  curve25519-sha256 alone;
- asyncssh against an asyncssh server (in its own process) that offers mlkem768x25519-sha256,
  the post-quantum hybrid asyncssh prefers: what the default costs where a host supports it.

This is the evidence for `sshKexAlgorithms` (docs/performance.md): no target of its own.
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.common import Lab, median, ssh_command, table
from tests.harness.hosts import Host

NAME = "SSH handshake, all hosts at once (connect, authenticate, run `true`)"
CURVE = "curve25519-sha256"
HYBRID = "mlkem768x25519-sha256"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def openssh(lab: Lab, hosts: Sequence[Host], kex: str | None) -> tuple[float, float]:
    extra = ["-o", f"KexAlgorithms={kex}"] if kex else []
    cpu, t0 = _children_cpu(), time.monotonic()
    procs = []
    for host in hosts:
        command = ssh_command(lab, host)
        procs.append(subprocess.Popen([*command[:-1], *extra, command[-1], "true"]))
    if any(p.wait(timeout=120) for p in procs):
        raise AssertionError("ssh true failed")
    return time.monotonic() - t0, _children_cpu() - cpu


async def _asyncssh_all(targets: Sequence[dict[str, Any]], kex: str | None) -> None:
    import asyncssh

    async def one(target: dict[str, Any]) -> None:
        options = {"kex_algs": [kex]} if kex else {}
        async with asyncssh.connect(**target, **options) as conn:
            await conn.run("true", check=True)

    await asyncio.gather(*(one(t) for t in targets))


def with_asyncssh(targets: Sequence[dict[str, Any]], kex: str | None) -> tuple[float, float]:
    import asyncssh  # noqa: F401  (imported before the clock starts)

    cpu, t0 = _own_cpu(), time.monotonic()
    asyncio.run(_asyncssh_all(targets, kex))
    return time.monotonic() - t0, _own_cpu() - cpu


_SERVER = textwrap.dedent(
    """
    import asyncio, sys
    import asyncssh

    async def handle(process):
        process.exit(0)

    async def main():
        key = asyncssh.generate_private_key("ssh-ed25519")
        server = await asyncssh.listen(
            "127.0.0.1", 0, server_host_keys=[key], authorized_client_keys=sys.argv[1],
            process_factory=handle, kex_algs=[sys.argv[2], sys.argv[3]],
        )
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


def run(lab: Lab, *, quick: bool) -> dict[str, Any]:
    import asyncssh

    n = 8 if quick else 16
    repeats = 3 if quick else 5
    hosts = lab.first(n)
    key = str(lab.hosts.client_key_path)
    targets = [lab.hosts.connect_kwargs(h) for h in hosts]
    pub = lab.tmp / "handshake_authorized_keys"
    pub.write_text(lab.hosts.client_key_public + "\n")
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(pub), HYBRID, CURVE],
        stdout=subprocess.PIPE, text=True, env={**os.environ},
    )  # fmt: skip
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        local = [
            {"host": "127.0.0.1", "port": port, "username": "rbee", "client_keys": [key],
             "known_hosts": None, "agent_path": None, "config": []}
            for _ in hosts
        ]  # fmt: skip
        cases = {
            "OpenSSH client -> sshd, defaults": lambda: openssh(lab, hosts, None),
            f"OpenSSH client -> sshd, {CURVE}": lambda: openssh(lab, hosts, CURVE),
            "asyncssh -> sshd, defaults": lambda: with_asyncssh(targets, None),
            f"asyncssh -> sshd, {CURVE}": lambda: with_asyncssh(targets, CURVE),
            f"asyncssh -> asyncssh server, defaults ({HYBRID})": lambda: with_asyncssh(
                local, None
            ),
            f"asyncssh -> asyncssh server, {CURVE}": lambda: with_asyncssh(local, CURVE),
        }
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for _ in range(repeats):
            for name, case in cases.items():  # interleaved: each meets the same machine
                runs[name].append(case())
    finally:
        server.kill()
        server.wait()
    rows = [
        {"case": name, "hosts": n, "wall_s": round(median([w for w, _ in v]), 3),
         "client_cpu_s": round(median([c for _, c in v]), 3), "repeats": repeats}
        for name, v in runs.items()
    ]  # fmt: skip
    text = table(
        ["case", "hosts at once", "wall (s)", "client CPU (s)"],
        [[r["case"], r["hosts"], f"{r['wall_s']:.3f}", f"{r['client_cpu_s']:.3f}"] for r in rows],
    )
    text += (
        f"\n\nasyncssh {asyncssh.__version__}; OpenSSH server and client: "
        f"{_openssh_version()} (its sshd has no ML-KEM hybrid, so asyncssh's default list "
        f"agrees on {CURVE} with it)"
    )
    return {"name": NAME, "rows": rows, "table": text, "target": "none (evidence)", "met": True}


def _openssh_version() -> str:
    out = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False)
    return (out.stderr or out.stdout).strip().split(",")[0]
