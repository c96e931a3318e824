from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests import metrics
from tests.harness._provider_proc import hear_interrupts

pytest_plugins = ["tests.harness.fixtures"]

hear_interrupts()  # the suite runs the same however it was started

OUTCOMES: dict[str, str] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Any) -> Any:
    metrics.CURRENT["test"] = item.nodeid
    yield


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    relevant = report.when == "call" or report.outcome != "passed"
    if relevant and OUTCOMES.get(report.nodeid, "passed") == "passed":
        OUTCOMES[report.nodeid] = report.outcome


def _scenario_report() -> dict[str, Any]:
    scenarios = {
        k: v
        for k, v in OUTCOMES.items()
        if any(m in k for m in ("test_scenarios", "test_reliability", "test_secret", "test_hostile_input"))
    }
    installs = [r for r in metrics.RECORDS if r["kind"] == "install"]
    per_host: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in installs:
        per_host[r["host"]].append({k: r[k] for k in ("clone", "build", "total", "test")})
    ran = [v for v in scenarios.values() if v != "skipped"]
    return {
        "scenarios": scenarios,
        "success_rate": (ran.count("passed") / len(ran)) if ran else None,
        "per_host": per_host,
        "speedup": [r for r in metrics.RECORDS if r["kind"] == "speedup"],
        "records": metrics.RECORDS,
    }


def pytest_terminal_summary(terminalreporter: Any) -> None:
    report = _scenario_report()
    if not report["scenarios"]:
        return
    out = Path("reports")
    out.mkdir(exist_ok=True)
    (out / "scenarios.json").write_text(json.dumps(report, indent=2, default=str))
    write = terminalreporter.write_line
    terminalreporter.section("scenario metrics (reports/scenarios.json)")
    ran = [v for v in report["scenarios"].values() if v != "skipped"]
    rate = report["success_rate"]
    write(f"scenarios: {len(ran)} run, {ran.count('passed')} passed"
          + (f" ({rate:.0%})" if rate is not None else ""))
    for host, runs in sorted(report["per_host"].items()):
        clone = [r["clone"] for r in runs if r["clone"] is not None]
        build = [r["build"] for r in runs if r["build"] is not None]
        total = [r["total"] for r in runs if r["total"] is not None]
        if total:
            write(f"  {host}: {len(total)} installs, clone {_avg(clone)}s, build {_avg(build)}s, "
                  f"total {_avg(total)}s (mean)")
    faults = [r for r in metrics.RECORDS if r["kind"] == "fault"]
    if faults:
        survived = [f for f in faults if f["survived"] and OUTCOMES.get(f["test"]) == "passed"]
        lost = sum(f["data_lost"] for f in faults)
        write(f"fault matrix: {len(faults)} tried, {len(survived)} survived, data lost {lost}")
        for f in faults:
            ok = f in survived
            write(f"  {'survived' if ok else 'FAILED  '}  data lost {f['data_lost']}  {f['fault']}")
    for s in report["speedup"]:
        write(f"  {s['hosts']} hosts: sequential {s['sequential']:.1f}s, concurrent "
              f"{s['concurrent']:.1f}s, speedup {s['ratio']:.2f}x")


def _avg(values: list[float]) -> str:
    return f"{sum(values) / len(values):.2f}" if values else "-"
