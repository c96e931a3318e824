"""Benchmark 2: a no-op sync (everything already installed and current) of a hive and 2 workers
per host: rbee-infra (`up` through the engine driver) vs pyinfra and vs ansible-playbook doing
the same idempotent install (peers/). Each tool first installs into its own directory
(untimed; the stand-in cargo makes that quick), then its no-op run is timed. Target: faster
than both.

The peers' times include their whole process. rbee-infra's include the program run and the
provider's first call (its imports of rbee_infra), not what a real `pulumi up` starts first:
the program's own Python process and the provider server's SDK imports (the engine driver
forks providers from a pre-imported Python). Those are measured here too (`startup`), and
the table shows the sum as a lower bound of a CLI run (the Pulumi CLI itself cannot run
here)."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from benchmarks import peers
from benchmarks.common import (
    Lab,
    RbeeStack,
    check_rbee_installed,
    clean,
    counting,
    median,
    rbee_config,
    standin,
    table,
)

NAME = "no-op sync (hive + 2 workers, nothing to do)"

# what a `pulumi up` runs before its first provider call, beyond the engine driver's run
STARTUP = {
    "program": "import pulumi, rbee_infra.stack.program",
    "provider_sdk": "import dill, grpc, pulumi, pulumi.dynamic, pulumi.runtime.rpc",
}


def startup(repeats: int = 3) -> dict[str, float]:
    """Seconds (median) of a fresh Python importing what the program's process and the
    provider server's process import before any work."""
    out: dict[str, float] = {}
    for name, code in STARTUP.items():
        runs = []
        for _ in range(repeats):
            t0 = time.monotonic()
            subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
            runs.append(time.monotonic() - t0)
        out[name] = round(median(runs), 2)
    return out


def run(lab: Lab, *, quick: bool) -> dict[str, Any]:
    sizes = (4,) if quick else (8, 16)
    repeats = 1 if quick else 3
    top = lab.first(max(sizes))
    clean(top)
    cargo = standin(top, 0)
    stacks = {
        n: RbeeStack(lab, f"noop-{n}", rbee_config(lab, lab.first(n), cargo=cargo)) for n in sizes
    }
    try:
        # set-up (untimed): every tool installs everything once
        for n in sizes:
            stacks[n].up()
        check_rbee_installed(lab, top)
        peers.ansible_run(lab, top, cargo)
        peers.pyinfra_run(lab, top, cargo)
        for host in top:
            peers.check_installed(lab, host, "ansible")
            peers.check_installed(lab, host, "pyinfra")

        fixed = startup()
        rows = []
        for n in sizes:
            hosts = lab.first(n)
            runs: dict[str, list[float]] = {"rbee": [], "pyinfra": [], "ansible": []}
            logins: dict[str, int] = {}
            commands: dict[str, float] = {}
            for _ in range(repeats):
                (seconds, result), per_host = counting(hosts, stacks[n].up)
                if set(result.ops().values()) != {"same"}:
                    raise AssertionError(f"rbee-infra no-op changed something: {result.ops()}")
                runs["rbee"].append(seconds)
                logins["rbee"] = max(h for h, _ in per_host)
                commands["rbee"] = sum(c for _, c in per_host) / n

                (seconds, changed), per_host = counting(
                    hosts, lambda hosts=hosts: peers.pyinfra_run(lab, hosts, cargo)
                )
                if changed:
                    raise AssertionError(f"pyinfra no-op changed {changed} operations")
                runs["pyinfra"].append(seconds)
                logins["pyinfra"] = max(h for h, _ in per_host)
                commands["pyinfra"] = sum(c for _, c in per_host) / n

                (seconds, changed), per_host = counting(
                    hosts, lambda hosts=hosts: peers.ansible_run(lab, hosts, cargo)
                )
                if changed:
                    raise AssertionError(f"ansible no-op changed {changed} tasks")
                runs["ansible"].append(seconds)
                logins["ansible"] = max(h for h, _ in per_host)
                commands["ansible"] = sum(c for _, c in per_host) / n
            best = {tool: median(values) for tool, values in runs.items()}
            with_startup = best["rbee"] + sum(fixed.values())
            rows.append(
                {
                    "hosts": n,
                    **{f"{tool}_s": round(v, 2) for tool, v in best.items()},
                    "pyinfra_over_rbee": round(best["pyinfra"] / best["rbee"], 2),
                    "ansible_over_rbee": round(best["ansible"] / best["rbee"], 2),
                    "rbee_with_startup_s": round(with_startup, 2),
                    "pyinfra_over_rbee_with_startup": round(best["pyinfra"] / with_startup, 2),
                    "commands_per_host": {t: round(c, 1) for t, c in commands.items()},
                    "logins_per_host": logins,
                    "repeats": repeats,
                }
            )
    finally:
        for stack in stacks.values():
            stack.close()
        clean(top)
    text = table(
        ["hosts", "rbee-infra (s)", "pyinfra (s)", "ansible (s)", "pyinfra / rbee-infra",
         "ansible / rbee-infra", "rbee-infra + CLI start-up (s, at least)",
         "pyinfra / that", "commands per host (rbee / pyinfra / ansible)"],
        [
            [r["hosts"], r["rbee_s"], r["pyinfra_s"], r["ansible_s"],
             f"{r['pyinfra_over_rbee']:.1f}x", f"{r['ansible_over_rbee']:.1f}x",
             r["rbee_with_startup_s"], f"{r['pyinfra_over_rbee_with_startup']:.1f}x",
             " / ".join(f"{r['commands_per_host'][t]:g}" for t in ("rbee", "pyinfra", "ansible"))]
            for r in rows
        ],
    )  # fmt: skip
    text += (
        f"\n\nstart-up a CLI run adds (not in the rbee-infra column): program process "
        f"{fixed['program']} s, provider server's SDK imports {fixed['provider_sdk']} s, "
        "plus the Pulumi CLI itself (not measurable here)"
    )
    met = all(r["pyinfra_over_rbee"] > 1 and r["ansible_over_rbee"] > 1 for r in rows)
    return {"name": NAME, "rows": rows, "table": text, "target": "faster than both", "met": met,
            "startup_s": fixed}  # fmt: skip
