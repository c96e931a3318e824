"""Benchmark 5: a no-op through the real Pulumi CLI. `pulumi up --skip-preview` and
`pulumi preview` (both with `--expect-no-changes`) of a stack of hive + 2 workers per host, on
1, 8 and 16 hosts, beside pyinfra's and ansible's no-op of the same install on the same hosts,
in the same run. Every time is the whole process, as an operator waits for it.

A straight line fitted through the CLI's times splits them into a fixed start-up (the CLI, its
plugins, the program's and the provider's Python processes: the intercept) and a cost per host
(the slope), which the peers' lines are set against.

`--sizes 16,32,64` (python -m benchmarks.run) runs it at scale: the per-host cost is then fitted
over the sizes from 16 hosts up, and set against pyinfra's (target: <= 0.5x). ansible runs only
up to 16 hosts (above, one run takes minutes)."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

from benchmarks import peers
from benchmarks.common import (
    Lab,
    check_rbee_installed,
    clean,
    median,
    rbee_config,
    standin,
    table,
    timed,
)
from tests.e2e.project import Project, project_on
from tests.harness.hosts import Host

NAME = "no-op through the real Pulumi CLI (hive + 2 workers per host)"
DEFAULT_SIZES = (1, 8, 16)
ANSIBLE_MAX_HOSTS = 16
# target 3: the no-op's cost per host, fitted from 16 hosts up, against pyinfra's
PER_HOST_TARGET = 0.5


def fit(points: Sequence[tuple[int, float]]) -> tuple[float, float]:
    """Least squares: (intercept, slope) of seconds against hosts."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / var if var else 0.0
    return mean_y - slope * mean_x, slope


def _pulumi(project: Project, *args: str) -> float:
    seconds, result = timed(lambda: project.run(*args, "--expect-no-changes"))
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise AssertionError(f"pulumi {' '.join(args)} is not a no-op:\n{tail}")
    return seconds


def _peer(lab: Lab, hosts: list[Host], cargo: str, tool: str) -> float:
    run = peers.pyinfra_run if tool == "pyinfra" else peers.ansible_run
    seconds, changed = run(lab, hosts, cargo)
    if changed:
        raise AssertionError(f"{tool} no-op changed {changed}")
    return seconds


def run(lab: Lab, *, quick: bool, sizes: Sequence[int] | None = None) -> dict[str, Any]:
    if shutil.which("pulumi") is None:
        raise RuntimeError("benchmark 5 needs the Pulumi CLI: bash scripts/install-pulumi.sh")
    sizes = tuple(sorted(sizes)) if sizes else (1, 4) if quick else DEFAULT_SIZES
    repeats = 1 if quick else 3
    top = lab.first(max(sizes))
    clean(top)
    cargo = standin(top, 0)
    rows = []
    with ExitStack() as stack:
        projects: dict[int, Project] = {}
        for n in sizes:
            base = lab.tmp / f"cli-{n}"
            base.mkdir()
            base.chmod(0o755)
            sub = dataclasses.replace(lab.hosts, hosts=lab.first(n))
            # one stack name for all sizes (their own backends): the hosts they share then hold
            # the same installs, as each stack expects (install ids include the stack)
            project = stack.enter_context(project_on(sub, lab.repo, base, stack="bench"))
            project.write_config(rbee_config(lab, lab.first(n), cargo=cargo))
            project.pulumi("up", "--yes", "--skip-preview")  # set-up, untimed
            projects[n] = project
        check_rbee_installed(lab, top)
        with_ansible = [n for n in sizes if n <= ANSIBLE_MAX_HOSTS]
        for tool, install, on in (
            ("pyinfra", peers.pyinfra_run, top),
            ("ansible", peers.ansible_run, lab.first(max(with_ansible, default=0))),
        ):
            if on:
                install(lab, on, cargo)  # set-up, untimed
            for host in on:
                peers.check_installed(lab, host, tool)

        for n in sizes:
            hosts = lab.first(n)
            runs: dict[str, list[float]] = {"up": [], "preview": [], "pyinfra": [], "ansible": []}
            for _ in range(repeats):
                runs["up"].append(_pulumi(projects[n], "up", "--yes", "--skip-preview"))
                runs["preview"].append(_pulumi(projects[n], "preview"))
                runs["pyinfra"].append(_peer(lab, hosts, cargo, "pyinfra"))
                if n <= ANSIBLE_MAX_HOSTS:
                    runs["ansible"].append(_peer(lab, hosts, cargo, "ansible"))
            best = {k: round(median(v), 2) if v else None for k, v in runs.items()}
            rows.append({"hosts": n, **{f"{k}_s": v for k, v in best.items()},
                         "pyinfra_over_up": round(best["pyinfra"] / best["up"], 2),
                         "pyinfra_over_preview": round(best["pyinfra"] / best["preview"], 2),
                         "repeats": repeats})  # fmt: skip
    clean(top)
    lines = {k: fit([(r["hosts"], r[f"{k}_s"]) for r in rows if r[f"{k}_s"] is not None])
             for k in ("up", "preview", "pyinfra", "ansible")
             if sum(r[f"{k}_s"] is not None for r in rows) >= 2}  # fmt: skip
    text = table(
        ["hosts", "pulumi up (s)", "pulumi preview (s)", "pyinfra (s)", "ansible (s)",
         "pyinfra / up", "pyinfra / preview"],
        [[r["hosts"], r["up_s"], r["preview_s"], r["pyinfra_s"],
          "-" if r["ansible_s"] is None else r["ansible_s"],
          f"{r['pyinfra_over_up']:.2f}x", f"{r['pyinfra_over_preview']:.2f}x"] for r in rows],
    )  # fmt: skip
    text += "\n\nfitted over the sizes above: fixed start-up + per host\n" + "\n".join(
        f"- {k}: {a:.2f} s + {b:.3f} s per host" for k, (a, b) in lines.items()
    )
    at16 = next((r for r in rows if r["hosts"] == 16), rows[-1])
    met = at16["pyinfra_over_up"] >= 1.0 and at16["pyinfra_over_preview"] >= 1.25
    target = f"at {at16['hosts']} hosts: up <= pyinfra, preview <= 0.8x pyinfra"
    result: dict[str, Any] = {}
    scale = [r for r in rows if r["hosts"] >= 16]
    if len(scale) >= 2:
        marginal = {k: fit([(r["hosts"], r[f"{k}_s"]) for r in scale])[1]
                    for k in ("up", "preview", "pyinfra")}  # fmt: skip
        ratios = {k: marginal[k] / marginal["pyinfra"] for k in ("up", "preview")}
        sizes_text = "/".join(str(r["hosts"]) for r in scale)
        text += f"\n\nper host, fitted over {sizes_text} hosts: " + ", ".join(
            f"{k} {v * 1000:.1f} ms" for k, v in marginal.items()
        ) + " (" + ", ".join(f"{k} / pyinfra {v:.2f}x" for k, v in ratios.items()) + ")"
        met = met and ratios["up"] <= PER_HOST_TARGET
        target += f"; per host (fitted over {sizes_text}) <= {PER_HOST_TARGET}x pyinfra's"
        result["per_host"] = {
            "sizes": [r["hosts"] for r in scale],
            **{f"{k}_s": round(v, 4) for k, v in marginal.items()},
            **{f"{k}_over_pyinfra": round(v, 3) for k, v in ratios.items()},
        }
    return {
        "name": NAME,
        "rows": rows,
        "fit": {k: {"fixed_s": round(a, 3), "per_host_s": round(b, 4)} for k, (a, b) in
                lines.items()},
        **result,
        "table": text,
        "target": target,
        "met": met,
    }  # fmt: skip
