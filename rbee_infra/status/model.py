"""The `rbee-infra status --json` document. Its JSON schema is `schema.json` (generated
from these models; a test keeps the two equal). Changes must stay backwards compatible: add
optional fields only, or bump SCHEMA_VERSION.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

SCHEMA_VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("schema.json")

ComponentState = Literal["in-sync", "drift", "missing", "error"]
HiveState = Literal["in-sync", "drift", "unreachable", "error"]


class _Doc(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Desired(_Doc):
    """What the config asks for."""

    source: dict[str, Any] = Field(description="install method, credentials removed")
    ref: str | None = Field(description="git branch/tag/rev or release tag; null for local")
    commit: str | None = Field(
        description="what the source stands for now: the commit a git ref resolves to, or "
        "the sha256 of a pinned release asset or a local file (null: unknown, or --no-resolve)"
    )
    features: list[str]
    binary: str


class Installed(_Doc):
    """What the host holds at the stable path, from the receipt and the binary itself."""

    kind: Literal["symlink", "file"]
    managed: bool = Field(description="a receipt written by rbee-infra is present")
    sha256: str | None
    version_output: str | None = Field(
        description="first line of `<binary> --version` (null: not run: the binary is missing, "
        "or a configured check replaces it)"
    )
    version_exit: int | None = Field(description="exit status of `--version` (null: not run)")
    check: str | None = Field(
        default=None,
        description="the check the binary passes now: `--version`, `--help` or `configured: "
        "<args>` (null: none passed, or none ran)",
    )
    verified_by: str | None = Field(
        default=None, description="the check it passed when it was installed (the receipt's)"
    )
    built_on: str | None = Field(
        default=None,
        description="where a git install was built: `host` (on this host), `this machine` (the "
        "operator's, `build: controller`) or `builder <alias>` (null: not a git install, or "
        "installed before this was recorded)",
    )
    build_key: str | None = Field(
        default=None, description="the cache key of a build shipped from elsewhere"
    )
    commit: str | None = None
    version: str | None = Field(
        default=None,
        description="the version the receipt records: a git build's package version (the "
        "commit is `commit`), else the `--version` line, the release tag or the file's sha256",
    )
    features: list[str] | None = None
    source: dict[str, Any] | None = None
    release_id: str | None = None
    installed_at: str | None = None
    stack: str | None = None
    resource: str | None = None


class ComponentStatus(_Doc):
    component: Literal["hive", "worker"]
    worker_type: str | None
    name: str = Field(description="rbee-hive or rbee-worker-<type>")
    path: str = Field(description="the stable path (~ is the SSH user's home)")
    state: ComponentState
    desired: Desired
    installed: Installed | None
    drift: list[str] = Field(description="why the host differs from the config, one per line")
    error: str | None


class Extra(_Doc):
    """Something under ~/.local/share/rbee that no configured hive or worker accounts for."""

    name: str
    paths: list[str]
    managed: bool = Field(description="rbee-infra left a receipt for it")
    version: str | None = None


class ServiceStatus(_Doc):
    """The hive as a service: `rbee-hive --port <hivePort> --hive-id <alias>` (see
    docs/service.md)."""

    auto_start: bool = Field(description="the config asks for it to run (autoStart)")
    mode: Literal["systemd", "pidfile"] = Field(
        description="a systemd user unit, or a background process with a pid file"
    )
    state: Literal["running", "stopped", "not-listening", "unhealthy"]
    pid: int | None
    port: int
    health: str | None = Field(
        default=None,
        description="unhealthy: what GET /health answered instead of `ok` (status and the "
        "first line of the body)",
    )


class GpuFacts(_Doc):
    nvidia_smi: str | None = Field(description="path of nvidia-smi, null when absent")
    nvcc: str | None = Field(description="path of the CUDA compiler, null when absent")
    devices: list[str] = Field(description="GPUs nvidia-smi lists: `name, driver version`")


class HostFactsView(_Doc):
    """What preflight checks before an install (the resources' `hostFacts` output)."""

    os: str = Field(description="`uname -s`: Linux, Darwin, ...")
    arch: str = Field(description="`uname -m`")
    os_name: str | None = None
    cargo: str | None = Field(description="`cargo --version` of the configured cargo")
    rustc: str | None
    free_disk_mb: dict[str, int | None] = Field(
        description="free MB on the filesystems of ~/.local/share/rbee (data) and ~/.local/bin"
    )
    gpu: GpuFacts
    service_manager: Literal["systemd", "pidfile"]


class Build(_Doc):
    """A build job on the host (`~/.local/share/rbee/jobs/...`). Builds run detached: one that
    an `up` started ahead and did not install (the update failed or was cancelled first) goes
    on, and the next `up` adopts it; `rbee-infra builds --stop` stops it."""

    resource: str = Field(description="whose build: `hive gpu-host`, `worker gpu-host/cpu`")
    stack: str | None = Field(description="the stack whose run started it")
    binary: str
    state: Literal["running", "built", "failed", "lost"] = Field(
        description="running; built (not installed yet: the next `up` installs it); failed; "
        "lost (neither running nor ended: killed, or the host rebooted)"
    )
    phase: str | None = Field(description="lock, clone, build or install")
    age_seconds: int | None = Field(description="since it started, by the host's clock")
    exit_status: int | None
    job: str = Field(description="its directory (~ is the SSH user's home)")
    summary: str = Field(description="one line for people")


class HiveStatus(_Doc):
    alias: str
    host: str
    port: int
    user: str
    reachable: bool
    state: HiveState
    error: str | None
    components: list[ComponentStatus]
    extras: list[Extra]
    service: ServiceStatus | None = None
    facts: HostFactsView | None = None
    builds: list[Build] = Field(
        default_factory=list, description="the build jobs on the host (see Build)"
    )


class ConfigSource(_Doc):
    kind: Literal["stack", "hives.conf"]
    stack: str | None
    file: str


class Summary(_Doc):
    hives: int
    in_sync: int
    drift: int
    unreachable: int
    error: int
    exit_code: Literal[0, 1, 2] = Field(
        description="0 all in sync, 1 drift, 2 unreachable or error"
    )


class StatusReport(_Doc):
    schema_version: Literal[1] = SCHEMA_VERSION
    config: ConfigSource
    summary: Summary
    hives: list[HiveStatus]

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", by_alias=True), indent=2)


def json_schema() -> dict[str, Any]:
    schema = StatusReport.model_json_schema(by_alias=True, mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    SCHEMA_FILE.write_text(schema_text(), encoding="utf-8")
