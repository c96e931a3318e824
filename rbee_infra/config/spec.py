"""What one Hive or Worker resource asks for: the provider's input model.

The program builds these from the fleet config; the provider re-validates them in `check`
(values cross the engine's wire as JSON-like data, ints as floats).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationError

from rbee_infra.base.errors import ConfigError
from rbee_infra.config.fleet import (
    DEFAULT_RUSTUP_URL,
    HIVE_BINARY,
    Alias,
    BinaryName,
    DiskMb,
    Feature,
    Hostname,
    HttpsUrl,
    JumpHop,
    Model,
    Port,
    QueenUrl,
    Source,
    ToolPath,
    Trigger,
    User,
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
    # hostKeyPolicy "tofu": the key seen on first use, recorded by `check` and pinned after.
    trusted_host_key: Annotated[str, Field(max_length=16384)] | None = None

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


def parse_spec(props: dict) -> InstallSpec:
    data = {k: v for k, v in props.items() if not k.startswith("__")}
    try:
        return InstallSpec.model_validate(data)
    except ValidationError as error:
        raise ConfigError(problems_of(error)) from None


OUTPUT_KEYS = (
    "installId",
    "installPath",
    "releaseDir",
    "commit",
    "version",
    "sha256",
    "installedFeatures",
)
