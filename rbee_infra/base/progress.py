"""Progress lines from inside a provider. The dynamic-provider server has no engine connection,
so `pulumi.log` falls back to the process's stderr, which the engine captures."""

from __future__ import annotations

import sys

import pulumi


def report(label: str, message: str) -> None:
    _log("info", label, message)


def warn(label: str, message: str) -> None:
    """A line the operator should act on (the engine shows it as a warning)."""
    _log("warning", label, message)


def _log(level: str, label: str, message: str) -> None:
    try:
        (pulumi.log.warn if level == "warning" else pulumi.log.info)(f"{label}: {message}")
    except Exception:
        print(f"{level}: {label}: {message}", file=sys.stderr, flush=True)
