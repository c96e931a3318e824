"""Pulumi's floor for dynamic resources (benchmark 5): a `pulumi.dynamic` resource whose
provider does nothing. Its Check returns the inputs and its Diff compares them, so a no-op of N
of them costs what the engine, the SDK's provider server and their round trips cost for N
dynamic resources, and nothing of rbee-infra's. Imported by reference, as rbee-infra's
providers are (a class defined in `__main__` would be pickled by value)."""

from __future__ import annotations

from typing import Any

from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider


class NoopProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=str(props["name"]), outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = {k: v for k, v in news.items() if olds.get(k) != v}
        return DiffResult(changes=bool(changed))


class Noop(Resource):
    def __init__(self, name: str, props: dict[str, Any]) -> None:
        super().__init__(NoopProvider(), name, {"name": name, **props})


PROGRAM = """import pulumi

from benchmarks.noop_resource import Noop

for i in range(int(pulumi.Config().require("resources"))):
    Noop(f"r{i}", {"alias": f"h{i}"})
"""
