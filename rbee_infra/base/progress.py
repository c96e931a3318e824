"""Progress lines from inside a provider. The dynamic-provider server has no engine connection,
so `pulumi.log` falls back to the process's stderr, which the engine captures."""

from __future__ import annotations

import sys

import pulumi


def report(label: str, message: str) -> None:
    try:
        pulumi.log.info(f"{label}: {message}")
    except Exception:
        print(f"{label}: {message}", file=sys.stderr, flush=True)


def warn(label: str, message: str) -> None:
    """A warning: the engine shows it as one (without an engine, on stderr)."""
    try:
        pulumi.log.warn(f"{label}: {message}")
    except Exception:
        print(f"warning: {label}: {message}", file=sys.stderr, flush=True)
