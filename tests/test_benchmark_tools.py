"""The benchmarks' own instruments: the engine-log phases and the conditions check."""

from __future__ import annotations

import json

import pytest

from benchmarks import conditions, enginelog
from benchmarks.conditions import Sample


def _log(entries: list[tuple[float, str]]) -> str:
    """JSON lines as v3.260.0 writes them, at these seconds after 14:00:00 UTC."""
    def stamp(at: float) -> str:
        whole = int(at)
        return f"2026-12-06T14:00:{whole:02d}.{round((at - whole) * 1e9):09d}Z"

    return "\n".join(json.dumps({"time": stamp(t), "level": "INFO", "msg": m, "v": 7})
                     for t, m in entries)  # fmt: skip


URN = "urn:pulumi:bench::rbee-infra::pulumi-python:dynamic:Resource::"
RUN = [
    (1.0, "OTLP receiver started on port 1"),
    (1.3, "langhost[python].Run(pwd=/p,...,dryrun=true) executing"),
    (1.5, "registering resource: ty=pulumi:pulumi:Stack, name=s, custom=False, remote=False"),
    (1.6, "ProviderRegistry.Check(urn:pulumi:b::p::pulumi:providers:pulumi-python::default) "
          "executing (#olds=5,#news=5)"),
    (1.9, "Provider[0xc0].GetPluginInfo() executing"),
    (1.95, f"Provider[0xc0].Check({URN}build-kickoff) executing (#olds=4,#news=2)"),
    (2.6, f"Provider[0xc0].Check({URN}build-kickoff) success: inputs=#3 failures=#0"),
    (2.61, f"Provider[0xc0].Diff({URN}build-kickoff,build-kickoff): executing (#oldInputs=4)"),
    (2.62, f"Provider[0xc0].Diff({URN}build-kickoff,build-kickoff) success: changes=1"),
    (2.63, f"Provider[0xc0].Check({URN}hive-h1) executing (#olds=22,#news=21)"),
    (2.65, f"Provider[0xc0].Check({URN}hive-h1) success: inputs=#22 failures=#0"),
    (2.66, f"Provider[0xc0].Diff({URN}hive-h1,abc): executing (#oldInputs=22)"),
    (2.70, f"Provider[0xc0].Diff({URN}hive-h1,abc) success: changes=1"),
    (2.9, "langhost[python].Run(pwd=/p,...,dryrun=true) success: progerr=, bail=false"),
    (3.0, "OTLP receiver stopped gracefully"),
]


@pytest.mark.unit
def test_the_phases_of_a_run_add_up_to_it() -> None:
    base = enginelog.lines(_log(RUN))[0].at - 1.0  # 14:00:00
    phases = enginelog.phases(_log(RUN), spawned=base + 0.8, exited=base + 3.1)
    assert phases == {
        "CLI start": 0.2, "CLI set-up": 0.3, "program start": 0.2,
        "program, to its first resource": 0.1, "provider start": 0.3, "first Check": 0.7,
        "other Checks and Diffs": 0.1, "program end": 0.2, "shutdown": 0.2,
    }  # fmt: skip
    assert sum(phases.values()) == pytest.approx(3.1 - 0.8)
    calls = enginelog.calls(_log(RUN))
    assert calls == {"check_s": 0.67, "diff_s": 0.05, "resources": 2}


@pytest.mark.unit
def test_a_program_without_resources_has_no_provider_phases() -> None:
    empty = [RUN[0], RUN[1], RUN[2], RUN[-2], RUN[-1]]
    base = enginelog.lines(_log(empty))[0].at - 1.0
    phases = enginelog.phases(_log(empty), spawned=base + 0.8, exited=base + 3.1)
    assert list(phases) == ["CLI start", "CLI set-up", "program start", "program end", "shutdown"]
    with pytest.raises(ValueError, match="no engine log lines"):
        enginelog.phases("not a log", spawned=0, exited=1)


@pytest.mark.unit
def test_the_older_glog_lines_are_read_too() -> None:
    log = (f"I1206 14:00:01.000000 123 provider_plugin.go:1] Provider[0x1].Check({URN}a) "
           "executing\n"
           f"I1206 14:00:01.250000 123 provider_plugin.go:1] Provider[0x1].Check({URN}a) "
           "success: inputs=#1")  # fmt: skip
    assert enginelog.calls(log)["check_s"] == 0.25


def _series(seconds: list[float], load: float, uptime: float) -> conditions.Series:
    return conditions.series([Sample(s, load, uptime) for s in seconds])


@pytest.mark.unit
def test_series_under_other_conditions_are_not_compared() -> None:
    calm = _series([2.0, 2.2, 2.1], load=1.0, uptime=3600)
    assert calm.text() == "2.10 (2.00-2.20)"
    assert calm.conditions() == "load 1.0-1.0, up 60 min"
    assert conditions.comparable(calm, _series([1.0], load=1.8, uptime=4000)) == ""
    assert conditions.comparable(calm, _series([1.0], load=4.0, uptime=4000)) == (
        "the load differed (1.0 against 4.0)"
    )
    # a heavy load leaves more slack (30 %), but a run just after boot is a regime of its own
    assert conditions.comparable(_series([1.0], 6.0, 3600), _series([1.0], 7.5, 3600)) == ""
    assert "within 15 min of boot" in conditions.comparable(calm, _series([1.0], 1.0, 300))
    with pytest.raises(ValueError):
        conditions.series([])


@pytest.mark.unit
def test_the_conditions_are_read_from_proc() -> None:
    files = {"/proc/loadavg": "3.25 2.18 1.48 1/200 99\n", "/proc/uptime": "1759.20 1733.63\n"}
    assert conditions.now(files.__getitem__) == (3.25, 1759.2)
    assert conditions.fresh_memory_rate(4) > 0


@pytest.mark.unit
def test_benchmark_5_compares_only_what_it_may() -> None:
    from benchmarks import cli_noop

    def row(hosts: int, up: float, load: float, pyinfra: float | None) -> dict[str, object]:
        found = {op: _series([up], load, 3600) for op in ("up", "preview", "up_with_preview")}
        found |= {f"floor_{op}": _series([1.0], load, 3600) for op in ("up", "preview")}
        if pyinfra is not None:
            found["pyinfra"] = _series([pyinfra], load, 3600)
        return {"hosts": hosts, "series": found, "pyinfra_changed": 0}

    rows = [row(1, 1.2, 2.0, 1.0), row(16, 2.0, 2.0, 2.5), row(64, 5.0, 2.0, None)]
    phases = {"floor preview": {"seconds": 1.0, "phases": {"CLI start": 0.2}, "check_s": 0.0,
                                "diff_s": 0.0}}  # fmt: skip
    report = cli_noop._report(rows, phases, [1, 16, 64], 1, 900.0)
    targets = {t["what"]: t for t in report["targets"]}
    assert targets["up at 16 hosts: pyinfra takes 1.25x its time"]["met"] is True
    # pyinfra's line through 1 and 16 hosts (0.9 s + 0.1 s per host) at 64 hosts: 7.3 s
    assert targets["up at 64 hosts against pyinfra's line (7.30 s): 1.46x its time"]["met"]
    scale = cli_noop._report(rows[1:], phases, [16, 64], 1, 900.0)
    alone = [t for t in scale["targets"] if "64 hosts" in t["what"]]
    assert alone[0]["met"] is None and "fewer than 2 sizes" in alone[0]["not_compared"]
    # a series under another load is not set against the others
    rows[1]["series"]["pyinfra"] = _series([2.5], 6.0, 3600)  # type: ignore[index]
    report = cli_noop._report(rows[:2], phases, [1, 16], 1, 900.0)
    refused = [t for t in report["targets"] if t["met"] is None]
    assert refused and refused[0]["not_compared"] == "the load differed (2.0 against 6.0)"
    assert not report["met"]
