"""The human view of a status report: a rich table, then one line per problem."""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rbee_infra.status.model import ComponentStatus, HiveStatus, StatusReport

STYLES = {
    "in-sync": "green",
    "drift": "yellow",
    "missing": "yellow",
    "extra": "yellow",
    "unreachable": "red",
    "error": "red",
}


def _label(hive: HiveStatus, component: ComponentStatus) -> str:
    """As errors name resources: `hive gpu-host`, `worker gpu-host/cuda`."""
    if component.component == "hive":
        return f"hive {hive.alias}"
    return f"worker {hive.alias}/{component.worker_type}"


def _features(features: list[str] | None) -> str:
    return f" [{', '.join(features)}]" if features else ""


def _desired(component: ComponentStatus) -> str:
    d = component.desired
    ref = d.ref or d.source.get("path") or d.source.get("method", "")
    commit = f" @ {d.commit[:12]}" if d.commit else ""
    return f"{ref}{commit}{_features(d.features)}"


def _installed(component: ComponentStatus) -> str:
    i = component.installed
    if i is None:
        return "-"
    answered = i.version_output if i.check == "--version" else None
    version = i.version or answered or ("hand-made binary" if not i.managed else "?")
    commit = f" @ {i.commit[:12]}" if i.commit else ""
    built = f", built on {i.built_on} ({i.build_key})" if i.build_key else ""
    return f"{version}{commit}{_features(i.features)}{built}"


def _state(state: str) -> Text:
    return Text(state, style=STYLES.get(state, ""))


def table(report: StatusReport) -> Table:
    where = f"stack {report.config.stack}" if report.config.stack else "hives.conf"
    out = Table(title=f"rbee-infra status: {where} ({report.config.file})", title_justify="left")
    for column in ("Hive", "Component", "Reachable", "Desired", "Installed", "State"):
        out.add_column(column, overflow="fold")
    for hive in report.hives:
        first = True
        reachable = "yes" if hive.reachable else "no"
        for component in hive.components:
            name = "hive" if component.component == "hive" else f"worker {component.worker_type}"
            out.add_row(
                hive.alias if first else "",
                name,
                reachable if first else "",
                _desired(component),
                _installed(component),
                _state(component.state),
            )
            first = False
        for extra in hive.extras:
            installed = extra.version or ("managed" if extra.managed else "unmanaged files")
            out.add_row("", f"extra {extra.name}", "", "-", installed, _state("extra"))
        out.add_section()
    return out


def problems(report: StatusReport) -> list[str]:
    lines: list[str] = []
    for hive in report.hives:
        if hive.error:
            lines.append(hive.error)
            continue
        for component in hive.components:
            label = _label(hive, component)
            lines.extend(f"{label}: {reason}" for reason in component.drift)
            if component.error:
                lines.append(component.error)
        for extra in hive.extras:
            lines.append(
                f"hive {hive.alias}: extra install {extra.name} ({', '.join(extra.paths)})"
            )
    return lines


def host_lines(report: StatusReport) -> list[str]:
    """Per reachable hive: its service and the host facts preflight checks."""
    lines: list[str] = []
    for hive in report.hives:
        parts: list[str] = []
        svc = hive.service
        if svc is not None:
            pid = f"pid {svc.pid}, " if svc.pid else ""
            wanted = "" if svc.auto_start else ", autoStart off"
            parts.append(f"service {svc.state} ({pid}port {svc.port}, {svc.mode}{wanted})")
        facts = hive.facts
        if facts is not None:
            host = " ".join(p for p in (facts.os, facts.arch) if p) or "unknown OS"
            free = facts.free_disk_mb.get("data")
            parts.append(
                f"{host}, {facts.cargo or 'no cargo'}"
                + (f", {free} MB free" if free is not None else "")
                + (f", GPUs: {'; '.join(facts.gpu.devices)}" if facts.gpu.devices else "")
            )
        if parts:
            lines.append(f"hive {hive.alias}: " + "; ".join(parts))
    return lines


def build_lines(report: StatusReport) -> list[str]:
    """Per hive, its host's build jobs (a running one goes on after a failed or cancelled
    `up`: `rbee-infra builds --stop` stops it)."""
    return [f"hive {hive.alias}: build {b.summary}" for hive in report.hives for b in hive.builds]


def summary_line(report: StatusReport) -> str:
    s = report.summary
    return (
        f"{s.hives} hive(s): {s.in_sync} in sync, {s.drift} drift, "
        f"{s.unreachable} unreachable, {s.error} error"
    )


def render(report: StatusReport, file: TextIO | None = None) -> None:
    stream = file or sys.stdout
    console = Console(file=stream, highlight=False, width=None if stream.isatty() else 120)
    console.print(table(report))
    for line in host_lines(report) + build_lines(report):
        console.print(Text(line), soft_wrap=True)
    for line in problems(report):
        console.print(Text(line), soft_wrap=True)
    console.print(summary_line(report))
