"""What one Hive or Worker resource asks for: the provider's input model.

The program builds these from the fleet config; the provider re-validates them in `check`
(values cross the engine's wire as JSON-like data, ints as floats).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, Field, ValidationError

from rbee_infra.base.errors import ConfigError
from rbee_infra.base.wire import host_entries
from rbee_infra.config.fleet import (
    DEFAULT_RUSTUP_URL,
    HIVE_BINARY,
    Alias,
    BinaryName,
    DiskMb,
    Feature,
    GitSource,
    Hostname,
    HttpsUrl,
    JumpHop,
    Model,
    Port,
    QueenUrl,
    Sha256,
    Source,
    ToolPath,
    Trigger,
    User,
    VerifyCheck,
    WorkerType,
    problems_of,
)


class Connection(Model):
    """pulumi-command's `remote.ConnectionArgs` shape, plus known_hosts handling."""

    host: Hostname
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    user: User
    private_key: Annotated[str, Field(max_length=65536)] | None = None
    private_key_path: Annotated[str, Field(max_length=4096)] | None = None
    private_key_password: Annotated[str, Field(max_length=4096)] | None = None
    agent_socket_path: Annotated[str, Field(max_length=4096)] | None = None
    host_key: Annotated[str, Field(max_length=16384)] | None = None
    known_hosts: Annotated[str, Field(max_length=4096)] | None = None
    host_key_policy: Literal["strict", "tofu"] = "strict"
    connect_timeout: Annotated[float, Field(gt=0, le=600)] = 15.0
    dial_error_limit: Annotated[int, Field(ge=1, le=20)] = 3
    jumps: list[JumpHop] = Field(default_factory=list)

    def through(self, hop: JumpHop) -> Connection:
        """How to reach one of the jump hosts: its own key, else this connection's
        credentials; never this connection's pinned host key, and never trust on first use
        (a hop is in known_hosts or pinned)."""
        own = hop.private_key is not None
        return Connection(
            host=hop.host,
            port=hop.port,
            user=hop.user,
            private_key=hop.private_key if own else self.private_key,
            private_key_path=None if own else self.private_key_path,
            private_key_password=hop.private_key_password if own else self.private_key_password,
            agent_socket_path=self.agent_socket_path,
            host_key=hop.host_key,
            known_hosts=hop.known_hosts or self.known_hosts,
            host_key_policy="strict",
            connect_timeout=self.connect_timeout,
            dial_error_limit=1,
        )

    def target(self) -> tuple[str, int, str]:
        return (self.host, self.port, self.user)


def _matching(pattern: str, allowed: str) -> AfterValidator:
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if not regex.fullmatch(value):
            raise ValueError(f"{value!r} is not allowed; expected {allowed}")
        return value

    return AfterValidator(check)


CommitId = Annotated[str, _matching(r"[0-9a-f]{40}", "a commit id of 40 lowercase hex digits")]
CacheKey = Annotated[str, _matching(r"[0-9a-f]{16}", "16 lowercase hex digits")]
Triple = Annotated[str, _matching(r"[a-z0-9_]+(-[a-z0-9_.]+){1,3}", "a target triple")]
Glibc = Annotated[str, _matching(r"[0-9]{1,3}\.[0-9]{1,3}", "a glibc version such as 2.36")]
PackageVersion = Annotated[
    str, _matching(r"[0-9A-Za-z.+-]{1,64}", "a package version such as 0.1.0")
]


class BuildFrom(Model):
    """Where an install's binary is built when it is not built on its own host (see
    `build_once`): the operator's machine, or another hive's host (its alias and connection)."""

    place: Literal["controller", "builder"]
    builder: Alias | None = None
    builder_connection: Connection | None = None

    @property
    def label(self) -> str:
        return f"builder {self.builder}" if self.place == "builder" else "this machine"


class Artifact(Model):
    """A built binary as its Build resource recorded it: what the install ships and checks.
    Where it is kept follows from its key (`layout.artifact_dir`), never from state."""

    key: CacheKey
    sha256: Sha256
    commit: CommitId
    triple: Triple
    glibc: Glibc | None = None
    package: BinaryName | None = None  # the cargo package that has the binary, and its version
    version: PackageVersion | None = None


class InstallSpec(Model):
    """One binary on one host: the hive, or one worker."""

    alias: Alias
    component: Literal["hive", "worker"]
    worker_type: WorkerType | None = None
    binary: BinaryName
    features: list[Feature] = Field(default_factory=list)
    source: Source
    connection: Connection
    cargo: ToolPath = "cargo"
    ensure_toolchain: bool = False
    rustup_url: HttpsUrl = DEFAULT_RUSTUP_URL
    min_free_disk_mb: DiskMb | None = None
    check_platform: bool = True
    # hive only: run it as a service on hive_port after each install (see `service`). The
    # program passes the hive's autoStart (true by default, as in rbee); a bare spec runs none.
    auto_start: bool = False
    hive_port: Port = 8600
    queen_url: QueenUrl | None = None
    reinstall_trigger: Trigger = ""
    # how the installed binary proves it runs (None: `--version`, else `--help`; see `verify`)
    verify: VerifyCheck | None = None
    stack: Annotated[str, Field(max_length=200)] = ""
    resource_name: Annotated[str, Field(max_length=400)] = ""
    build_timeout: Annotated[float, Field(gt=0, le=86400)] = 3600.0
    # how long to wait for another build on the same host to release the host lock
    lock_timeout: Annotated[float, Field(ge=1, le=86400)] = 1800.0
    # bound on one whole create/update/delete, whatever its phases do
    operation_timeout: Annotated[float, Field(ge=10, le=172800)] = 7200.0
    # hive only: the worker types configured on it (never extras), and whether `up` removes
    # the extras (see `extras`)
    managed_workers: list[WorkerType] = Field(default_factory=list)
    prune_unmanaged: bool = False
    # how the build job prepares a build whose script runs more than cargo; not a config
    # field: the install sets it from the tree's `buildneeds.BuildNeeds.build_mode` ("" none,
    # "path": the user's tool prefixes on PATH, "pnpm"/"npm": and the workspace install first)
    build_mode: Literal["", "path", "pnpm", "npm"] = ""
    # hostKeyPolicy "tofu": the key seen on first use, recorded by `check` and pinned after.
    trusted_host_key: Annotated[str, Field(max_length=16384)] | None = None
    # a git source built elsewhere (`build: controller` or a builder) and shipped here: where,
    # and the binary its Build resource produced (None while that build is still to come)
    build: BuildFrom | None = None
    artifact: Artifact | None = None

    def effective_connection(self) -> Connection:
        c = self.connection
        if c.host_key_policy == "tofu" and not c.host_key and self.trusted_host_key:
            return c.model_copy(update={"host_key": self.trusted_host_key})
        return c

    @property
    def install_name(self) -> str:
        """The name of the stable path: `rbee-hive` or `rbee-worker-<type>`."""
        return HIVE_BINARY if self.component == "hive" else f"rbee-worker-{self.worker_type}"

    @property
    def label(self) -> str:
        """How errors and progress name this resource: `hive gpu-host`, `worker gpu-host/cuda`."""
        if self.component == "hive":
            return f"hive {self.alias}"
        return f"worker {self.alias}/{self.worker_type}"


class BuildRequest(Model):
    """One Build resource: a git source built once, at `place`, for every host that ships it."""

    source: GitSource
    binary: BinaryName
    features: list[Feature] = Field(default_factory=list)
    cargo: ToolPath = "cargo"
    build: BuildFrom
    cargo_lock_refresh: Trigger = ""
    stack: Annotated[str, Field(max_length=200)] = ""
    resource_name: Annotated[str, Field(max_length=400)] = ""
    build_timeout: Annotated[float, Field(gt=0, le=86400)] = 3600.0
    lock_timeout: Annotated[float, Field(ge=1, le=86400)] = 1800.0
    operation_timeout: Annotated[float, Field(ge=10, le=172800)] = 7200.0

    @property
    def label(self) -> str:
        return f"build {self.resource_name or self.binary}"


M = TypeVar("M", bound=Model)


def _parse(model: type[M], props: dict) -> M:
    """A provider's inputs as `model` (the SDK's own `__` keys left out), or the ConfigError
    naming every bad field."""
    data = {k: v for k, v in props.items() if not k.startswith("__")}
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(problems_of(error)) from None


def parse_spec(props: dict) -> InstallSpec:
    return _parse(InstallSpec, props)


Hosts = list[tuple[str, list[InstallSpec]]]  # (alias, its installs)


def hosts_of(props: dict) -> tuple[Hosts, list[tuple[str, str]]]:
    """The build kick-off's `hosts` (`{alias, connection, installs, trustedHostKey?}` each):
    every host's installs as its hive and workers will see them, or the problems. A host's
    pin comes from `props["trustedHostKeys"]` (the kick-off's state), else its own entry."""
    trusted = props.get("trustedHostKeys") or {}
    hosts: Hosts = []
    problems: list[tuple[str, str]] = []
    entries = host_entries(props)
    if entries is None:
        return [], [("hosts", "not a list of hosts, nor the JSON text of one")]
    for i, host in enumerate(entries):
        alias = host.get("alias")
        specs: list[InstallSpec] = []
        for j, item in enumerate(host.get("installs") or []):
            data = {**item, "alias": alias, "connection": host.get("connection")}
            if isinstance(alias, str) and trusted.get(alias):
                data["trustedHostKey"] = trusted[alias]
            elif isinstance(host.get("trustedHostKey"), str) and host["trustedHostKey"]:
                data["trustedHostKey"] = host["trustedHostKey"]  # the stack's, from its state
            try:
                specs.append(parse_spec(data))
            except ConfigError as error:
                where = f"hosts[{i}].installs[{j}]"
                problems += [(f"{where}.{p}" if p else where, r) for p, r in error.problems]
        if specs:
            hosts.append((specs[0].alias, specs))
    return hosts, problems


def parse_request(props: dict) -> BuildRequest:
    return _parse(BuildRequest, props)


OUTPUT_KEYS = (
    "installId",
    "installPath",
    "releaseDir",
    "commit",
    "version",
    "sha256",
    "installedFeatures",
)
