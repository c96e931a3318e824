"""Benchmark 9: build once on this machine against a build on every host, a cold install
through the real Pulumi CLI. `pulumi up --yes --skip-preview` of a hive + cpu worker per host
on fresh hosts, with a stand-in cargo whose every build takes the same fixed time
(`tests.harness.standin_cargo`), in two modes side by side in one run, the runs alternating:

- `rbee:build: host` (the default): every host fetches the fixture repo and builds its hive
  and worker itself (the stand-in on each host, `cargo: ~/bench/cargo`);
- `rbee:build: controller` (docs/build.md): each binary is built once on this machine (the
  stand-in again, through `RBEE_INFRA_CARGO`; a fresh `RBEE_INFRA_CACHE` per run, so every run
  builds cold) and every host receives it over SFTP.

Each mode on 1 host (the reference) and on 16, every number the median of the repeats with
their spread and the machine's conditions (`benchmarks.conditions`: series taken under other
conditions are not compared). Target (issue 23): a build-once install of 16 hosts at most 1.5x
the time of 1 host's.

Then the checkpoints: Pulumi's file backend saves the whole state after each step of a run.
One cold install (build once) of 16 and of 64 hosts each, traced (`-v=7`: the engine logs every
save, "Saved stack ... checkpoint") with `PULUMI_RETAIN_CHECKPOINTS=true` (every save is also
kept as a file of its own, whose size is that save's): how many saves, how many bytes, and
how both grow with the number of resources. Those two runs are slower for the tracing and are
not timed against anything."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import conditions, enginelog
from benchmarks.common import Lab, check_rbee_installed, clean, rbee_config, standin, table
from rbee_infra.base import layout
from tests.e2e.project import project_on
from tests.harness import standin_cargo
from tests.harness.hosts import Host

NAME = "cold install, built once on this machine against on every host, through the real CLI"
BUILD_SECONDS = 5.0
WORKERS = ("cpu",)
MODES = ("host", "controller")
TARGET = 1.5  # build once: N hosts at most this many times the time of 1 host
TRACE = ("-v=7", "--logtostderr", "--logflow")
GROWTH = {"saves": "saves", "bytes_written": "bytes written", "final_bytes": "final state",
          "saves_total_s": "time in saves"}
STACK = "bench"


@dataclasses.dataclass(frozen=True)
class Install:
    """One timed cold install, and what it left."""

    sample: conditions.Sample
    state_bytes: int
    builds_here: int  # builds the stand-in ran on this machine
    builds_on_hosts: int  # and on the hosts


def _config(lab: Lab, hosts: Sequence[Host], mode: str) -> dict[str, Any]:
    config = rbee_config(lab, hosts, cargo=standin_cargo.CARGO if mode == "host" else None,
                         worker_types=WORKERS)  # fmt: skip
    for hive in config["rbee:hives"]:
        # as benchmark 8: the hosts read the fixture repo from the file system (chosen when the
        # lab's git daemon reset some of many fetches at once; kept so the numbers compare)
        hive["installMethod"]["git"]["repo"] = lab.repo.file_url
    if mode == "controller":
        config["rbee:build"] = "controller"
    return config


def _stack_file(base: Path) -> Path:
    (found,) = [f for f in (base / "state" / ".pulumi" / "stacks").rglob(f"{STACK}.json")]
    return found


def cold_install(lab: Lab, n: int, mode: str, tag: str, *, extra: Sequence[str] = (),
                 env: dict[str, str] | None = None, seconds: float = BUILD_SECONDS,
                 ) -> tuple[Install, Path, str]:  # fmt: skip
    """A cold install of the first `n` hosts in `mode` (fresh hosts, stack, cache); the
    project's dir and the CLI's stderr for a look at what it wrote. Only `pulumi up` is
    timed."""
    hosts = lab.first(n)
    clean(hosts)
    if mode == "host":
        standin(hosts, seconds)  # also empties each host's build log
    base = lab.tmp / f"build-once-{tag}"
    base.mkdir()
    base.chmod(0o755)
    here = standin_cargo.controller(base / "controller", seconds)
    sub = dataclasses.replace(lab.hosts, hosts=hosts)
    with project_on(sub, lab.repo, base, stack=STACK) as project:
        project.env.update(RBEE_INFRA_CARGO=str(here), RBEE_INFRA_CACHE=str(base / "cache"),
                           **(env or {}))  # fmt: skip
        project.write_config(_config(lab, hosts, mode))
        sample, result = conditions.measure(
            lambda: project.run("up", "--yes", "--skip-preview", *extra)
        )
        if result.returncode != 0:
            lines = (result.stdout + result.stderr).splitlines()
            errors = [line for line in lines if "error" in line.lower() and len(line) < 2000]
            tail = "\n".join(errors[:20] + lines[-10:])
            raise AssertionError(f"pulumi up of {n} hosts ({mode}) failed:\n{tail}")
    check_rbee_installed(lab, hosts, WORKERS)
    on_hosts = _builds_on_hosts(hosts, mode)
    here_builds = len(standin_cargo.controller_builds(base / "controller"))
    expected = (0, len(hosts) * (1 + len(WORKERS))) if mode == "host" else (1 + len(WORKERS), 0)
    if (here_builds, on_hosts) != expected:
        raise AssertionError(f"{mode} mode on {n} hosts: {here_builds} builds on this machine "
                             f"and {on_hosts} on the hosts, expected {expected}")
    state = _stack_file(base).stat().st_size
    return Install(sample, state, here_builds, on_hosts), base, result.stderr


def _builds_on_hosts(hosts: Sequence[Host], mode: str) -> int:
    if mode == "host":
        return sum(len(standin_cargo.builds(h)) for h in hosts)
    # build once: a host has no checkout, no target dir and no build job
    built = [h.name for h in hosts
             if h.run(f"test -e {layout.BUILD_DIR} || test -e {layout.JOBS_DIR}",
                      check=False).returncode == 0]  # fmt: skip
    return len(built)


def order(repeat: int) -> list[tuple[int, str]]:
    """The runs of one repeat: sizes small to large, the modes alternating from one repeat to
    the next (so neither mode always meets the machine first)."""
    modes = MODES if repeat % 2 == 0 else MODES[::-1]
    return [(n, mode) for n in (0, 1) for mode in modes]


# -------------------------------------------------------------------- checkpoints


def retained(stack_file: Path) -> list[tuple[int, int]]:
    """(nanoseconds, bytes) of every checkpoint kept by `PULUMI_RETAIN_CHECKPOINTS`, in order."""
    found = []
    for f in stack_file.parent.glob(stack_file.name + ".*"):
        suffix = f.name[len(stack_file.name) + 1:]
        if suffix.isdigit():
            found.append((int(suffix), f.stat().st_size))
    return sorted(found)


def checkpoint_row(hosts: int, resources: int, stamps: Sequence[float], sizes: Sequence[int],
                   waits: Sequence[float], timed: Sequence[tuple[int, float]], check_s: float,
                   run: conditions.Sample) -> dict[str, Any]:  # fmt: skip
    """What one cold install wrote to its state: the saves (count, bytes, span); what a save
    costs (`timed`: the saves timed alone, by their index in `sizes`), per MiB of state and in
    all (every save's size at that rate); how long a created resource's step waited for the
    save that records it (median, max); the engine's Check calls, summed."""
    ordered = sorted(waits)
    rates = sorted(t / (sizes[i] / 2**20) for i, t in timed if i < len(sizes) and sizes[i])
    rate = rates[len(rates) // 2] if rates else 0.0  # seconds per MiB
    return {
        "hosts": hosts, "resources": resources, "saves": len(stamps),
        "saves_per_resource": round(len(stamps) / resources, 2),
        "bytes_written": sum(sizes), "final_bytes": sizes[-1] if sizes else 0,
        "final_bytes_per_resource": round(sizes[-1] / resources) if sizes else 0,
        "save_span_s": round(stamps[-1] - stamps[0], 3) if stamps else 0.0,
        "saves_timed": len(rates), "save_ms_per_mib": round(rate * 1000, 1),
        "saves_total_s": round(rate * sum(sizes) / 2**20, 2),
        "wait_median_ms": round(ordered[len(ordered) // 2] * 1000, 1) if ordered else 0.0,
        "wait_max_ms": round(ordered[-1] * 1000, 1) if ordered else 0.0,
        "check_s": round(check_s, 2), "run_s": round(run.seconds, 2), "load": run.load,
        "uptime_s": round(run.uptime_s),
    }  # fmt: skip


def growth(small: dict[str, Any], large: dict[str, Any]) -> dict[str, float]:
    """How saves and bytes grew from the smaller to the larger install, as an exponent of the
    growth in resources: 1 is linear, 2 quadratic."""
    import math

    scale = math.log(large["resources"] / small["resources"])
    return {k: round(math.log(large[k] / small[k]) / scale, 2)
            for k in ("saves", "bytes_written", "final_bytes", "saves_total_s")
            if small[k] and large[k]}  # fmt: skip


def checkpoints(lab: Lab, n: int, seconds: float = BUILD_SECONDS) -> dict[str, Any]:
    """A traced cold install (build once) of `n` hosts, and its checkpoint saves."""
    install, base, stderr = cold_install(
        lab, n, "controller", f"checkpoints-{n}", extra=TRACE,
        env={"PULUMI_RETAIN_CHECKPOINTS": "true"}, seconds=seconds,
    )
    stack_file = _stack_file(base)
    resources = len(json.loads(stack_file.read_text())["checkpoint"]["latest"]["resources"])
    stamps = enginelog.saves(stderr)
    waits = enginelog.checkpoint_waits(stderr)
    kept = retained(stack_file)
    if len(kept) != len(stamps):
        raise AssertionError(f"{len(stamps)} saves logged but {len(kept)} checkpoints kept")
    shutil.rmtree(base / "cache", ignore_errors=True)
    clean(lab.first(n))
    return checkpoint_row(n, resources, stamps, [size for _, size in kept], waits,
                          enginelog.save_times(stderr), enginelog.calls(stderr)["check_s"],
                          install.sample)


# -------------------------------------------------------------------- the run


def run(lab: Lab, *, quick: bool) -> dict[str, Any]:
    if shutil.which("pulumi") is None:
        raise RuntimeError("benchmark 9 needs the Pulumi CLI: bash scripts/install-pulumi.sh")
    if shutil.which("cargo") is None:
        raise RuntimeError("benchmark 9 needs cargo on this machine (the stand-in passes all "
                           "but `cargo build` to it)")
    sizes = (1, 4) if quick else (1, 16)
    repeats = 1 if quick else 3
    traced_sizes = (4, 8) if quick else (16, 64)
    memory_rate = conditions.fresh_memory_rate()
    runs: dict[tuple[int, str], list[Install]] = {(n, m): [] for n in sizes for m in MODES}
    for r in range(repeats):
        for which, mode in order(r):
            n = sizes[which]
            install, base, _ = cold_install(lab, n, mode, f"{mode}-{n}-{r}")
            runs[(n, mode)].append(install)
            shutil.rmtree(base / "cache", ignore_errors=True)
            print(f"  {mode} build, {n} hosts, run {r + 1}: {install.sample.seconds:.2f} s "
                  f"(load {install.sample.load:.2f})", flush=True)
    clean(lab.first(max(sizes)))
    rows = [checkpoints(lab, n) for n in traced_sizes]
    return report(runs, sizes, repeats, rows, memory_rate)


def _ratio(a: conditions.Series, b: conditions.Series) -> tuple[float | None, str]:
    """b / a, or None and why they are not compared."""
    why = conditions.comparable(a, b)
    return (None, why) if why else (b.median / a.median, "")


def report(runs: dict[tuple[int, str], list[Install]], sizes: Sequence[int], repeats: int,
           rows: list[dict[str, Any]], memory_rate: float) -> dict[str, Any]:  # fmt: skip
    one, many = sizes
    series = {k: conditions.series([i.sample for i in v]) for k, v in runs.items()}
    labels = {"host": "on every host (`build: host`)",
              "controller": "once on this machine (`build: controller`)"}  # fmt: skip
    text = table(
        ["built", *[f"{n} host{'s' if n > 1 else ''} (s)" for n in sizes],
         f"{many} / {one}", "state file (KiB)", "conditions"],
        [[labels[m], *[series[(n, m)].text() for n in sizes],
          _shown(_ratio(series[(one, m)], series[(many, m)])[0]),
          " / ".join(str(round(runs[(n, m)][0].state_bytes / 1024)) for n in sizes),
          "; ".join(series[(n, m)].conditions() for n in sizes)] for m in MODES],
    )  # fmt: skip
    text += (f"\n\nmedian of {repeats} (min-max), every build {BUILD_SECONDS:g} s, hive + "
             f"{len(WORKERS)} worker per host; fresh memory first touched at {memory_rate:.0f} "
             "MiB/s at the start of this benchmark")
    verdicts: list[tuple[str, bool | None, str]] = []
    ratio, why = _ratio(series[(one, "controller")], series[(many, "controller")])
    verdicts.append((f"build once: {many} hosts <= {TARGET}x the time of {one} "
                     f"({_shown(ratio)})", None if ratio is None else ratio <= TARGET, why))
    versus, why_versus = _ratio(series[(many, "host")], series[(many, "controller")])
    text += (f"\n\nbuild once against on every host at {many} hosts: {_shown(versus)}"
             + (f" (not compared: {why_versus})" if why_versus else ""))
    text += "\n\ntargets:\n" + "\n".join(
        f"- {what}: " + ("not compared: " + w if ok is None else "met" if ok else "NOT met")
        for what, ok, w in verdicts
    )
    grew = growth(rows[0], rows[-1]) if len(rows) > 1 else {}
    text += ("\n\ncheckpoints: the state saves of one traced cold install (build once, "
             "`-v=7`, PULUMI_RETAIN_CHECKPOINTS)\n")
    text += table(
        ["hosts", "resources", "saves", "saves per resource", "bytes written (KiB)",
         "final state (KiB)", "per resource (KiB)", "a save (ms per MiB)", "all saves (s)",
         "step waits for its save, median / max (ms)", "Check calls, summed (s)",
         "traced run (s)", "conditions"],
        [[r["hosts"], r["resources"], r["saves"], r["saves_per_resource"],
          round(r["bytes_written"] / 1024), round(r["final_bytes"] / 1024),
          round(r["final_bytes_per_resource"] / 1024, 1), r["save_ms_per_mib"],
          r["saves_total_s"], f"{r['wait_median_ms']} / {r['wait_max_ms']}", r["check_s"],
          r["run_s"], f"load {r['load']:.1f}, up {r['uptime_s'] / 60:.0f} min"] for r in rows],
    )  # fmt: skip
    text += ("\n\na save's cost: the median over the saves timed alone (from the answer of the "
             "create it records to its log line), per MiB of that save; all saves: every "
             "save's size at that rate")
    if grew:
        text += ("\n\ngrowth against the resources (1 linear, 2 quadratic): " + ", ".join(
            f"{GROWTH[k]} {v}" for k, v in grew.items()))
    met = all(ok for _, ok, _ in verdicts)
    return {
        "name": NAME,
        "series": {f"{m} {n}": series[(n, m)].as_dict() for n in sizes for m in MODES},
        "state_bytes": {f"{m} {n}": runs[(n, m)][0].state_bytes for n in sizes for m in MODES},
        "ratios": {f"{m} {many}/{one}": _rounded(_ratio(series[(one, m)],
                                                        series[(many, m)])[0]) for m in MODES}
        | {f"controller/host at {many}": _rounded(versus)},
        "targets": [{"what": w, "met": ok, "not_compared": why} for w, ok, why in verdicts],
        "checkpoints": rows, "checkpoint_growth": grew,
        "build_seconds": BUILD_SECONDS, "repeats": repeats, "sizes": list(sizes),
        "fresh_memory_mib_s": round(memory_rate),
        "table": text,
        "target": f"build once: {many} hosts <= {TARGET}x the time of {one}",
        "met": met,
    }  # fmt: skip


def _shown(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def _rounded(ratio: float | None) -> float | None:
    return None if ratio is None else round(ratio, 3)
