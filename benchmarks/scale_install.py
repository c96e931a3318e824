"""Benchmark 8: a cold install at scale through the real Pulumi CLI. `pulumi up --yes
--skip-preview` of hive + 2 workers per host on 16 and on 64 fresh hosts, with a stand-in cargo
whose every build takes the same fixed time (`tests.harness.standin_cargo`), so that the ratio
measures rbee-infra's scheduling (the build kick-off, the provider's SSH concurrency, the
engine), not the machine's two cores compiling. Target: 64 hosts <= 1.3x the time of 16."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from typing import Any

from benchmarks.common import (
    Lab,
    check_rbee_installed,
    clean,
    counting,
    rbee_config,
    standin,
    table,
    timed,
)
from tests.e2e.project import project_on

NAME = "cold install at scale through the real Pulumi CLI (stand-in build of fixed length)"
BUILD_SECONDS = 5.0
TARGET = 1.3


def run(lab: Lab, *, quick: bool, sizes: Sequence[int] | None = None) -> dict[str, Any]:
    if shutil.which("pulumi") is None:
        raise RuntimeError("benchmark 8 needs the Pulumi CLI: bash scripts/install-pulumi.sh")
    small, large = (4, 8) if quick else (16, 64)
    if sizes:  # the smallest from 16 hosts up, and the largest
        small, large = min((n for n in sizes if n >= 16), default=min(sizes)), max(sizes)
    rows = []
    for n in (small, large):
        hosts = lab.first(n)
        clean(hosts)
        cargo = standin(hosts, BUILD_SECONDS)
        base = lab.tmp / f"scale-{n}"
        base.mkdir()
        base.chmod(0o755)
        sub = dataclasses.replace(lab.hosts, hosts=hosts)
        with project_on(sub, lab.repo, base, stack="scale") as project:
            config = rbee_config(lab, hosts, cargo=cargo)
            for hive in config["rbee:hives"]:
                # the repo read from the file system (chosen when the lab's git daemon reset
                # some of 64 fetches at once, tests/harness/git_inetd.py; kept so the numbers
                # compare with the earlier runs)
                hive["installMethod"]["git"]["repo"] = lab.repo.file_url
            project.write_config(config)
            (seconds, result), per_host = counting(
                hosts, lambda project=project: timed(
                    lambda: project.run("up", "--yes", "--skip-preview")
                )
            )  # fmt: skip
            if result.returncode != 0:
                lines = (result.stdout + result.stderr).splitlines()
                errors = [line for line in lines if "error" in line.lower()]
                tail = "\n".join(errors[:20] + lines[-10:])
                raise AssertionError(f"pulumi up of {n} hosts failed:\n{tail}")
            check_rbee_installed(lab, hosts)
            state = sum(f.stat().st_size for f in (base / "state").rglob("*.json")
                        if f.parent.name != "history" and ".pulumi/stacks" in f.as_posix())
            project.pulumi("destroy", "--yes")  # untimed: the next size starts from fresh hosts
        clean(hosts)
        rows.append({"hosts": n, "up_s": round(seconds, 2),
                     "logins_per_host": max(h for h, _ in per_host),
                     "commands_per_host": round(sum(c for _, c in per_host) / n, 1),
                     "state_bytes": state})  # fmt: skip
    ratio = rows[1]["up_s"] / rows[0]["up_s"]
    text = table(
        ["hosts", "cold pulumi up (s)", "SSH logins per host", "commands per host",
         "state file (KiB)"],
        [[r["hosts"], r["up_s"], r["logins_per_host"], r["commands_per_host"],
          round(r["state_bytes"] / 1024)] for r in rows],
    )  # fmt: skip
    text += (
        f"\n\n{rows[1]['hosts']} hosts / {rows[0]['hosts']} hosts: {ratio:.2f}x "
        f"(every build {BUILD_SECONDS:g} s, 3 builds per host one after the other)"
    )
    return {"name": NAME, "rows": rows, "ratio": round(ratio, 3), "table": text,
            "build_seconds": BUILD_SECONDS,
            "target": f"{rows[1]['hosts']} hosts <= {TARGET}x the time of {rows[0]['hosts']}",
            "met": ratio <= TARGET}  # fmt: skip
