"""Benchmark 4: `rbee-infra status` on 16 hosts (hive + 2 workers each, installed): how long it
takes, and SSH logins per host (target <= 1), counted by each host's sshd."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import yaml

from benchmarks.common import Lab, RbeeStack, clean, counting, rbee_config, standin, table, timed

NAME = "rbee-infra status"


def run(lab: Lab, *, quick: bool) -> dict[str, Any]:
    n = 4 if quick else 16
    hosts = lab.first(n)
    clean(hosts)
    cargo = standin(hosts, 0)
    config = rbee_config(lab, hosts, cargo=cargo)
    stack = RbeeStack(lab, f"status-{n}", config)
    project = lab.tmp / "project"
    (project / "stacks").mkdir(parents=True, exist_ok=True)
    (project / "Pulumi.yaml").write_text(
        "name: rbee-infra\nruntime: python\nstackConfigDir: stacks\n"
    )
    (project / "stacks" / "Pulumi.bench.yaml").write_text(yaml.safe_dump({"config": config}))
    command = [
        sys.executable, "-m", "rbee_infra.cli", "status", "--project-dir", str(project),
        "--stack", "bench", "--json",
    ]  # fmt: skip
    try:
        stack.up()

        def status() -> tuple[float, subprocess.CompletedProcess[str]]:
            return timed(
                lambda: subprocess.run(command, capture_output=True, text=True, timeout=300)
            )

        (seconds, proc), per_host = counting(hosts, status)
    finally:
        stack.close()
        clean(hosts)
    if proc.returncode != 0:  # every host was just installed by the stack: all in sync
        output = (proc.stdout + proc.stderr)[-2000:]
        raise AssertionError(f"status exited {proc.returncode}: {output}")
    summary = json.loads(proc.stdout).get("summary", {})
    summary["exit"] = proc.returncode
    logins = max(h for h, _ in per_host)
    commands = sum(c for _, c in per_host) / n
    row = {
        "hosts": n,
        "seconds": round(seconds, 2),
        "logins_per_host": logins,
        "commands_per_host": round(commands, 1),
        "summary": summary,
    }
    text = table(
        ["hosts", "status (s)", "SSH logins per host", "commands per host"],
        [[n, row["seconds"], logins, row["commands_per_host"]]],
    )
    return {"name": NAME, "rows": [row], "table": text, "target": "<= 1 login per host",
            "met": logins <= 1}  # fmt: skip
