"""The Pulumi program: read stack config, validate it, declare one Hive and its Workers per host."""

from __future__ import annotations

import json
import os
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.runtime.config import is_config_secret

from rbee_infra.base import layout
from rbee_infra.base.errors import ConfigError, RbeeError
from rbee_infra.base.redact import url_has_credentials
from rbee_infra.config import sshconfig
from rbee_infra.config.fleet import (
    HIVE_BINARY,
    BuilderRef,
    BuildPlace,
    FleetConfig,
    GitSource,
    HiveConfig,
    Source,
    VerifyCheck,
    WorkerConfig,
    build_place,
    parse_fleet,
    plain_credentials,
    worker_source,
)
from rbee_infra.stack.resources import (
    KICKOFF_NAME,
    Build,
    BuildKickoff,
    Hive,
    HiveArgs,
    InstallArgs,
    Worker,
    WorkerArgs,
    build_props,
)

if TYPE_CHECKING:
    from rbee_infra.stack.command import CommandConfig

# The stack output that carries, under hostKeyPolicy "tofu", the key pinned for each host
# ("host:port" -> key). Not a valid alias, so it never collides with a hive's own output.
HOST_KEYS = "rbee:hostKeys"

@dataclass(frozen=True)
class Secrets:
    """Secret config values, kept as Outputs so they stay secret in state."""

    private_key: pulumi.Output[str] | None = None
    private_key_password: pulumi.Output[str] | None = None


def read_stack_config() -> tuple[FleetConfig, Secrets]:
    """Validate `rbee:*` config before any resource is declared (and so before any host)."""
    cfg = pulumi.Config("rbee")
    key = cfg.get_secret("sshPrivateKey")
    password = cfg.get_secret("sshPrivateKeyPassword")
    data: dict[str, Any] = {"hives": cfg.get_object("hives") or []}
    for name in (
        "sshPrivateKeyPath",
        "knownHosts",
        "hostKeyPolicy",
    ):
        value = cfg.get(name)
        if value is not None:
            data[name] = value
    for name in ("connectTimeout", "buildTimeout", "lockTimeout", "operationTimeout"):
        value = cfg.get_float(name)
        if value is not None:
            data[name] = value
    build = cfg.get("build")
    if build is not None:  # `controller`, `host`, or the object `{builder: <alias>}`
        data["build"] = _json_or_text(build)
    refresh = cfg.get("cargoLockRefresh")
    if refresh is not None:
        data["cargoLockRefresh"] = refresh
    agent = cfg.get_bool("sshAgent")
    if agent is not None:
        data["sshAgent"] = agent
    ssh_config = cfg.get("sshConfig")
    if ssh_config is not None:
        # true/false, or the path of an OpenSSH client config
        lowered = ssh_config.strip().lower()
        data["sshConfig"] = {"true": True, "false": False}.get(lowered, ssh_config)
    if key is not None:
        data["sshPrivateKey"] = "<secret>"
    fleet = parse_fleet(data)
    if not is_config_secret("rbee:hives") and (problems := plain_credentials(fleet)):
        raise ConfigError(problems)
    return fleet, Secrets(private_key=key, private_key_password=password)


def _json_or_text(value: str) -> Any:
    import json

    try:
        return json.loads(value)
    except ValueError:
        return value


def _plain_connection(
    fleet: FleetConfig, hive: HiveConfig, fields: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    """The host's connection (from its `sshconfig.connection_fields`) without the stack's
    secret key and password, and whether the hive brings its own key (which the stack's then do
    not replace)."""
    plain: dict[str, Any] = {
        **fields,
        "hostKeyPolicy": fleet.host_key_policy,
        "connectTimeout": fleet.connect_timeout,
    }
    if hive.host_key:
        plain["hostKey"] = hive.host_key
    if fleet.ssh_agent and os.environ.get("SSH_AUTH_SOCK"):
        plain["agentSocketPath"] = os.environ["SSH_AUTH_SOCK"]
    # a pulumi-command-shaped `connection:` block (host/user/port/hostKey are already merged
    # into the hive's fields); its own key replaces the fleet's key and password
    own = hive.connection
    own_key = own is not None and own.private_key is not None
    if own is not None:
        if own.private_key is not None:
            plain.pop("privateKeyPath", None)
            plain["privateKey"] = own.private_key
            if own.private_key_password is not None:
                plain["privateKeyPassword"] = own.private_key_password
        if own.agent_socket_path is not None:
            plain["agentSocketPath"] = own.agent_socket_path
        if own.dial_error_limit is not None:
            plain["dialErrorLimit"] = own.dial_error_limit
        if own.per_dial_timeout is not None:
            plain["connectTimeout"] = float(own.per_dial_timeout)
    return plain, own_key


def known_connection(
    plain: dict[str, Any], own_key: bool, secrets: Secrets
) -> dict[str, Any] | None:
    """`connection_for`'s value, where the program knows it now: not when the stack's secret
    key or password goes into it (an Output, resolved later)."""
    if own_key or (secrets.private_key is None and secrets.private_key_password is None):
        return plain
    return None


def connection_for(plain: dict[str, Any], own_key: bool, secrets: Secrets) -> pulumi.Output:
    """The hive's connection as its resources take it (secret): `_plain_connection`'s, with
    the stack's key and password unless the hive brings its own."""
    key = secrets.private_key or pulumi.Output.from_input(None)
    password = secrets.private_key_password or pulumi.Output.from_input(None)

    def merge(values: list[Any]) -> dict[str, Any]:
        out = dict(plain)
        if values[0] and not own_key:
            out["privateKey"] = values[0]
        if values[1] and not own_key:
            out["privateKeyPassword"] = values[1]
        return out

    return pulumi.Output.secret(pulumi.Output.all(key, password).apply(merge))


def _source_input(source: Any) -> tuple[Any, bool]:
    data = source.model_dump(by_alias=True, exclude_none=True)
    secret = any(
        isinstance(data.get(k), str) and url_has_credentials(data[k]) for k in ("repo", "baseUrl")
    )
    return (pulumi.Output.secret(data) if secret else data), secret


def _verify_input(check: VerifyCheck | None) -> dict[str, Any] | None:
    return check.model_dump(by_alias=True) if check is not None else None


@dataclass
class Builds:
    """The stack's Build resources (see `builds`), one per (where, source, binary, features,
    cargo), made when an install first asks for one: hosts that share a source share its
    build."""

    fleet: FleetConfig
    connections: dict[str, pulumi.Output]
    made: dict[tuple[Any, ...], Build]

    def ship(self, args: InstallArgs, place: BuildPlace, source: Source, secret: bool) -> None:
        """Make `args` an install that receives its binary from a build at `place` (a git
        source built elsewhere); leave it alone when it builds on its own host."""
        if place == "host" or not isinstance(source, GitSource):
            return
        features = list(args.features) if isinstance(args.features, list) else []
        binary, cargo = str(args.binary), str(args.cargo)
        if isinstance(place, BuilderRef):
            where = f"on-{place.builder}"
            build: Any = pulumi.Output.all(self.connections[place.builder]).apply(
                lambda c, alias=place.builder: {
                    "place": "builder", "builder": alias, "builderConnection": c[0]
                }
            )
        else:
            where, build = "controller", {"place": "controller"}
        key = (where, source.repo, source.ref_kind, source.ref, binary, tuple(features), cargo)
        resource = self.made.get(key)
        if resource is None:
            tag = layout.short_hash(*map(str, key), length=6)
            name = f"build-{where}-{binary}" + (f"-{'+'.join(features)}" if features else "")
            props = {
                "source": args.source,
                "binary": binary,
                "features": features,
                "cargo": cargo,
                "build": build,
                "cargoLockRefresh": self.fleet.cargo_lock_refresh,
                "stack": pulumi.get_stack(),
                "resourceName": f"{name}-{tag}",
                "buildTimeout": self.fleet.build_timeout,
                "lockTimeout": self.fleet.lock_timeout,
                "operationTimeout": self.fleet.operation_timeout,
            }
            resource = self.made[key] = Build(f"{name}-{tag}", props, secret_source=secret)
        args.build = build
        args.artifact = resource.artifact


def _worker_args(
    fleet: FleetConfig,
    hive: HiveConfig,
    worker: WorkerConfig,
    connection: pulumi.Output,
    pin: pulumi.Output | None,
) -> tuple[WorkerArgs, bool]:
    """A worker's inputs, and whether its source is secret."""
    wsource, wsecret = _source_input(worker_source(hive, worker))
    args = WorkerArgs(
        alias=hive.alias,
        connection=connection,
        source=wsource,
        binary=worker.binary_name,
        features=worker.feature_list,
        cargo=hive.cargo,
        reinstall_trigger=worker.reinstall_trigger or hive.reinstall_trigger,
        build_timeout=fleet.build_timeout,
        lock_timeout=fleet.lock_timeout,
        operation_timeout=fleet.operation_timeout,
        worker_type=worker.type,
        trusted_host_key=pin,
        verify=_verify_input(worker.verify),
        **hive.preflight_settings(),
    )
    return args, wsecret


@dataclass(frozen=True)
class _PlannedHive:
    hive: HiveConfig
    connection: pulumi.Output
    args: HiveArgs
    secret: bool
    workers: list[tuple[WorkerConfig, WorkerArgs, bool]]
    target: str  # "host:port", as SSH knows the host (its host key is the same for any user)
    pin: pulumi.Output | None  # the key the stack pinned for the host before (tofu)


def _target(fields: dict[str, Any]) -> str:
    """"host:port": the machine as SSH knows it (its host key is the same for any user)."""
    return f"{str(fields['host']).lower()}:{fields['port']}"


def pinned_in_state() -> pulumi.Output:
    """The host keys this stack pinned in earlier runs ("host:port" -> key): its own last
    `HOST_KEYS` output, read back through a reference to the stack itself. Every resource of
    a host gets the host's pin from here, so the pin holds for any resource the engine steps,
    even when it skips the other resources' checks (`pulumi up --target`)."""
    me = pulumi.StackReference(
        f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
    )
    return me.get_output(HOST_KEYS).apply(lambda keys: keys if isinstance(keys, dict) else {})


def _plan_hive(
    fleet: FleetConfig,
    hive: HiveConfig,
    connection: pulumi.Output,
    builds: Builds,
    target: str,
    pinned: pulumi.Output | None,
) -> _PlannedHive:
    """The inputs of a hive and its workers."""
    pin = None if pinned is None else pinned.apply(lambda keys: keys.get(target))
    source, secret = _source_input(hive.install_method)
    args = HiveArgs(
        alias=hive.alias,
        connection=connection,
        source=source,
        binary=HIVE_BINARY,
        features=[],
        cargo=hive.cargo,
        reinstall_trigger=hive.reinstall_trigger,
        build_timeout=fleet.build_timeout,
        lock_timeout=fleet.lock_timeout,
        operation_timeout=fleet.operation_timeout,
        prune_unmanaged=hive.prune_unmanaged,
        managed_workers=[w.type for w in hive.workers],
        auto_start=hive.auto_start,
        hive_port=hive.hive_port,
        queen_url=hive.queen_url,
        trusted_host_key=pin,
        verify=_verify_input(hive.verify),
        **hive.preflight_settings(),
    )
    builds.ship(args, build_place(fleet, hive), hive.install_method, secret)
    workers = [(w, *_worker_args(fleet, hive, w, connection, pin)) for w in hive.workers]
    for worker, wargs, wsecret in workers:
        builds.ship(wargs, build_place(fleet, hive, worker), worker_source(hive, worker), wsecret)
    return _PlannedHive(hive, connection, args, secret, workers, target, pin)


def _kickoff_hosts(planned: Sequence[_PlannedHive]) -> list[dict[str, Any]]:
    """The stack's BuildKickoff's hosts (see `kickoff`): every host, so that its check reads the
    whole fleet at once (the engine calls Check one resource at a time; the hives' and workers'
    own checks then answer from memory) and its update starts every git build before any
    install waits. Every hive depends on it."""
    hosts: list[dict[str, Any]] = []
    for p in planned:
        hive = p.hive
        installs = [build_props(p.args, "hive", f"hive-{hive.alias}")]
        installs += [
            build_props(args, "worker", f"worker-{hive.alias}-{w.type}")
            for w, args, _ in p.workers
        ]
        host = {"alias": hive.alias, "connection": p.connection, "installs": installs}
        if p.pin is not None:
            host["trustedHostKey"] = p.pin
        hosts.append(host)
    return hosts


READ_AHEAD_MODULE = "rbee_infra.host.hostview"  # its `read_ahead`, in the provider's preload


def ask_to_read_ahead(hosts: list[dict[str, Any]]) -> None:
    """Ask the provider server started ahead by the project's language host
    (tools/pulumi/pulumi-dynamic-warm.py) to read the hosts now, while this program goes on and
    the engine starts the provider: the kick-off's check, then every hive's and worker's,
    answers from what it read (`hostview.read_ahead`). Only to a socket in a directory private
    to this user (the hosts' settings are sent); a host with a value known only later (a
    secret's Output) is left out; no server, or any error: nothing is asked, the checks read.
    `RBEE_INFRA_READ_AHEAD=0` turns it off (the checks then read the hosts themselves)."""
    path = os.environ.get("PULUMI_PYTHON_WARM_SOCKET")
    if not path or os.environ.get("RBEE_INFRA_READ_AHEAD", "1") == "0":
        return
    plain: list[dict[str, Any]] = []
    for host in hosts:
        try:
            json.dumps(host)
        except (TypeError, ValueError):
            continue
        plain.append(host)
    if not plain:
        return
    data = json.dumps({"module": READ_AHEAD_MODULE, "payload": {"hosts": plain}}).encode()
    try:
        folder = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY)
    except (OSError, AttributeError):
        return
    try:
        seen = os.fstat(folder)
        if seen.st_uid != os.getuid() or seen.st_mode & 0o077:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(1.0)
            # by the directory's descriptor: a socket's path must fit in 108 bytes
            conn.connect(f"/proc/self/fd/{folder}/{os.path.basename(path)}")
            conn.sendall(b"READ" + struct.pack("!I", len(data)) + data)
    except (OSError, AttributeError):
        return
    finally:
        os.close(folder)


def _installed_first(hive: Hive) -> pulumi.Output[Any]:
    """`depends_on` for the hive's workers: the hive, so that they install after it. When the
    hive's install fails and the run goes on (`up --continue-on-error`, `rbee-infra up`), the
    SDK fails a dependent's registration with its own exception, which the program's runner
    prints as an unhandled one, traceback and all. A hive that failed is therefore no
    dependency: its workers install on their own (a worker's install does not need its
    hive)."""

    async def installed() -> Hive | None:
        try:
            await hive.urn.future()
        except Exception:  # the SDK's marker that the engine reported the hive failed
            return None
        return hive

    return pulumi.Output.from_input(installed())


def _exported(resource: pulumi.CustomResource, **outputs: str) -> dict[str, pulumi.Output[Any]]:
    """Stack outputs (export key -> the resource's output). A resource that failed under
    `up --continue-on-error` exports null: its faulted outputs would otherwise fail the
    stack's outputs, and the program, with the SDK's traceback."""
    return {
        key: getattr(resource, name).recover(lambda _: None) for key, name in outputs.items()
    }


def declare_fleet(
    fleet: FleetConfig, secrets: Secrets, commands: Sequence[CommandConfig] = ()
) -> dict[str, dict[str, Any]]:
    """Declare every hive, worker and command; return what the stack exports per hive (and,
    under hostKeyPolicy "tofu", the host keys the stack pinned, as `HOST_KEYS`)."""
    exports: dict[str, dict[str, Any]] = {}
    pinned = pinned_in_state() if fleet.host_key_policy == "tofu" and fleet.hives else None
    fields = {hive.alias: sshconfig.connection_fields(fleet, hive) for hive in fleet.hives}
    plain = {hive.alias: _plain_connection(fleet, hive, fields[hive.alias])
             for hive in fleet.hives}  # fmt: skip
    connections = {alias: connection_for(*found, secrets) for alias, found in plain.items()}
    builds = Builds(fleet, connections, {})
    planned = [
        _plan_hive(fleet, hive, connections[hive.alias], builds, _target(fields[hive.alias]),
                   pinned)
        for hive in fleet.hives
    ]
    hosts = _kickoff_hosts(planned)
    known = {alias: known_connection(*found, secrets) for alias, found in plain.items()}
    ask_to_read_ahead([{**host, "connection": known[host["alias"]]} for host in hosts
                       if known[host["alias"]] is not None])  # fmt: skip
    kickoff = (
        BuildKickoff(KICKOFF_NAME, hosts, cargo_lock_refresh=fleet.cargo_lock_refresh)
        if hosts
        else None
    )
    keys: dict[str, list[Any]] = {}
    after_kickoff = pulumi.ResourceOptions(depends_on=[kickoff]) if kickoff is not None else None
    for p in planned:
        hive, connection = p.hive, p.connection
        hive_resource = Hive(f"hive-{hive.alias}", p.args, after_kickoff, secret_source=p.secret)
        after_hive = _installed_first(hive_resource)
        workers: dict[str, Any] = {}
        worker_resources: dict[str, Worker] = {}
        for worker, args, wsecret in p.workers:
            resource = Worker(
                f"worker-{hive.alias}-{worker.type}",
                args,
                pulumi.ResourceOptions(depends_on=[after_hive]),
                secret_source=wsecret,
            )
            worker_resources[worker.type] = resource
            workers[worker.type] = _exported(resource, path="installPath", version="version",
                                             verifiedBy="verifiedBy", commit="commit")
        # a resource that failed under `up --continue-on-error` holds no pin to export
        keys.setdefault(p.target, []).extend(
            r.trustedHostKey.recover(lambda _: None)  # type: ignore[attr-defined]
            for r in (hive_resource, *worker_resources.values())
        )
        if kickoff is not None:
            keys[p.target].append(
                kickoff.trustedHostKeys.apply(  # type: ignore[attr-defined]
                    lambda found, alias=hive.alias: (found or {}).get(alias)
                ).recover(lambda _: None)
            )
        for command in commands:
            if command.hive == hive.alias:
                from rbee_infra.stack.command import declare_command

                declare_command(command, hive_resource, connection, worker_resources)
        exports[hive.alias] = {
            "hive": _exported(
                hive_resource,
                path="installPath",
                version="version",
                verifiedBy="verifiedBy",
                commit="commit",
                extras="extras",
                service="service",
                hostFacts="hostFacts",
            ),
            "workers": workers,
        }
    if pinned is not None:
        exports[HOST_KEYS] = {
            target: pulumi.Output.all(*found).apply(lambda keys: next(filter(None, keys), None))
            for target, found in keys.items()
        }
    return exports


def main() -> None:
    try:
        fleet, secrets = read_stack_config()
        data = pulumi.Config("rbee").get_object("commands")
        commands: list[CommandConfig] = []
        if data is not None:
            # pulumi_command and its models cost every start-up; only a stack with commands pays
            from rbee_infra.stack.command import parse_commands

            commands = parse_commands(data, fleet)
        declared = declare_fleet(fleet, secrets, commands)
    except RbeeError as error:
        # an expected error (bad config) reads as its message; the SDK's runner shows any
        # other exception with the program's traceback
        raise pulumi.RunError(str(error)) from None
    for alias, value in declared.items():
        pulumi.export(alias, value)
