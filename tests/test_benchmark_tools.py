"""The benchmarks' own instruments: the engine-log phases and the conditions check; benchmark
9's arithmetic, its stand-in cargo for this machine, and one install of 1 host each way."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import build_once, conditions, enginelog, inventory_read
from benchmarks import run as bench_run
from benchmarks.common import Lab
from benchmarks.conditions import Sample
from tests.e2e.project import requires_cli
from tests.harness.fixture_repo import RbeeRepo
from tests.harness.hosts import HostSet


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
def test_the_longest_pause_in_the_log_is_named_by_its_neighbours() -> None:
    """Where a run waited (the 5 s regime was in "CLI set-up"): the longest silence and the
    lines on either side."""
    waited = [RUN[0], (6.0, "plugin loaded"), *RUN[1:]]
    assert enginelog.longest_pause(_log(waited)) == {
        "seconds": 5.0, "after": "OTLP receiver started on port 1", "before": "plugin loaded"}
    assert enginelog.longest_pause(_log(RUN))["seconds"] == 0.65  # the kick-off's Check
    assert enginelog.longest_pause("not a log") == {"seconds": 0.0, "after": "", "before": ""}


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


BURN = "import time; end = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
# a run whose process ends at once and leaves an orphan (started in a new session) that burns
# 0.3 s of CPU; and a "lab" listener that runs a child burning 0.3 s and waits for it
CPU_PROBE = f"""
import json, subprocess, sys, time
from benchmarks import conditions
conditions.adopt_orphans()
burn = [sys.executable, "-c", {BURN!r}]
listener = subprocess.Popen(["sh", "-c", '"$@"; exec sleep 60', "sh", *burn])
time.sleep(1.0)  # its child has burnt and been waited for
run = [sys.executable, "-c", "import subprocess, sys; "
       "subprocess.Popen(sys.argv[1:], start_new_session=True)", *burn]
sample, _ = conditions.measure(lambda: subprocess.run(run, check=True), [listener.pid])
unmeasured, _ = conditions.measure(lambda: None)
listener.kill()
print(json.dumps([sample.cpu_s, sample.lab_cpu_s, conditions.cpu_of([listener.pid]),
                  unmeasured.cpu_s]))
"""


@pytest.mark.unit
def test_a_runs_cpu_counts_its_orphans_and_the_labs_side_is_its_listeners_children() -> None:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", CPU_PROBE], capture_output=True, text=True,
                          timeout=60, cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                          check=True)  # fmt: skip
    own, lab_during, lab_all, unmeasured = json.loads(done.stdout)
    assert own >= 0.28  # the orphan's 0.3 s, adopted and waited for after the run
    assert lab_during < 0.05  # the lab's child burnt before the run, not during it
    assert lab_all >= 0.28
    assert unmeasured is None
    samples = [Sample(1.0, 1.0, 3600, 2.0, 0.5), Sample(1.0, 1.0, 3600, 3.0, 0.7)]
    assert conditions.series(samples).cpu_text() == "2.50 + 0.60"
    assert _series([1.0], 1.0, 3600).cpu_text() == "-"


@pytest.mark.unit
def test_the_benchmarks_run_rbee_infra_from_bytecode_as_an_install_does() -> None:
    """Every module of rbee-infra and of the benchmarks has bytecode that its source's mtime
    and size validate, so no process of a run compiles them again."""
    packages = bench_run.byte_compile()
    assert [p.name for p in packages] == ["rbee_infra", "benchmarks"]
    sources = [src for package in packages for src in package.rglob("*.py")]
    assert len(sources) > 60
    for src in sources:
        data = Path(importlib.util.cache_from_source(str(src))).read_bytes()
        stat = src.stat()
        assert data[:4] == importlib.util.MAGIC_NUMBER, src
        assert int.from_bytes(data[4:8], "little") == 0, src  # validated by mtime and size
        assert int.from_bytes(data[8:12], "little") == int(stat.st_mtime) & 0xFFFFFFFF, src
        assert int.from_bytes(data[12:16], "little") == stat.st_size & 0xFFFFFFFF, src


def test_benchmark_11_reads_the_same_checksums_hashed_and_reused() -> None:
    """Both ways of reading report the checksums of the same three binaries (the benchmark
    raises when they differ), and each mode's every repeat is in the report."""
    result = inventory_read.run(None, quick=True)  # type: ignore[arg-type]  # needs no lab
    assert len(result["hashed"]["load"]) == len(result["reused"]["load"]) == 5
    assert "each hashed (sha256sum)" in result["table"]
    assert "checksums reused (stat unchanged)" in result["table"]
    # the report's medians are rounded to the millisecond, and a reused read takes a few
    hashed, reused = result["hashed"]["median_s"], result["reused"]["median_s"]
    low, high = (hashed - 5e-4) / (reused + 5e-4), (hashed + 5e-4) / max(reused - 5e-4, 1e-6)
    assert low * 0.99 <= result["ratio"] <= high * 1.01


def test_benchmark_5_compares_only_what_it_may() -> None:
    from benchmarks import cli_noop

    def row(hosts: int, up: float, load: float, pyinfra: float | None) -> dict[str, object]:
        found = {op: _series([up], load, 3600) for op in ("up", "preview", "up_with_preview")}
        found |= {f"floor_{op}": _series([1.0], load, 3600) for op in ("up", "preview")}
        found |= {f"resources_{op}": _series([up * 0.9], load, 3600) for op in ("up", "preview")}
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
    # what Pulumi's floor for as many resources costs is shown beside, not a target
    assert ("at 16 hosts, Pulumi's floor for 49 no-op dynamic resources against pyinfra: "
            "up: pyinfra takes 1.39x its time, preview: pyinfra takes 1.39x its time"
            ) in report["table"]  # fmt: skip
    assert not [t for t in report["targets"] if "resources" in t["what"]]
    scale = cli_noop._report(rows[1:], phases, [16, 64], 1, 900.0)
    alone = [t for t in scale["targets"] if "64 hosts" in t["what"]]
    assert alone[0]["met"] is None and "fewer than 2 sizes" in alone[0]["not_compared"]
    # a series under another load is not set against the others
    rows[1]["series"]["pyinfra"] = _series([2.5], 6.0, 3600)  # type: ignore[index]
    report = cli_noop._report(rows[:2], phases, [1, 16], 1, 900.0)
    refused = [t for t in report["targets"] if t["met"] is None]
    assert refused and refused[0]["not_compared"] == "the load differed (2.0 against 6.0)"
    assert not report["met"]
    # a traced run that waited names where
    phases["floor preview"]["pause"] = {"seconds": 5.01, "after": "a", "before": "b"}
    text = cli_noop._report(rows[:2], phases, [1, 16], 1, 900.0)["table"]
    assert "\n- floor preview: 5.01 s without a log line, after `a`, before `b`" in text
    assert "CPU seconds per run, its own processes + the lab's" in text


# -------------------------------------------------------------------- benchmark 9: build once

SAVE = ("Saved stack organization/rbee-infra/bench checkpoint to: "
        ".pulumi/stacks/rbee-infra/bench.json (backup=.pulumi/stacks/rbee-infra/bench.json.bak)")
SAVES = [
    (1.0, SAVE),  # the stack's step begins
    (1.01, SAVE),
    (2.0, f"Provider[0xc0].Create({URN}hive-h1) executing (#props=24)"),
    (2.5, f"Provider[0xc0].Create({URN}hive-h1) success: id=a6; #outs=35"),
    (2.507, SAVE),
    (2.508, f"StepExecutor worker(4): step create on {URN}hive-h1 retired"),
    (2.6, f"Provider[0xc0].Create({URN}worker-h1-cpu) success: id=e0; #outs=31"),
    # answered while the cpu worker's save is under way: its save waits, and is not timed
    (2.61, f"Provider[0xc0].Create({URN}worker-h1-cuda) success: id=e1; #outs=31"),
    (2.62, SAVE),
    (2.625, f"StepExecutor worker(7): step create on {URN}worker-h1-cpu retired"),
    (2.64, SAVE),
    (2.645, f"StepExecutor worker(2): step create on {URN}worker-h1-cuda retired"),
    # answered while another step's begin is being saved: that save comes first, not timed
    (3.0, f"Provider[0xc0].Create({URN}hive-h2) success: id=a7; #outs=35"),
    (3.005, SAVE),
    (3.006, f"Provider[0xc0].Create({URN}worker-h2-cpu) executing (#props=21)"),
    (3.02, SAVE),
    (3.021, f"StepExecutor worker(1): step create on {URN}hive-h2 retired"),
    (3.1, SAVE),  # the stack's outputs
]


@pytest.mark.unit
def test_the_checkpoint_saves_and_the_steps_waiting_for_them_are_read_from_the_log() -> None:
    base = enginelog.lines(_log(SAVES))[0].at - 1.0
    stamps = [round(t - base, 3) for t in enginelog.saves(_log(SAVES))]
    assert stamps == [1.0, 1.01, 2.507, 2.62, 2.64, 3.005, 3.02, 3.1]
    waits = enginelog.checkpoint_waits(_log(SAVES))
    assert [round(w, 3) for w in waits] == [0.008, 0.025, 0.035, 0.021]
    # the saves timed alone, by their index among the saves: the hive's and the cpu worker's
    timed = [(i, round(t, 3)) for i, t in enginelog.save_times(_log(SAVES))]
    assert timed == [(2, 0.007), (3, 0.02)]
    assert enginelog.saves(_log(RUN)) == [] and enginelog.checkpoint_waits(_log(RUN)) == []
    assert enginelog.save_times(_log(RUN)) == []


@pytest.mark.unit
def test_the_retained_checkpoints_are_every_save_in_order(tmp_path: Path) -> None:
    stack = tmp_path / "bench.json"
    stack.write_text("{}")
    for stamp, size in ((300, 30), (100, 10), (200, 20)):
        (tmp_path / f"bench.json.{stamp}").write_bytes(b"x" * size)
        (tmp_path / f"bench.json.{stamp}.attrs").write_text("{}")  # the blob store's sidecar
    (tmp_path / "bench.json.bak").write_text("{}")
    assert build_once.retained(stack) == [(100, 10), (200, 20), (300, 30)]


@pytest.mark.unit
def test_the_modes_alternate_from_one_repeat_to_the_next() -> None:
    assert build_once.order(0) == [(0, "host"), (0, "controller"), (1, "host"), (1, "controller")]
    assert build_once.order(1) == [(0, "controller"), (0, "host"), (1, "controller"), (1, "host")]


def _install(seconds: float, load: float = 2.0) -> build_once.Install:
    return build_once.Install(Sample(seconds, load, 3600), 20_000, 0, 0)


@pytest.mark.unit
def test_benchmark_9_reports_both_ratios_and_refuses_what_it_may_not_compare() -> None:
    mib = 2**20
    small = build_once.checkpoint_row(16, 37, [0.0, 1.0, 3.0], [mib // 4, mib // 2, mib],
                                      [0.004, 0.01], [(1, 0.01), (2, 0.02)], 1.5,
                                      Sample(20.0, 2.0, 3600))  # fmt: skip
    large = build_once.checkpoint_row(64, 133, [0.0] * 12, [mib // 4 * i for i in range(1, 13)],
                                      [0.02], [(11, 0.06)], 6.0, Sample(40.0, 2.5, 3700))  # fmt: skip
    rows = [small, large]
    assert rows[0]["saves"] == 3 and rows[0]["bytes_written"] == mib * 7 // 4
    assert rows[0]["final_bytes"] == mib and rows[0]["wait_median_ms"] == 10.0
    # a save costs 20 ms per MiB (the median of 20 and 20), so 1.75 MiB of saves 35 ms
    assert rows[0]["save_ms_per_mib"] == 20.0 and rows[0]["saves_total_s"] == 0.04
    assert rows[1]["save_ms_per_mib"] == 20.0 and rows[1]["saves_total_s"] == 0.39
    grew = build_once.growth(rows[0], rows[1])
    # 37 -> 133 resources (3.59x): 3 -> 12 saves (4x) is an exponent of 1.08, 1.75 MiB ->
    # 19.5 MiB written (11.1x) one of 1.88
    assert grew["saves"] == 1.08 and grew["bytes_written"] == 1.88
    runs = {(1, "host"): [_install(13.0), _install(14.0), _install(12.0)],
            (1, "controller"): [_install(12.0), _install(13.0), _install(12.5)],
            (16, "host"): [_install(30.0), _install(28.0), _install(29.0)],
            (16, "controller"): [_install(17.0), _install(18.0), _install(19.0)]}
    report = build_once.report(runs, (1, 16), 3, rows, 900.0)
    assert report["ratios"] == {"host 16/1": 2.231, "controller 16/1": 1.44,
                                "controller/host at 16": 0.621}  # fmt: skip
    assert report["met"] is True
    assert report["targets"][0]["what"] == "build once: 16 hosts <= 1.5x the time of 1 (1.44x)"
    assert "| once on this machine (`build: controller`) | 12.50 (12.00-13.00) |" in report["table"]
    assert report["series"]["controller 16"]["median_s"] == 18.0
    assert "| 40.00 | load 2.5, up 62 min |" in report["table"]
    # too slow: not met; under another load: not compared, and so not met either
    runs[(16, "controller")] = [_install(25.0)]
    assert build_once.report(runs, (1, 16), 3, rows, 900.0)["targets"][0]["met"] is False
    runs[(16, "controller")] = [_install(17.0, load=9.0)]
    refused = build_once.report(runs, (1, 16), 3, rows, 900.0)
    assert refused["targets"][0] == {
        "what": "build once: 16 hosts <= 1.5x the time of 1 (-)", "met": None,
        "not_compared": "the load differed (2.0 against 9.0)"}
    assert refused["met"] is False and refused["ratios"]["controller/host at 16"] is None


@pytest.mark.unit
def test_the_controllers_stand_in_sleeps_for_build_and_passes_the_rest_to_cargo(
    tmp_path: Path,
) -> None:
    import subprocess

    from tests.harness import standin_cargo

    real = tmp_path / "real-cargo"
    real.write_text('#!/bin/sh\necho "real cargo: $*"\n')
    real.chmod(0o755)
    cargo = standin_cargo.controller(tmp_path / "here", 0.2, cargo=str(real))
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "Cargo.toml").write_text('[workspace.package]\nversion = "0.3.1"\n')
    env = {"PATH": "/usr/bin:/bin", "CARGO_TARGET_DIR": str(tmp_path / "target")}
    other = subprocess.run([cargo, "metadata", "--no-deps"], capture_output=True, text=True,
                           env=env, check=True)  # fmt: skip
    assert other.stdout == "real cargo: metadata --no-deps\n"
    built = subprocess.run([cargo, "build", "--release", "--bin", "rbee-hive"], cwd=tree,
                           capture_output=True, text=True, env=env, check=True)  # fmt: skip
    assert "Compiling rbee-hive (stand-in, 0.2s)" in built.stderr
    binary = tmp_path / "target" / "release" / "rbee-hive"
    assert subprocess.run([binary, "--version"], capture_output=True, text=True,
                          check=True).stdout == "rbee-hive 0.3.1\n"  # fmt: skip
    ((start, end, name),) = standin_cargo.controller_builds(tmp_path / "here")
    assert name == "rbee-hive" and end - start >= 0.2


@pytest.mark.hosts
@pytest.mark.e2e
@requires_cli
def test_benchmark_9_installs_a_host_each_way_and_counts_the_saves(
    hosts1: HostSet, rbee_repo: RbeeRepo, tmp_path: Path
) -> None:
    lab = Lab(hosts1, rbee_repo, tmp_path)  # not closed: the fixtures own the hosts and repo
    host, _, _ = build_once.cold_install(lab, 1, "host", "host", seconds=0.5)
    # the hive and the worker built on the host, one after the other; nothing here
    assert (host.builds_on_hosts, host.builds_here) == (2, 0)
    assert host.sample.seconds > 1.0 and host.state_bytes > 0
    once, _, _ = build_once.cold_install(lab, 1, "controller", "controller", seconds=0.5)
    assert (once.builds_on_hosts, once.builds_here) == (0, 2)
    # traced: the stack, its provider, the kick-off, 2 builds, the hive and the worker, each
    # saved when its step begins and when it ends, and once more with the stack's outputs
    row = build_once.checkpoints(lab, 1, seconds=0.5)
    assert row["resources"] == 7 and row["saves"] == 2 * 7 + 1
    assert 0 < row["final_bytes"] < row["bytes_written"] and row["wait_max_ms"] > 0


@pytest.mark.hosts
def test_the_latency_proxy_holds_each_way_and_keeps_the_host_key(
    hosts1: HostSet, tmp_path: Path
) -> None:
    """Benchmark 10's round trip: the host's banner comes no sooner than one way's delay, the
    bytes through the proxy are SSH's own (OpenSSH logs in and runs a command, the host key
    checked against the proxy's known_hosts), and the host itself is untouched."""
    import socket
    import subprocess
    import time

    from benchmarks import latency
    from benchmarks.common import ssh_command

    lab = Lab(hosts1, None, tmp_path)  # type: ignore[arg-type]
    (host,) = hosts1.hosts
    with latency.delayed(lab, [host], 400.0) as far:
        (proxied,) = far.hosts.hosts
        assert (proxied.address, proxied.name) == (host.address, host.name)
        assert proxied.port != host.port and far.hosts.known_hosts_path.read_text() == (
            f"[{host.address}]:{proxied.port} {host.host_key_public}\n")  # fmt: skip
        started = time.monotonic()
        with socket.create_connection((proxied.address, proxied.port), timeout=30) as conn:
            banner = conn.recv(64)
        assert banner.startswith(b"SSH-2.0-") and time.monotonic() - started >= 0.2
        done = subprocess.run([*ssh_command(far, proxied), "echo through"], capture_output=True,
                              text=True, timeout=60, check=False)  # fmt: skip
        assert (done.returncode, done.stdout) == (0, "through\n"), done.stderr
    done = subprocess.run([*ssh_command(lab, host), "echo direct"], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.stdout == "direct\n"
