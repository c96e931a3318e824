"""Benchmark 6: start-up, what every `pulumi preview`/`up` pays before any host work
(`tests.harness.startup`): the program's process until its first resource registration, and
the provider server until it answers its first Check. Beside each, its floor, which is not
rbee-infra's: a fresh Python importing the Pulumi SDK (the program's), and the SDK's provider
server printing its port (the provider's). Target: each <= 0.3 s."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from benchmarks.common import Lab, median, table
from tests.harness.startup import program_start, provider_start

NAME = "start-up: program to first registration, provider server to first Check"
TARGET_S = 0.3


def _sdk_import() -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", "import pulumi"], check=True, timeout=120)
    return time.monotonic() - t0


def run(lab: Lab, *, quick: bool) -> dict[str, Any]:
    del lab  # no hosts needed
    repeats = 3 if quick else 7
    program: list[float] = []
    floor: list[float] = []
    provider: list[float] = []
    ready: list[float] = []
    for _ in range(repeats):  # interleaved: each meets the same machine
        program.append(program_start().seconds)
        floor.append(_sdk_import())
        start, port = provider_start()
        provider.append(start.seconds)
        ready.append(port)
    rows = [
        {"process": "program, to its first registration", "seconds": round(median(program), 3),
         "floor": "fresh Python: import pulumi", "floor_s": round(median(floor), 3)},
        {"process": "provider server, to its first Check answer",
         "seconds": round(median(provider), 3),
         "floor": "SDK provider server: port printed", "floor_s": round(median(ready), 3)},
    ]  # fmt: skip
    text = table(
        ["process", "seconds (median)", "its floor", "floor (s)", "rbee-infra's share (s)"],
        [[r["process"], f"{r['seconds']:.3f}", r["floor"], f"{r['floor_s']:.3f}",
          f"{r['seconds'] - r['floor_s']:.3f}"] for r in rows],
    )  # fmt: skip
    met = all(r["seconds"] <= TARGET_S for r in rows)
    return {"name": NAME, "rows": rows, "table": text, "repeats": repeats,
            "target": f"each <= {TARGET_S} s", "met": met}  # fmt: skip
