"""Modules imported on first use.

The Pulumi program imports the provider modules only to pickle their classes by reference;
the host work behind them (SSH, the install steps, the spec models) is the provider server's.
A module named here is imported when one of its attributes is first read, so the program's
start-up does not pay for it (the import system's module locks make that thread-safe).
"""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    """Stands in for a module until an attribute is read, then forwards to it."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        # tests patch a module's attribute through the name a caller imported it as
        setattr(importlib.import_module(self._name), attr, value)

    def __delattr__(self, attr: str) -> None:
        delattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy(name: str) -> Any:
    return LazyModule(name)
