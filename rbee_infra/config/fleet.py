"""The fleet's desired state, validated with pydantic before any host is touched.

Every string that reaches a remote command is restricted here to a safe character set;
the command builders quote them anyway (belt and braces).
"""

from __future__ import annotations

import getpass
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from rbee_infra.base.errors import ConfigError
from rbee_infra.base.redact import ambiguous_userinfo, redact_rejected, url_has_credentials

_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_HOSTNAME = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[?[0-9A-Fa-f:.]+\]?)$")
_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
_REF = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/+-]{0,199}$")
_REV = re.compile(r"^[0-9a-f]{7,40}$")
_FEATURE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")
_WORKER_TYPE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_BINARY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_TOOL_PATH = re.compile(r"^[A-Za-z0-9_~./+][A-Za-z0-9_./+-]{0,255}$")
_GH_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/(?!\.{1,2}$)[A-Za-z0-9_.-]{1,100}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_URL = re.compile(
    r"^(?:(?:https?|ssh|git|file)://[^\s'\"\\`$;&|<>(){}]+|[A-Za-z0-9_][A-Za-z0-9_.-]*@[A-Za-z0-9_.-]+:[^\s'\"\\`$;&|<>(){}-][^\s'\"\\`$;&|<>(){}]*)$"
)
_HTTP_URL = re.compile(r"^(?i:https?)://[^\s'\"\\`$;&|<>(){}]+$")
_HTTPS_URL = re.compile(r"^https://[^\s'\"\\`$;&|<>(){}]+$")
_TRIGGER = re.compile(r"^[A-Za-z0-9_.:+=@/-]{0,128}$")
# a verify override: arguments reach the binary as positional arguments, never as shell text;
# the expected text is only compared here
_VERIFY_ARG = re.compile(r"^[A-Za-z0-9_./:=+@,-]{1,64}$")
_VERIFY_EXPECT = re.compile(
    r"^[A-Za-z0-9_.,:;=+/@()\[\]<>#%'-][A-Za-z0-9 _.,:;=+/@()\[\]<>#%'-]{0,127}$"
)

KNOWN_WORKER_BINARIES = {
    "cpu": "llm-worker-rbee-cpu",
    "cuda": "llm-worker-rbee-cuda",
    "metal": "llm-worker-rbee-metal",
}
HIVE_BINARY = "rbee-hive"
DEFAULT_GIT_REPO = "https://github.com/veighnsche/llama-orch.git"
DEFAULT_RELEASE_REPO = "veighnsche/llama-orch"


def _pattern(regex: re.Pattern[str], allowed: str) -> Any:
    def check(value: str) -> str:
        if not regex.fullmatch(value):
            # a rejected URL may still carry a working credential: never echo it
            raise ValueError(f"{redact_rejected(value)!r} is not allowed; expected {allowed}")
        return value

    return AfterValidator(check)


def _userinfo_rules(value: str) -> str:
    """A credential in an http(s) URL must read the same to git, curl and Python: else it
    could stay in a command line or a log, or be sent wrong."""
    problem = ambiguous_userinfo(value)
    if problem:
        raise ValueError(f"this URL {problem}")
    return value


def _plain_url(value: str) -> str:
    """rbee-hive gets its queen's URL on its command line and in its unit file, which every
    user of the host can read: no credential may ride in it."""
    if url_has_credentials(value):
        raise ValueError(
            f"{redact_rejected(value)!r} carries a credential; rbee-hive's --queen-url is "
            "readable by every user of the host (its command line and unit file), so it "
            "cannot carry one"
        )
    return value


def _ref_rules(value: str) -> str:
    if ".." in value or "//" in value or value.endswith(("/", ".lock", ".")) or "@{" in value:
        raise ValueError(f"{value!r} is not a valid git ref name")
    return value


Alias = Annotated[str, _pattern(_ALIAS, "letters, digits, '.', '_' or '-' (max 63)")]
Hostname = Annotated[str, _pattern(_HOSTNAME, "a DNS name or an IP address")]
User = Annotated[str, _pattern(_USER, "a POSIX user name (letters, digits, '_', '.', '-')")]
GitRef = Annotated[
    str,
    _pattern(_REF, "a git ref name (letters, digits, '.', '_', '/', '+', '-')"),
    AfterValidator(_ref_rules),
]
GitRev = Annotated[str, _pattern(_REV, "a commit id of 7 to 40 lowercase hex digits")]
Feature = Annotated[str, _pattern(_FEATURE, "a cargo feature name (letters, digits, '_', '-')")]
WorkerType = Annotated[
    str, _pattern(_WORKER_TYPE, "a lowercase name such as cpu, cuda, metal (a-z, 0-9, '_', '-')")
]
BinaryName = Annotated[str, _pattern(_BINARY, "a cargo binary name (letters, digits, _ . -)")]
ToolPath = Annotated[str, _pattern(_TOOL_PATH, "a command name or path without spaces")]
RepoUrl = Annotated[
    str,
    _pattern(_URL, "a git URL (https://, ssh://, git://, file:// or user@host:path)"),
    AfterValidator(_userinfo_rules),
]
Sha256 = Annotated[str, _pattern(_SHA256, "64 lowercase hex digits")]
Trigger = Annotated[str, _pattern(_TRIGGER, "up to 128 characters of [A-Za-z0-9_.:+=@/-]")]
HttpsUrl = Annotated[str, _pattern(_HTTPS_URL, "an https:// URL")]
HttpUrl = Annotated[str, _pattern(_HTTP_URL, "an http(s) URL")]
QueenUrl = Annotated[HttpUrl, AfterValidator(_plain_url)]
DiskMb = Annotated[int, Field(ge=0, le=10_000_000)]
Port = Annotated[int, Field(ge=1, le=65535)]
DEFAULT_RUSTUP_URL = "https://sh.rustup.rs"


def _local_user() -> str:
    """Like ssh, default to the operator's own user name."""
    return getpass.getuser()


class Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class GitSource(Model):
    method: Literal["git"] = "git"
    repo: RepoUrl = DEFAULT_GIT_REPO
    branch: GitRef | None = None
    tag: GitRef | None = None
    rev: GitRev | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_ref(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        given = [k for k in ("branch", "tag", "rev") if data.get(k) is not None]
        if len(given) > 1:
            raise ValueError(f"give only one of branch, tag, rev (got {', '.join(given)})")
        return data if given else {**data, "branch": "main"}

    @property
    def ref_kind(self) -> Literal["branch", "tag", "rev"]:
        return "tag" if self.tag else "rev" if self.rev else "branch"

    @property
    def ref(self) -> str:
        return self.tag or self.rev or self.branch or "main"


class ReleaseSource(Model):
    method: Literal["release"] = "release"
    repo: Annotated[str, _pattern(_GH_REPO, "owner/name")] = DEFAULT_RELEASE_REPO
    tag: GitRef
    asset: BinaryName | None = None
    sha256: Sha256 | None = None
    base_url: Annotated[
        str, _pattern(_HTTP_URL, "an http(s) URL"), AfterValidator(_userinfo_rules)
    ] = "https://github.com"


class LocalSource(Model):
    method: Literal["local"] = "local"
    path: Annotated[str, Field(min_length=1, max_length=4096)]
    sha256: Sha256 | None = None


Source = Annotated[GitSource | ReleaseSource | LocalSource, Field(discriminator="method")]


def _install_method_shape(value: Any) -> Any:
    """Accept rbee's `{git: {...}}` form as well as the normalized `{method: git, ...}`."""
    if isinstance(value, dict) and "method" not in value and len(value) == 1:
        ((method, body),) = value.items()
        if method in ("git", "release", "local") and isinstance(body, dict):
            return {"method": method, **body}
    return value


def _normalize_install_method(data: Any) -> Any:
    if isinstance(data, dict):
        for key in ("installMethod", "install_method"):
            if key in data:
                data = {**data, key: _install_method_shape(data[key])}
    return data


VerifyArg = Annotated[
    str, _pattern(_VERIFY_ARG, "an argument of letters, digits and _ . / : = + @ , - (max 64)")
]


class VerifyCheck(Model):
    """How to prove a binary runs when neither `--version` nor `--help` does: run it with
    `args`; it must exit 0 and print `expect` (see `decide/verify`)."""

    args: Annotated[list[VerifyArg], Field(min_length=1, max_length=8)]
    expect: Annotated[
        str,
        _pattern(
            _VERIFY_EXPECT,
            "up to 128 characters of letters, digits, spaces and _ . , : ; = + / @ ( ) [ ] < > "
            "# % ' -",
        ),
    ]


class BuilderRef(Model):
    """`build: {builder: <alias>}`: built on that hive's host, shipped to the others."""

    builder: Alias


_BUILD_FORMS = "host, controller or {builder: <hive alias>}"


def _build_shape(value: Any) -> Any:
    """One clear message for every wrong shape (not one per member of the union)."""
    if isinstance(value, BuilderRef):
        return value
    if isinstance(value, str) and value.strip().lower() in ("host", "controller"):
        return value.strip().lower()
    if isinstance(value, dict) and set(value) == {"builder"}:
        if isinstance(value["builder"], str) and _ALIAS.fullmatch(value["builder"]):
            return BuilderRef(builder=value["builder"])
        raise ValueError(f"builder {redact_rejected(str(value['builder']))!r} is not a hive alias")
    raise ValueError(f"{redact_rejected(str(value))!r} is not allowed; expected {_BUILD_FORMS}")


# Where a git source is built: on each host (the original routine), on the operator's machine
# ("controller"), or on one hive's host; see docs/build.md.
BuildPlace = Annotated[Literal["host", "controller"] | BuilderRef, BeforeValidator(_build_shape)]


def build_label(place: str | BuilderRef) -> str:
    """`host`, `controller` or `builder <alias>`, as previews and errors show it."""
    return f"builder {place.builder}" if isinstance(place, BuilderRef) else place


class WorkerConfig(Model):
    type: WorkerType
    # a git tag or branch, or a release tag: as strict as either (it becomes a ref and a URL path)
    version: Annotated[
        str, _pattern(_REF, "'latest' or a git tag/branch"), AfterValidator(_ref_rules)
    ] = "latest"
    features: list[Feature] | None = None
    binary: BinaryName | None = None
    install_method: Source | None = None
    reinstall_trigger: Trigger = ""
    build: BuildPlace | None = None
    verify: VerifyCheck | None = None  # default: `--version`, else `--help`

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        return _normalize_install_method(data)

    @property
    def binary_name(self) -> str:
        return self.binary or KNOWN_WORKER_BINARIES.get(self.type, f"llm-worker-rbee-{self.type}")

    @property
    def feature_list(self) -> list[str]:
        if self.features is not None:
            return list(self.features)
        return [self.type] if self.type in KNOWN_WORKER_BINARIES else []

    @property
    def install_name(self) -> str:
        return f"rbee-worker-{self.type}"


class JumpHost(Model):
    """One jump host (bastion) on the way to a hive: pulumi-command's `connection.proxy` shape.
    Without its own key it authenticates like the hive; its host key is verified like the
    hive's, from its own hostKey or the known_hosts file."""

    host: Hostname
    port: Port = 22
    user: User | None = None
    private_key: Annotated[str, Field(min_length=1, max_length=65536)] | None = Field(
        default=None, repr=False
    )
    private_key_password: Annotated[str, Field(max_length=4096)] | None = Field(
        default=None, repr=False
    )
    host_key: Annotated[str, Field(max_length=16384)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _unsupported(cls, data: Any) -> Any:
        if isinstance(data, dict) and "password" in data:
            raise ValueError("password authentication is not supported; use privateKey")
        if isinstance(data, dict):
            # pulumi-command's ProxyConnection fields that mean nothing to a jump host here
            data = {k: v for k, v in data.items() if k not in ("dialErrorLimit", "perDialTimeout")}
        return data

_JUMP_SPEC = re.compile(
    r"^(?:(?P<user>[A-Za-z_][A-Za-z0-9_.-]{0,31})@)?"
    r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9][A-Za-z0-9.-]{0,252}))"
    r"(?::(?P<port>[0-9]{1,5}))?$"
)


def parse_proxy_jump(text: str) -> list[dict[str, Any]]:
    """OpenSSH's ProxyJump form, `[user@]host[:port][,...]`, as JumpHost fields."""
    hops: list[dict[str, Any]] = []
    for part in text.split(","):
        m = _JUMP_SPEC.fullmatch(part.strip())
        if m is None:
            raise ValueError(
                f"{part.strip()!r} is not a jump host; expected [user@]host[:port], "
                "comma-separated"
            )
        hop: dict[str, Any] = {"host": m["v6"] or m["host"]}
        if m["user"]:
            hop["user"] = m["user"]
        if m["port"]:
            hop["port"] = int(m["port"])
        hops.append(hop)
    return hops


def _jump_list(value: Any) -> Any:
    if isinstance(value, str):
        # "none", as in OpenSSH: no jump host, whatever the ssh config says
        return [] if value.strip().lower() == "none" else parse_proxy_jump(value)
    if isinstance(value, dict):
        return [value]
    return value


class JumpHop(Model):
    """One jump host on the way (nearest first). Without its own key it authenticates like
    the target; its host key is checked against its hostKey, else its known_hosts file."""

    host: Hostname
    port: Port = 22
    user: User
    private_key: Annotated[str, Field(max_length=65536)] | None = None
    private_key_password: Annotated[str, Field(max_length=4096)] | None = None
    host_key: Annotated[str, Field(max_length=16384)] | None = None
    known_hosts: Annotated[str, Field(max_length=4096)] | None = None

    @property
    def label(self) -> str:
        return f"jump host {self.user}@{self.host}:{self.port}"


class HiveConnection(Model):
    """A hive's SSH target in pulumi-command's `remote.ConnectionArgs` shape (see command.py)."""

    host: Hostname
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    user: User | None = None
    private_key: Annotated[str, Field(min_length=1, max_length=65536)] | None = Field(
        default=None, repr=False
    )
    private_key_password: Annotated[str, Field(max_length=4096)] | None = Field(
        default=None, repr=False
    )
    agent_socket_path: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    host_key: Annotated[str, Field(max_length=16384)] | None = None
    dial_error_limit: Annotated[int, Field(ge=1, le=20)] | None = None
    per_dial_timeout: Annotated[int, Field(ge=1, le=600)] | None = None
    proxy: JumpHost | None = None

    @model_validator(mode="before")
    @classmethod
    def _unsupported(cls, data: Any) -> Any:
        if isinstance(data, dict) and "password" in data:
            raise ValueError(
                "password authentication is not supported; use privateKey or agentSocketPath"
            )
        return data


# connection field -> the hive field it fills (each spelling pydantic accepts)
_CONNECTION_TARGET = {
    "host": ("hostname",),
    "user": ("sshUser", "ssh_user"),
    "port": ("sshPort", "ssh_port"),
    "hostKey": ("hostKey", "host_key"),
    "host_key": ("hostKey", "host_key"),
}


def _merge_connection(data: dict[str, Any]) -> dict[str, Any]:
    """Fill hostname/sshUser/sshPort/hostKey from a `connection:` block; refuse conflicts."""
    connection = data.get("connection")
    if not isinstance(connection, dict):
        return data
    merged = dict(data)
    if connection.get("proxy") is not None:
        if any(merged.get(k) is not None for k in ("proxyJump", "proxy_jump")):
            raise ValueError("give the jump hosts once: proxyJump or connection.proxy")
        merged["proxyJump"] = [connection["proxy"]]
    for key, targets in _CONNECTION_TARGET.items():
        if connection.get(key) is None:
            continue
        given = [t for t in targets if merged.get(t) is not None]
        if not given:
            merged[targets[0]] = connection[key]
        elif merged[given[0]] != connection[key]:
            raise ValueError(
                f"{given[0]} {merged[given[0]]!r} and connection.{key} {connection[key]!r} "
                "differ; give the target once"
            )
    return merged


class HiveConfig(Model):
    alias: Alias
    hostname: Hostname
    ssh_user: User = Field(default_factory=lambda: _local_user())
    ssh_port: Annotated[int, Field(ge=1, le=65535)] = 22
    # jump hosts (bastions), nearest first: OpenSSH's "user@host:port,..." or a list of hops
    proxy_jump: Annotated[list[JumpHost], BeforeValidator(_jump_list)] | None = None
    hive_port: Port = 8600
    # rbee-hive's --queen-url (rbee's own default when unset: http://localhost:7833)
    queen_url: QueenUrl | None = None
    # as in rbee's hives.conf: after an install the hive runs as a service on hive_port
    auto_start: bool = True
    install_method: Source = Field(default_factory=GitSource)
    workers: list[WorkerConfig] = Field(default_factory=list)
    cargo: ToolPath = "cargo"
    # preflight (see `preflight`): install Rust with rustup when cargo is missing; the free
    # space a build needs; whether cuda/metal features need their platform on this host
    ensure_toolchain: bool = False
    rustup_url: HttpsUrl = DEFAULT_RUSTUP_URL
    min_free_disk_mb: DiskMb | None = None
    check_platform: bool = True
    host_key: Annotated[str, Field(max_length=16384)] | None = None
    reinstall_trigger: Trigger = ""
    prune_unmanaged: bool = False
    connection: HiveConnection | None = None
    build: BuildPlace | None = None
    verify: VerifyCheck | None = None  # the hive binary's check (default: `--version`, `--help`)

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        data = _normalize_install_method(data)
        return _merge_connection(data) if isinstance(data, dict) else data

    def preflight_settings(self) -> dict[str, Any]:
        """The hive's preflight settings (snake_case), shared by its workers."""
        return {
            "ensure_toolchain": self.ensure_toolchain,
            "rustup_url": self.rustup_url,
            "min_free_disk_mb": self.min_free_disk_mb,
            "check_platform": self.check_platform,
        }

    @model_validator(mode="after")
    def _unique_workers(self) -> HiveConfig:
        seen: set[str] = set()
        for worker in self.workers:
            if worker.type in seen:
                raise ValueError(
                    f"worker type {worker.type!r} appears twice; each type installs to "
                    f"~/.local/share/rbee/workers/rbee-worker-{worker.type}"
                )
            seen.add(worker.type)
        return self


class FleetConfig(Model):
    hives: list[HiveConfig]
    ssh_private_key: Annotated[str, Field(max_length=65536)] | None = None
    ssh_private_key_path: Annotated[str, Field(max_length=4096)] | None = None
    ssh_private_key_password: Annotated[str, Field(max_length=4096)] | None = None
    ssh_agent: bool = False
    # resolve hive hostnames through an OpenSSH client config (true: ~/.ssh/config)
    ssh_config: bool | Annotated[str, Field(min_length=1, max_length=4096)] = False
    known_hosts: Annotated[str, Field(max_length=4096)] | None = "~/.ssh/known_hosts"
    host_key_policy: Literal["strict", "tofu"] = "strict"
    connect_timeout: Annotated[float, Field(gt=0, le=600)] = 15.0
    build_timeout: Annotated[float, Field(gt=0, le=86400)] = 3600.0
    lock_timeout: Annotated[float, Field(ge=1, le=86400)] = 1800.0
    operation_timeout: Annotated[float, Field(ge=10, le=172800)] = 7200.0
    build: BuildPlace = "host"
    # change it to generate again the Cargo.lock kept in state for a repository without one
    cargo_lock_refresh: Trigger = ""

    @model_validator(mode="after")
    def _builders_exist(self) -> FleetConfig:
        aliases = {hive.alias for hive in self.hives}
        places: list[tuple[str, BuildPlace | None]] = [("build", self.build)]
        for i, hive in enumerate(self.hives):
            places.append((f"hives[{i}].build", hive.build))
            places += [
                (f"hives[{i}].workers[{j}].build", w.build) for j, w in enumerate(hive.workers)
            ]
        for where, place in places:
            if isinstance(place, BuilderRef) and place.builder not in aliases:
                raise ValueError(
                    f"{where}.builder: {place.builder!r} is not the alias of a hive in rbee:hives"
                )
        return self

    @model_validator(mode="after")
    def _unique_hives(self) -> FleetConfig:
        aliases: dict[str, int] = {}
        targets: dict[tuple[str, int, str], str] = {}
        for hive in self.hives:
            if hive.alias in aliases:
                raise ValueError(f"alias {hive.alias!r} is used by more than one hive")
            aliases[hive.alias] = 1
            target = (hive.hostname.lower(), hive.ssh_port, hive.ssh_user)
            if target in targets:
                raise ValueError(
                    f"hives {targets[target]!r} and {hive.alias!r} install to the same "
                    f"account ({hive.ssh_user}@{hive.hostname}:{hive.ssh_port})"
                )
            targets[target] = hive.alias
        return self


_SEMVER_LIKE = re.compile(r"^v?\d+(\.\d+)*([-+][0-9A-Za-z.-]+)?$")


def worker_source(hive: HiveConfig, worker: WorkerConfig) -> Source:
    """A worker builds from its own installMethod, else the hive's; `version` pins the ref."""
    source = worker.install_method or hive.install_method
    if worker.version == "latest":
        return source
    if isinstance(source, GitSource):
        ref = (
            {"tag": worker.version}
            if _SEMVER_LIKE.match(worker.version)
            else {"branch": worker.version}
        )
        return GitSource(repo=source.repo, **ref)
    if isinstance(source, ReleaseSource):
        # built anew, so validated (a copy with an update would skip it)
        return ReleaseSource.model_validate({**source.model_dump(), "tag": worker.version})
    return source


def build_place(
    fleet: FleetConfig, hive: HiveConfig, worker: WorkerConfig | None = None
) -> BuildPlace:
    """Where this hive's (or worker's) git source is built: the worker's setting, else the
    hive's, else the stack's."""
    if worker is not None and worker.build is not None:
        return worker.build
    return hive.build if hive.build is not None else fleet.build


def format_loc(loc: tuple[int | str, ...]) -> str:
    """('hives', 1, 'workers', 0, 'features', 2) -> 'hives[1].workers[0].features[2]'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("git", "release", "local") and out.endswith("installMethod"):
            out += f".{part}"
        elif str(part).startswith("function-after") or str(part).startswith("function-before"):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def problems_of(error: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    problems = []
    for item in error.errors():
        path = format_loc(tuple(item["loc"]))
        if prefix:
            path = f"{prefix}.{path}" if path and not path.startswith("[") else prefix + path
        message = item["msg"].removeprefix("Value error, ")
        problems.append((path, message))
    return problems


def parse_fleet(data: Any) -> FleetConfig:
    """Validate a whole fleet; raise ConfigError naming every bad field."""
    try:
        return FleetConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(problems_of(error)) from None


def plain_credentials(fleet: FleetConfig) -> list[tuple[str, str]]:
    """Credentials in URLs of a fleet whose `rbee:hives` is plain config. The engine hands the
    whole stack config to the dynamic provider and records it in state, so a token there would
    sit in the state file unencrypted: refuse it, and say how to make it a secret."""
    problems: list[tuple[str, str]] = []
    for i, hive in enumerate(fleet.hives):
        sources = [(f"hives[{i}].installMethod", hive.install_method)]
        sources += [
            (f"hives[{i}].workers[{j}].installMethod", worker.install_method)
            for j, worker in enumerate(hive.workers)
        ]
        for where, source in sources:
            field, url = (
                ("git.repo", source.repo) if isinstance(source, GitSource)
                else ("release.baseUrl", source.base_url) if isinstance(source, ReleaseSource)
                else ("", "")
            )
            if url and url_has_credentials(url):
                problems.append((
                    f"{where}.{field}",
                    "this URL carries a credential, so rbee:hives must be a secret: "
                    f"pulumi config set --secret --path 'rbee:{where}.{field}' '<url>'",
                ))
    return problems
