"""Run the Pulumi program under `pulumi.runtime.set_mocks`, recording what it registers."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockMonitor

from rbee_infra.base.wire import host_entries
from rbee_infra.decide.plan import public_props

SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
# what a Build resource's `artifact` output reads as under the mocks: its create makes it, so
# the engine driver gets a reference to it (see `fleet.declare`), not a value
OUTPUT_REF = "@@output-of:"


@dataclass
class Registered:
    type: str
    name: str
    urn: str
    # what the program registered, as the provider reads it (`plan.public_props`: its
    # `settings` spread out, without `__provider`); `sent` is as it went on the wire
    inputs: dict[str, Any]
    dependencies: list[str]
    secret_outputs: list[str]
    sent: dict[str, Any] = field(default_factory=dict)


@dataclass
class Recorder(pulumi.runtime.Mocks):
    resources: list[Registered] = field(default_factory=list)
    # what a StackReference (the program's to its own stack) reads: the stack's last outputs
    stack_outputs: dict[str, Any] = field(default_factory=dict)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        if args.typ == "pulumi:pulumi:StackReference":
            outputs = {"outputs": self.stack_outputs, "secretOutputNames": []}
            return args.name, {**dict(args.inputs), **outputs}
        outputs = dict(args.inputs)
        if "cargoLockRefresh" in outputs:  # a Build (its None outputs are not sent)
            outputs["artifact"] = f"{OUTPUT_REF}{args.name}:artifact"
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}

    def by_name(self, name: str) -> Registered:
        return next(r for r in self.resources if r.name == name)


class RecordingMonitor(MockMonitor):
    def __init__(self, recorder: Recorder) -> None:
        super().__init__(recorder)
        self.recorder = recorder

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            sent = pulumi.runtime.rpc.deserialize_properties(request.object)
            self.recorder.resources.append(
                Registered(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    inputs=public_props(sent),
                    dependencies=list(request.dependencies),
                    secret_outputs=list(request.additionalSecretOutputs),
                    sent=sent,
                )
            )
        return response


def install_mocks(
    config: dict[str, Any],
    secret_keys: tuple[str, ...] = (),
    *,
    stack: str = "test",
    stack_outputs: dict[str, Any] | None = None,
) -> Recorder:
    recorder = Recorder(stack_outputs=dict(stack_outputs or {}))
    # other tests' asyncio.run() leaves no current loop; the mocks need one
    asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi.runtime.set_mocks(
        recorder,
        project="rbee-infra",
        stack=stack,
        preview=False,
        monitor=RecordingMonitor(recorder),
    )
    values = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    pulumi.runtime.set_all_config(values, list(secret_keys))
    return recorder


def unwrap(value: Any) -> Any:
    """The plain value of a (possibly) secret-wrapped property."""
    if isinstance(value, dict) and value.get("4dabf18193072939515e22adb298388d") == SECRET_SIG:
        return value["value"]
    return value


def kickoff_hosts(recorder: Recorder) -> list[dict[str, Any]]:
    """The build kick-off's host entries, as its provider reads them (one JSON text, secret)."""
    hosts = host_entries({"hosts": unwrap(recorder.by_name("build-kickoff").inputs["hosts"])})
    assert hosts is not None
    return hosts


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get("4dabf18193072939515e22adb298388d") == SECRET_SIG
