"""Thin resource classes: what a Pulumi program declares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.dynamic import Resource

from rbee_infra.base.wire import SETTINGS, encode_hosts
from rbee_infra.stack.builds import BuildProvider
from rbee_infra.stack.kickoff import BuildKickoffProvider
from rbee_infra.stack.providers import HiveProvider, WorkerProvider

# The providers' outputs the program reads, pre-declared so `resource.commit` etc. exist as
# Outputs. Only those: the SDK makes an Output and its tasks for every property it is given
# (at 64 hosts thousands before the first registration leaves), and the state records every
# output the provider returns whether or not the program declared it. The classes annotate
# them for type checkers only: the SDK reads a resource class's annotations again (typing's
# get_type_hints) for every registration that returns, to convert its outputs, and these are
# plain values it leaves as they are.
_OUTPUTS = ("installPath", "commit", "version", "verifiedBy", "trustedHostKey")
# read off a hive only: its host's facts (exported) and its release (a command's trigger)
_HIVE_OUTPUTS = ("hostFacts", "releaseId", "extras", "service")
# inputs registered as properties of their own, never in `settings` (see `nest_settings`)
_OWN = ("connection", "source", "build", "artifact", "trustedHostKey")


@dataclass
class InstallArgs:
    """Inputs shared by Hive and Worker (camelCase on the wire, as in the stack config)."""

    alias: pulumi.Input[str]
    connection: pulumi.Input[dict[str, Any]]
    source: pulumi.Input[dict[str, Any]]
    binary: pulumi.Input[str]
    features: pulumi.Input[list[str]] = field(default_factory=list)
    cargo: pulumi.Input[str] = "cargo"
    reinstall_trigger: pulumi.Input[str] = ""
    build_timeout: pulumi.Input[float] = 3600.0
    lock_timeout: pulumi.Input[float] = 1800.0
    operation_timeout: pulumi.Input[float] = 7200.0
    ensure_toolchain: pulumi.Input[bool] = False
    rustup_url: pulumi.Input[str] = "https://sh.rustup.rs"
    min_free_disk_mb: pulumi.Input[int] | None = None
    check_platform: pulumi.Input[bool] = True
    # hostKeyPolicy "tofu": the key the stack pinned for this host in an earlier run (from its
    # state, see `program`); the provider trusts it like a pin of the resource's own
    trusted_host_key: pulumi.Input[str | None] = None
    # built elsewhere and shipped (see `build_once`): where, and its Build's `artifact` output
    build: pulumi.Input[dict[str, Any]] | None = None
    artifact: pulumi.Input[dict[str, Any]] | None = None
    # the binary's check when neither `--version` nor `--help` proves it runs (VerifyCheck)
    verify: pulumi.Input[dict[str, Any]] | None = None

    def fields(self, component: str, resource_name: str) -> dict[str, Any]:
        """Every input, flat, as the provider reads it (and state records it)."""
        shipped = {"build": self.build, "artifact": self.artifact} if self.build else {}
        return {
            **shipped,
            "alias": self.alias,
            "component": component,
            "binary": self.binary,
            "features": self.features,
            "source": self.source,
            "connection": self.connection,
            "cargo": self.cargo,
            "ensureToolchain": self.ensure_toolchain,
            "rustupUrl": self.rustup_url,
            "minFreeDiskMb": self.min_free_disk_mb,
            "checkPlatform": self.check_platform,
            "verify": self.verify,
            "reinstallTrigger": self.reinstall_trigger,
            "buildTimeout": self.build_timeout,
            "lockTimeout": self.lock_timeout,
            "operationTimeout": self.operation_timeout,
            "stack": pulumi.get_stack(),
            "resourceName": resource_name,
            "trustedHostKey": self.trusted_host_key,
        }

    def props(self, component: str, resource_name: str) -> dict[str, Any]:
        """What the resource registers: its plain inputs as one property (`settings`), the
        others (Outputs: the connection, a pinned key, a Build's artifact; a source that may
        hold a token) each on its own, and the output placeholders."""
        # the placeholders first: an input that is also an output (trustedHostKey) keeps its value
        return {**_placeholders(self), **nest_settings(self.fields(component, resource_name))}


def nest_settings(fields: dict[str, Any]) -> dict[str, Any]:
    # The SDK makes an Output with four futures for every top-level property, resolved when
    # the registration returns: a hive's 32 properties are 12 so, a worker's 24 are 8
    # (docs/performance.md). Anything not plain data (an Output, an awaitable) stays a
    # property of its own, so its dependencies and secrecy stay its own, as does a source
    # (secret when it holds a token).
    # A None is left out, as the SDK leaves out a top-level one: the inputs the providers
    # read (and the state) stay exactly what they were.
    own = {k for k, v in fields.items() if k in _OWN or not _plain(v)}
    settings = {k: v for k, v in fields.items() if k not in own and v is not None}
    return {**{k: fields[k] for k in own}, SETTINGS: settings}


def _plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_plain(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def _placeholders(args: InstallArgs) -> dict[str, None]:
    outputs = (*_OUTPUTS, *_HIVE_OUTPUTS) if isinstance(args, HiveArgs) else _OUTPUTS
    return dict.fromkeys(outputs)


@dataclass
class HiveArgs(InstallArgs):
    binary: pulumi.Input[str] = "rbee-hive"
    prune_unmanaged: pulumi.Input[bool] = False
    managed_workers: pulumi.Input[list[str]] = field(default_factory=list)
    auto_start: pulumi.Input[bool] = True
    hive_port: pulumi.Input[int] = 8600
    queen_url: pulumi.Input[str | None] = None

    def fields(self, component: str, resource_name: str) -> dict[str, Any]:
        return {
            **super().fields(component, resource_name),
            "pruneUnmanaged": self.prune_unmanaged,
            "managedWorkers": self.managed_workers,
            "autoStart": self.auto_start,
            "hivePort": self.hive_port,
            "queenUrl": self.queen_url,
        }


@dataclass
class WorkerArgs(InstallArgs):
    worker_type: pulumi.Input[str] = "cpu"

    def fields(self, component: str, resource_name: str) -> dict[str, Any]:
        return {**super().fields(component, resource_name), "workerType": self.worker_type}


def _options(opts: pulumi.ResourceOptions | None, secret_source: bool) -> pulumi.ResourceOptions:
    secrets = ["connection"] + (["source"] if secret_source else [])
    return pulumi.ResourceOptions.merge(
        opts, pulumi.ResourceOptions(additional_secret_outputs=secrets)
    )


class Hive(Resource):
    """rbee-hive on one host, built from source and installed at ~/.local/bin/rbee-hive."""

    if TYPE_CHECKING:  # see `_OUTPUTS`: for type checkers only
        installPath: pulumi.Output[str]
        commit: pulumi.Output[str]
        version: pulumi.Output[str]
        verifiedBy: pulumi.Output[str]
        extras: pulumi.Output[list[str]]
        service: pulumi.Output[dict[str, Any]]
        hostFacts: pulumi.Output[dict[str, Any]]
        releaseId: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: HiveArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        secret_source: bool = False,
    ) -> None:
        super().__init__(
            HiveProvider(), name, args.props("hive", name), _options(opts, secret_source)
        )


class Worker(Resource):
    """One rbee worker binary at ~/.local/share/rbee/workers/rbee-worker-<type>."""

    if TYPE_CHECKING:  # see `_OUTPUTS`: for type checkers only
        installPath: pulumi.Output[str]
        commit: pulumi.Output[str]
        version: pulumi.Output[str]
        verifiedBy: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: WorkerArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        secret_source: bool = False,
    ) -> None:
        props = args.props("worker", name)
        super().__init__(WorkerProvider(), name, props, _options(opts, secret_source))


class Build(Resource):
    """One build of a git source, on the operator's machine or a builder hive, for every host
    that ships it (see `builds`). `artifact` is what those installs take as input."""

    if TYPE_CHECKING:  # see `_OUTPUTS`: for type checkers only
        artifact: pulumi.Output[dict[str, Any]]

    def __init__(
        self,
        name: str,
        props: dict[str, Any],
        opts: pulumi.ResourceOptions | None = None,
        *,
        secret_source: bool = False,
    ) -> None:
        outputs = {"artifact": None, "cargoLock": None, "lockOrigin": None, "buildSeconds": None}
        # a builder's connection (its key) and a token in the repo URL stay secret
        secrets = ["build"] + (["source"] if secret_source else [])
        options = pulumi.ResourceOptions(additional_secret_outputs=secrets)
        super().__init__(
            BuildProvider(), name, {**props, **outputs}, pulumi.ResourceOptions.merge(opts, options)
        )


def build_props(args: InstallArgs, component: str, resource_name: str) -> dict[str, Any]:
    """One install as `BuildKickoff` needs it: the resource's inputs, less its connection and
    alias (the kick-off's own) and the output placeholders."""
    props = args.fields(component, resource_name)
    for key in ("trustedHostKey", "alias", "connection", "artifact"):
        props.pop(key, None)
    return props


KICKOFF_NAME = "build-kickoff"


@dataclass(frozen=True)
class _Held:
    """A resolved value the SDK does not lift: `Output.all` and `Output.from_input` make an
    Output of every value of every dict and list they meet, resolved ones included."""

    value: Any


@dataclass(frozen=True)
class _Slot:
    """Where the `index`th Output sat in the hosts (see `_as_text`)."""

    index: int


def _as_text(hosts: list[dict[str, Any]]) -> pulumi.Output[str]:
    """`encode_hosts` of `hosts` as one Output, awaiting the Outputs inside (each host's
    connection, a secret source, a builder) as they are: through `Output.from_input`, every
    value of every install became an Output of its own (at 64 hosts 11,000 more for the SDK
    to make and track)."""
    found: list[pulumi.Output[_Held]] = []

    def hollow(value: Any) -> Any:
        if not isinstance(value, pulumi.Output):
            return value
        found.append(value.apply(_Held))
        return _Slot(len(found) - 1)

    shape = _map_leaves(hosts, hollow)

    def fill(held: list[_Held]) -> str:
        def put(value: Any) -> Any:
            return held[value.index].value if isinstance(value, _Slot) else value

        # the values first, then encode_hosts: an Output that resolved to None is left out
        return encode_hosts(_map_leaves(shape, put))

    return pulumi.Output.all(*found).apply(fill)


def _map_leaves(value: Any, leaf: Callable[[Any], Any]) -> Any:
    """`value` with every value that is not a dict or a list put through `leaf`, at any depth."""
    if isinstance(value, dict):
        return {k: _map_leaves(v, leaf) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_leaves(v, leaf) for v in value]
    return leaf(value)


class BuildKickoff(Resource):
    """Starts the builds of every host at once, ahead of the installs (see `kickoff`).
    `hosts`: one entry per host, `{alias, connection, installs: [build_props(...)]}`, sent as
    one JSON text (`encode_hosts`)."""

    def __init__(
        self,
        name: str,
        hosts: list[dict[str, Any]],
        opts: pulumi.ResourceOptions | None = None,
        *,
        cargo_lock_refresh: str = "",
    ) -> None:
        props = {"hosts": _as_text(hosts), "pending": None, "started": None,
                 "trustedHostKeys": None, "cargoLocks": None,
                 "cargoLockRefresh": cargo_lock_refresh}
        # the hosts' connections (keys, passwords) and any token in a repo URL stay secret
        options = pulumi.ResourceOptions(additional_secret_outputs=["hosts"])
        super().__init__(
            BuildKickoffProvider(), name, props, pulumi.ResourceOptions.merge(opts, options)
        )
