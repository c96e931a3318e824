"""Scenario metrics: tests `record(...)` figures; the session writes them to
`reports/scenarios.json` with each scenario's outcome and prints a one-screen summary."""

from __future__ import annotations

from typing import Any

RECORDS: list[dict[str, Any]] = []
CURRENT: dict[str, str] = {"test": ""}


def record(kind: str, **values: Any) -> None:
    RECORDS.append({"kind": kind, "test": CURRENT["test"], **values})
