"""What a test hands to the engine driver and what it gets back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc
from pulumi.dynamic import ResourceProvider

PROVIDER_KEY = "__provider"
DEFAULT_TYPE = "pulumi-python:dynamic:Resource"


@dataclass(frozen=True)
class Secret:
    """Wrap an input value to make it secret, like pulumi.Output.secret()."""

    value: Any


@dataclass(frozen=True)
class Ref:
    """An input taken from another declared resource's output (an implicit dependency).
    In a preview, a resource to be created/updated/replaced has its new inputs as outputs and
    every other output unknown, as in the engine."""

    resource: str
    key: str


@dataclass
class Decl:
    """One resource as a program declares it."""

    name: str
    provider: ResourceProvider
    inputs: dict[str, Any]
    type_token: str = DEFAULT_TYPE
    depends_on: tuple[str, ...] = ()
    secret_outputs: tuple[str, ...] = ()


@dataclass
class StateEntry:
    name: str
    id: str
    urn: str
    type: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    depends_on: list[str]
    secret_inputs: frozenset[str] = frozenset()
    secret_outputs: frozenset[str] = frozenset()


@dataclass
class Step:
    name: str
    op: str  # create | update | replace | delete | same | delete-replaced | read | refresh-gone
    replaces: list[str] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)
    detailed_changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    delete_before_replace: bool = False
    error: str | None = None


@dataclass
class RunResult:
    steps: list[Step] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    durations: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def ops(self) -> dict[str, str]:
        """name -> op for every step that succeeded (deletes of replaced copies left out)."""
        return {s.name: s.op for s in self.steps if s.error is None and s.op != "delete-replaced"}

    def error_summary(self, name: str) -> str:
        """The last non-empty line of the error: for a provider exception, its message."""
        lines = [ln for ln in self.errors.get(name, "").splitlines() if ln.strip()]
        return lines[-1].strip() if lines else ""


class Plan(RunResult):
    pass


class UpResult(RunResult):
    pass


class ProviderError(Exception):
    def __init__(self, method: str, code: grpc.StatusCode | None, details: str) -> None:
        super().__init__(details)
        self.method = method
        self.code = code
        self.details = details
