"""rbee's `hives.conf` (TOML, `[[hive]]` tables) <-> the stack's `rbee:hives` config.

The models mirror rbee's declarative config strictly: an unknown field is an error naming
its path (`hive[1].workers[0].colour`), so a typo never silently drops a setting.

`binary_path`: rbee-infra installs to fixed paths (`~/.local/bin/rbee-hive`,
`~/.local/share/rbee/workers/rbee-worker-<type>`). A `binary_path` naming that fixed path is
accepted and dropped (it is implied); any other value is an error, never silently ignored.

`auto_start` defaults to true in rbee, so the converted config always states it explicitly.
"""

from __future__ import annotations

import re
import sys
from typing import Annotated, Any

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rbee_infra.base import layout
from rbee_infra.base.errors import ConfigError
from rbee_infra.base.redact import redact_url, url_has_credentials
from rbee_infra.config.fleet import (
    HIVE_BINARY,
    Alias,
    Feature,
    FleetConfig,
    GitRef,
    GitSource,
    HiveConfig,
    Hostname,
    LocalSource,
    ReleaseSource,
    RepoUrl,
    User,
    WorkerConfig,
    WorkerType,
    format_loc,
    parse_fleet,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

METHODS = ("git", "release", "local")
_GH_REPO = re.compile(r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$")
_VERSION = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/+-]{0,199}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfGit(_Strict):
    repo: RepoUrl
    branch: GitRef


class ConfRelease(_Strict):
    repo: Annotated[str, Field(pattern=_GH_REPO.pattern)]
    tag: GitRef


class ConfLocal(_Strict):
    path: Annotated[str, Field(min_length=1, max_length=4096)]


class ConfInstallMethod(_Strict):
    """`{ git = { repo, branch } }`, `{ release = { repo, tag } }` or `{ local = { path } }`."""

    git: ConfGit | None = None
    release: ConfRelease | None = None
    local: ConfLocal | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_method(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError("expected a table such as { git = { repo = ..., branch = ... } }")
        unknown = [k for k in data if k not in METHODS]
        if unknown:
            raise ValueError(
                f"unknown install method {unknown[0]!r} (expected one of git, release, local)"
            )
        if len(data) != 1:
            raise ValueError("give exactly one install method: git, release or local")
        return data

    @property
    def method(self) -> str:
        return next(m for m in METHODS if getattr(self, m) is not None)

    def body(self) -> _Strict:
        return getattr(self, self.method)


class ConfWorker(_Strict):
    type: WorkerType
    version: Annotated[str, Field(pattern=_VERSION.pattern)]
    features: list[Feature] | None = None
    binary_path: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    install_method: ConfInstallMethod | None = None


class ConfHive(_Strict):
    alias: Alias
    hostname: Hostname
    ssh_user: User
    ssh_port: Annotated[int, Field(ge=1, le=65535)] = 22
    hive_port: Annotated[int, Field(ge=1, le=65535)] = 8600
    # OpenSSH's ProxyJump form, `[user@]host[:port][,...]` (checked with the stack rules)
    proxy_jump: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    queen_url: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    binary_path: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    workers: list[ConfWorker] = Field(default_factory=list)
    auto_start: bool = True
    install_method: ConfInstallMethod | None = None


class HivesConf(_Strict):
    hive: list[ConfHive] = Field(default_factory=list)


_HINTS = {
    "hives": "did you mean [[hive]]? (rbee's hives.conf uses singular [[hive]] tables)",
    "worker": "did you mean workers = [ ... ]?",
    "feature": "did you mean features = [ ... ]?",
    "port": "did you mean ssh_port or hive_port?",
    "user": "did you mean ssh_user?",
    "host": "did you mean hostname?",
    "binary": "hives.conf has no 'binary'; the binary follows from the worker type",
}


def _problems(error: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for item in error.errors():
        path = format_loc(tuple(item["loc"]))
        if item["type"] == "extra_forbidden":
            name = str(item["loc"][-1])
            message = "unknown field" + (f"; {_HINTS[name]}" if name in _HINTS else "")
        elif item["type"] == "missing":
            message = "required field is missing"
        elif item["type"] == "string_pattern_mismatch" and "repo" in path:
            message = f"{item['input']!r} is not allowed; expected owner/name"
        else:
            message = item["msg"].removeprefix("Value error, ")
        problems.append((path, message))
    return problems


def parse_text(text: str, *, source: str = "hives.conf") -> HivesConf:
    """TOML text -> validated model; ConfigError names every bad field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([(source, f"not valid TOML: {error}")]) from None
    try:
        conf = HivesConf.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_problems(error)) from None
    if not conf.hive:
        raise ConfigError([(source, "no [[hive]] tables; nothing to import")])
    _check_unique(conf)
    _check_binary_paths(conf)
    return conf


def _check_unique(conf: HivesConf) -> None:
    problems: list[tuple[str, str]] = []
    aliases: dict[str, int] = {}
    for i, hive in enumerate(conf.hive):
        if hive.alias in aliases:
            problems.append(
                (
                    f"hive[{i}].alias",
                    f"{hive.alias!r} is already used by hive[{aliases[hive.alias]}]",
                )
            )
        aliases.setdefault(hive.alias, i)
        types: dict[str, int] = {}
        for j, worker in enumerate(hive.workers):
            if worker.type in types:
                problems.append(
                    (
                        f"hive[{i}].workers[{j}].type",
                        f"{worker.type!r} is already used by workers[{types[worker.type]}] "
                        "(one worker per type and hive)",
                    )
                )
            types.setdefault(worker.type, j)
    if problems:
        raise ConfigError(problems)


def _fixed_path_forms(user: str, relative: str) -> set[str]:
    homes = [f"/home/{user}"] + (["/root"] if user == "root" else [])
    return {f"~/{relative}", f"$HOME/{relative}", "${HOME}/" + relative} | {
        f"{home}/{relative}" for home in homes
    }


def _check_binary_paths(conf: HivesConf) -> None:
    problems: list[tuple[str, str]] = []
    for i, hive in enumerate(conf.hive):
        fixed = layout.stable_path(HIVE_BINARY)
        if hive.binary_path and hive.binary_path not in _fixed_path_forms(hive.ssh_user, fixed):
            problems.append((f"hive[{i}].binary_path", _fixed_message(hive.binary_path, fixed)))
        for j, worker in enumerate(hive.workers):
            fixed = layout.stable_path(f"rbee-worker-{worker.type}")
            allowed = _fixed_path_forms(hive.ssh_user, fixed)
            if worker.binary_path and worker.binary_path not in allowed:
                path = f"hive[{i}].workers[{j}].binary_path"
                problems.append((path, _fixed_message(worker.binary_path, fixed)))
    if problems:
        raise ConfigError(problems)


def _fixed_message(given: str, fixed: str) -> str:
    return (
        f"{given!r} is not supported: rbee-infra always installs to ~/{fixed}; "
        "remove binary_path (or set it to that path)"
    )


def _source_dict(method: ConfInstallMethod) -> dict[str, Any]:
    return {"method": method.method, **method.body().model_dump()}


def to_stack_hives(conf: HivesConf) -> list[dict[str, Any]]:
    """The `rbee:hives` value (camelCase, as rbee_infra.config.fleet reads it), validated."""
    hives: list[dict[str, Any]] = []
    for hive in conf.hive:
        out: dict[str, Any] = {
            "alias": hive.alias,
            "hostname": hive.hostname,
            "sshUser": hive.ssh_user,
        }
        if "ssh_port" in hive.model_fields_set:
            out["sshPort"] = hive.ssh_port
        if "hive_port" in hive.model_fields_set:
            out["hivePort"] = hive.hive_port
        if hive.proxy_jump is not None:
            out["proxyJump"] = hive.proxy_jump
        if hive.queen_url is not None:
            out["queenUrl"] = hive.queen_url
        out["autoStart"] = hive.auto_start
        if hive.install_method is not None:
            out["installMethod"] = _source_dict(hive.install_method)
        workers = []
        for worker in hive.workers:
            w: dict[str, Any] = {"type": worker.type, "version": worker.version}
            if worker.features is not None:
                w["features"] = list(worker.features)
            if worker.install_method is not None:
                w["installMethod"] = _source_dict(worker.install_method)
            workers.append(w)
        if workers or "workers" in hive.model_fields_set:
            out["workers"] = workers
        hives.append(out)
    check_stack_hives(hives)
    return hives


_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def credentials_in(value: Any, path: str = "hives") -> list[str]:
    """The paths (`hives[0].installMethod.repo`) of the strings that carry a credential."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in credentials_in(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in credentials_in(v, f"{path}[{i}]")]
    return [path] if isinstance(value, str) and url_has_credentials(value) else []


def without_credentials(value: Any) -> Any:
    """`value` with every credential-bearing URL shown without its credential."""
    if isinstance(value, dict):
        return {k: without_credentials(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_credentials(v) for v in value]
    return redact_url(value) if isinstance(value, str) and url_has_credentials(value) else value


def conf_path(stack_path: str) -> str:
    """`hives[0].installMethod.git.repo` -> `hive[0].install_method.git.repo`."""
    path = re.sub(r"^hives(?=\[|$)", "hive", stack_path)
    return _CAMEL.sub(lambda m: "_" + m.group(1).lower(), path)


def check_stack_hives(hives: list[dict[str, Any]]) -> FleetConfig:
    """Validate converted hives with the stack-config rules, reporting hives.conf paths."""
    try:
        return parse_fleet({"hives": hives})
    except ConfigError as error:
        raise ConfigError([(conf_path(p), r) for p, r in error.problems]) from None


# --- stack config -> hives.conf (the way back, for `rbee-infra export`) -------------------

_NO_EQUIVALENT_HIVE = (
    "cargo",
    "host_key",
    "reinstall_trigger",
    "prune_unmanaged",
    "ensure_toolchain",
    "rustup_url",
    "min_free_disk_mb",
    "check_platform",
)
_CONNECTION_MIRRORED = {"host", "port", "user"}  # copied into hostname/sshPort/sshUser
_NO_EQUIVALENT_WORKER = ("binary", "reinstall_trigger")


def _conf_method(source: GitSource | ReleaseSource | LocalSource, where: str) -> dict[str, Any]:
    if isinstance(source, GitSource):
        if source.branch is None:
            raise ConfigError(
                [
                    (
                        f"{where}.installMethod",
                        f"hives.conf git sources take a branch, not a {source.ref_kind}",
                    )
                ]
            )
        return {"git": {"repo": source.repo, "branch": source.branch}}
    extra = sorted(source.model_fields_set - {"method", "repo", "tag", "path"})
    if extra:
        raise ConfigError(
            [(f"{where}.installMethod.{source.method}.{extra[0]}", "has no hives.conf equivalent")]
        )
    if isinstance(source, ReleaseSource):
        return {"release": {"repo": source.repo, "tag": source.tag}}
    return {"local": {"path": source.path}}


def _check_representable(model: HiveConfig | WorkerConfig, names: tuple[str, ...], where: str):
    for name in names:
        default = type(model).model_fields[name].default
        if name in model.model_fields_set and getattr(model, name) not in ("", None, default):
            field = type(model).model_fields[name].alias or name
            raise ConfigError([(f"{where}.{field}", "has no hives.conf equivalent")])


def _conf_proxy_jump(hive: HiveConfig, where: str) -> str:
    """The jump hosts in OpenSSH's form; a hop's own key or host key has no equivalent."""
    hops = []
    for k, hop in enumerate(hive.proxy_jump or []):
        own = sorted(hop.model_fields_set - {"host", "port", "user"})
        if own:
            field = type(hop).model_fields[own[0]].alias or own[0]
            raise ConfigError([(f"{where}.proxyJump[{k}].{field}", "has no hives.conf equivalent")])
        host = f"[{hop.host}]" if ":" in hop.host else hop.host
        hops.append(f"{hop.user + '@' if hop.user else ''}{host}:{hop.port}")
    return ",".join(hops) or "none"


def to_conf_dict(fleet: FleetConfig) -> dict[str, Any]:
    hives = []
    for i, hive in enumerate(fleet.hives):
        where = f"hives[{i}]"
        _check_representable(hive, _NO_EQUIVALENT_HIVE, where)
        connection = getattr(hive, "connection", None)
        if connection is not None:
            extra = sorted(connection.model_fields_set - _CONNECTION_MIRRORED)
            if extra:
                field = type(connection).model_fields[extra[0]].alias or extra[0]
                raise ConfigError([(f"{where}.connection.{field}", "has no hives.conf equivalent")])
        out: dict[str, Any] = {
            "alias": hive.alias,
            "hostname": hive.hostname,
            "ssh_user": hive.ssh_user,
        }
        if "ssh_port" in hive.model_fields_set:
            out["ssh_port"] = hive.ssh_port
        if "hive_port" in hive.model_fields_set:
            out["hive_port"] = hive.hive_port
        if hive.proxy_jump is not None:
            out["proxy_jump"] = _conf_proxy_jump(hive, where)
        if hive.queen_url is not None:
            out["queen_url"] = hive.queen_url
        out["auto_start"] = hive.auto_start
        if "install_method" in hive.model_fields_set:
            out["install_method"] = _conf_method(hive.install_method, where)
        workers = []
        for j, worker in enumerate(hive.workers):
            wwhere = f"{where}.workers[{j}]"
            _check_representable(worker, _NO_EQUIVALENT_WORKER, wwhere)
            w: dict[str, Any] = {"type": worker.type, "version": worker.version}
            if worker.features is not None:
                w["features"] = list(worker.features)
            if worker.install_method is not None:
                w["install_method"] = _conf_method(worker.install_method, wwhere)
            workers.append(w)
        if workers or "workers" in hive.model_fields_set:
            out["workers"] = workers
        hives.append(out)
    return {"hive": hives}


def to_text(fleet: FleetConfig) -> str:
    """A hives.conf rbee can read, for the hives of a stack config."""
    return tomli_w.dumps(to_conf_dict(fleet))
