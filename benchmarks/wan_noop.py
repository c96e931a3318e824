"""Benchmark 10: a no-op across a network round trip. Benchmark 5's stack (hive + 2 workers per
host) and pyinfra's no-op of the same install, with every SSH connection behind a proxy that
adds a round trip of `RTT_MS` (`benchmarks.latency`), as to hosts in another room or across a
WAN: `pulumi up --skip-preview` and `pulumi preview` with the provider server reading the hosts
ahead (the default) and without it (`RBEE_INFRA_READ_AHEAD=0`), beside pyinfra, interleaved,
on 1 and 16 hosts. What each tool pays per round trip shows: rbee-infra's no-op is one SSH
handshake and one batched command per host, all hosts at once.
"""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

from benchmarks import conditions, latency
from benchmarks.cli_noop import _install_peer, _peer, _ratio, installed, prepared
from benchmarks.common import Lab, check_rbee_installed, clean, table
from tests.e2e.project import Project

NAME = "no-op across a network round trip (hive + 2 workers per host)"
DEFAULT_SIZES = (1, 16)
RTT_MS = 40.0
OPS = ("up", "up_direct", "preview", "preview_direct", "pyinfra")
LABELS = {"up": "pulumi up --skip-preview", "up_direct": "the same, not read ahead",
          "preview": "pulumi preview", "preview_direct": "the same, not read ahead",
          "pyinfra": "pyinfra"}  # fmt: skip


def _cli(project: Project, *args: str, read_ahead: bool) -> Callable[[], Any]:
    env = {**project.env, "RBEE_INFRA_READ_AHEAD": "1" if read_ahead else "0"}

    def run() -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["pulumi", *args, "--expect-no-changes", "--non-interactive",
             "--stack", project.stack], cwd=project.path, env=env, capture_output=True,
            text=True, timeout=600, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
            raise AssertionError(f"pulumi {' '.join(args)} is not a no-op:\n{tail}")
        return done

    return run


def run(lab: Lab, *, quick: bool, sizes: Sequence[int] | None = None) -> dict[str, Any]:
    sizes, repeats, top, cargo = prepared(lab, 10, quick, sizes, DEFAULT_SIZES)
    rows: list[dict[str, Any]] = []
    with latency.delayed(lab, top, RTT_MS) as far, ExitStack() as stack:
        projects: dict[int, Project] = {}
        for n in sizes:
            projects[n] = installed(stack, far, n, cargo, lab.tmp / f"wan-{n}", "wan")
            _install_peer(far, far.first(n), cargo, "pyinfra")
        check_rbee_installed(far, far.first(max(sizes)))
        for n in sizes:
            p = projects[n]
            steps: list[tuple[str, Callable[[], Any]]] = [
                ("up", _cli(p, "up", "--yes", "--skip-preview", read_ahead=True)),
                ("up_direct", _cli(p, "up", "--yes", "--skip-preview", read_ahead=False)),
                ("preview", _cli(p, "preview", read_ahead=True)),
                ("preview_direct", _cli(p, "preview", read_ahead=False)),
            ]
            runs: dict[str, list[conditions.Sample]] = {op: [] for op in OPS}
            for i in range(repeats):
                for op, step in steps if i % 2 == 0 else steps[::-1]:
                    runs[op].append(conditions.measure(step)[0])
                sample, (seconds, _) = conditions.measure(
                    lambda n=n: _peer(far, far.first(n), cargo, "pyinfra")
                )
                runs["pyinfra"].append(dataclasses.replace(sample, seconds=seconds))
            rows.append({"hosts": n, "series": {k: conditions.series(v) for k, v in runs.items()}})
    clean(top)
    return _report(rows, repeats)


def _report(rows: list[dict[str, Any]], repeats: int) -> dict[str, Any]:
    text = f"every SSH connection behind a proxy adding {RTT_MS:g} ms per round trip\n\n"
    text += table(
        ["hosts", *[f"{LABELS[op]} (s)" for op in OPS], "conditions (pulumi up)"],
        [[r["hosts"], *[r["series"][op].text() for op in OPS], r["series"]["up"].conditions()]
         for r in rows],
    )  # fmt: skip
    text += f"\n\nmedian of {repeats} (min-max)\n"
    ratios: list[dict[str, Any]] = []
    for r in rows:
        for mine, other in (("up", "pyinfra"), ("preview", "pyinfra"), ("up", "up_direct"),
                            ("preview", "preview_direct")):  # fmt: skip
            ratio, why = _ratio(r["series"][mine], r["series"][other])
            hosts = f"{r['hosts']} host" + ("s" if r["hosts"] != 1 else "")
            what = f"{hosts}: {LABELS[other]} takes " + (
                f"{ratio:.2f}x the time of {LABELS[mine]}" if ratio is not None else "-"
            )
            ratios.append({"what": what, "ratio": ratio, "not_compared": why})
            text += f"\n- {what}" + (f" (not compared: {why})" if why else "")
    peak = rows[-1]
    met = all(
        (ratio := _ratio(peak["series"][op], peak["series"]["pyinfra"])[0]) is not None
        and ratio >= 1.0
        for op in ("up", "preview")
    )
    return {
        "name": NAME,
        "met": met,
        "target": f"up and preview at most pyinfra's time at {peak['hosts']} hosts",
        "rtt_ms": RTT_MS,
        "rows": [
            {"hosts": r["hosts"], **{op: s.as_dict() for op, s in r["series"].items()}}
            for r in rows
        ],
        "ratios": ratios,
        "table": text,
    }
