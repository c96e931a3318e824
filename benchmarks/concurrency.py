"""Benchmark 3: concurrent vs sequential cold installs on 1, 2, 4, 8, 16 hosts, with a stand-in
cargo that sleeps (a long build whose length does not depend on how many hosts share this
machine's two cores; tests/harness/standin_cargo.py). "Sequential" is N times the measured
one-host install (one host after another). Target: 16 hosts take <= 1.3x the time of 4.

With `naive`, the same installs without the BuildKickoff resource (each install starts its
own build, so the provider server's 4 threads are 4 builds at a time) are measured too."""

from __future__ import annotations

from typing import Any

from benchmarks.common import (
    Lab,
    RbeeStack,
    check_rbee_installed,
    clean,
    rbee_config,
    standin,
    table,
)
from tests.harness import standin_cargo

NAME = "concurrent vs sequential installs (stand-in build)"


def _install(lab: Lab, n: int, seconds: float, *, kickoff: bool) -> tuple[float, int]:
    hosts = lab.first(n)
    clean(hosts)
    cargo = standin(hosts, seconds)
    stack = RbeeStack(lab, f"conc-{n}-{kickoff}", rbee_config(lab, hosts, cargo=cargo))
    stack.kickoff = kickoff
    try:
        elapsed, _ = stack.up()
        check_rbee_installed(lab, hosts)
        builds = [b for host in hosts for b in standin_cargo.builds(host)]
        return elapsed, standin_cargo.most_at_once(builds)
    finally:
        stack.close()
        clean(hosts)


def run(lab: Lab, *, quick: bool, naive: bool = False) -> dict[str, Any]:
    seconds = 3.0 if quick else 5.0
    sizes = (1, 4, 8) if quick else (1, 2, 4, 8, 16)
    one, _ = _install(lab, 1, seconds, kickoff=True)
    rows = []
    for n in sizes:
        elapsed, peak = (one, 1) if n == 1 else _install(lab, n, seconds, kickoff=True)
        row: dict[str, Any] = {
            "hosts": n,
            "concurrent_s": round(elapsed, 2),
            "sequential_s": round(n * one, 2),
            "speedup": round(n * one / elapsed, 2),
            "builds_at_once": peak,
        }
        if naive and n in (4, 16):
            row["naive_s"], row["naive_builds_at_once"] = _install(lab, n, seconds, kickoff=False)
            row["naive_s"] = round(row["naive_s"], 2)
        rows.append(row)
    by = {r["hosts"]: r["concurrent_s"] for r in rows}
    top = max(sizes)
    ratio = by[top] / by[4]
    header = ["hosts", "concurrent (s)", "sequential (s)", "speedup", "builds at once"]
    if naive:
        header += ["without kick-off (s)", "builds at once without"]
    text = table(
        header,
        [
            [r["hosts"], r["concurrent_s"], r["sequential_s"], f"{r['speedup']:.1f}x",
             f"{r['builds_at_once']} of {r['hosts']}"]
            + ([r.get("naive_s", "-"), r.get("naive_builds_at_once", "-")] if naive else [])
            for r in rows
        ],
    )  # fmt: skip
    return {
        "name": NAME,
        "build_seconds": seconds,
        "rows": rows,
        "table": text,
        f"time_{top}_over_4": round(ratio, 2),
        "target": f"{top} hosts <= 1.3x the time of 4",
        "met": ratio <= 1.3,
    }
