"""Benchmark 1: cold install of a hive and 2 workers per host, real cargo builds of the fixture
workspace: rbee-infra through the engine driver vs a hand-written parallel sh+ssh script doing
the same steps (peers/install.sh), which is the practical limit. Target: <= 1.10x."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks import peers
from benchmarks.common import (
    Lab,
    RbeeStack,
    check_rbee_installed,
    clean,
    counting,
    rbee_config,
    table,
)

NAME = "cold install (hive + 2 workers, real cargo)"


def run(lab: Lab, *, quick: bool) -> dict[str, Any]:
    sizes = (2, 4) if quick else (4, 8)
    rows = []
    for index, n in enumerate(sizes):
        hosts = lab.first(n)
        clean(hosts)
        stack = RbeeStack(lab, f"cold-{n}", rbee_config(lab, hosts))
        tools: dict[str, Callable[[], float]] = {
            "rbee": lambda stack=stack: stack.up()[0],
            "bash": lambda hosts=hosts: peers.bash_install(lab, hosts, "cargo"),
        }
        # alternate which goes first, so neither always meets a warmer machine
        order = ["rbee", "bash"] if index % 2 == 0 else ["bash", "rbee"]
        seconds: dict[str, float] = {}
        logins: dict[str, int] = {}
        for tool in order:
            seconds[tool], per_host = counting(hosts, tools[tool])
            logins[tool] = max(h for h, _ in per_host)
        check_rbee_installed(lab, hosts)
        for host in hosts:
            peers.check_installed(lab, host, "bash")
        stack.close()
        clean(hosts)
        rows.append(
            {
                "hosts": n,
                "rbee_infra_s": round(seconds["rbee"], 2),
                "sh_ssh_s": round(seconds["bash"], 2),
                "ratio": round(seconds["rbee"] / seconds["bash"], 3),
                "rbee_infra_logins_per_host": logins["rbee"],
            }
        )
    text = table(
        ["hosts", "rbee-infra (s)", "sh+ssh (s)", "ratio", "rbee-infra SSH logins/host"],
        [
            [r["hosts"], r["rbee_infra_s"], r["sh_ssh_s"], f"{r['ratio']:.2f}x",
             r["rbee_infra_logins_per_host"]]
            for r in rows
        ],
    )  # fmt: skip
    worst = max(r["ratio"] for r in rows)
    return {"name": NAME, "rows": rows, "table": text, "target": "<= 1.10x",
            "met": worst <= 1.10}  # fmt: skip
