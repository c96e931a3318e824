"""The Pulumi program: read stack config, validate it, declare one Hive and its Workers per host."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.runtime.config import is_config_secret

from rbee_infra.base.errors import ConfigError
from rbee_infra.base.redact import url_has_credentials
from rbee_infra.config import sshconfig
from rbee_infra.config.fleet import (
    HIVE_BINARY,
    FleetConfig,
    HiveConfig,
    WorkerConfig,
    parse_fleet,
    plain_credentials,
    worker_source,
)
from rbee_infra.stack.resources import (
    KICKOFF_NAME,
    BuildKickoff,
    Hive,
    HiveArgs,
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


def connection_for(
    fleet: FleetConfig, hive: HiveConfig, secrets: Secrets, fields: dict[str, Any] | None = None
) -> pulumi.Output:
    plain: dict[str, Any] = {
        **(fields if fields is not None else sshconfig.connection_fields(fleet, hive)),
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
    fleet: FleetConfig, hive: HiveConfig, secrets: Secrets, pinned: pulumi.Output | None
) -> _PlannedHive:
    """The inputs of a hive and its workers."""
    fields = sshconfig.connection_fields(fleet, hive)
    connection = connection_for(fleet, hive, secrets, fields)
    target = f"{str(fields['host']).lower()}:{fields['port']}"
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
        **hive.preflight_settings(),
    )
    workers = [(w, *_worker_args(fleet, hive, w, connection, pin)) for w in hive.workers]
    return _PlannedHive(hive, connection, args, secret, workers, target, pin)


def _kickoff(planned: Sequence[_PlannedHive]) -> BuildKickoff | None:
    """The stack's BuildKickoff (see `kickoff`): every host, so that its check reads the whole
    fleet at once (the engine calls Check one resource at a time; the hives' and workers' own
    checks then answer from memory) and its update starts every git build before any install
    waits. Every hive depends on it."""
    hosts: list[dict[str, Any]] = []
    secret = False
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
        secret = secret or p.secret or any(s for _, _, s in p.workers)
    if not hosts:
        return None
    return BuildKickoff(KICKOFF_NAME, hosts)


def declare_fleet(
    fleet: FleetConfig, secrets: Secrets, commands: Sequence[CommandConfig] = ()
) -> dict[str, dict[str, Any]]:
    """Declare every hive, worker and command; return what the stack exports per hive (and,
    under hostKeyPolicy "tofu", the host keys the stack pinned, as `HOST_KEYS`)."""
    exports: dict[str, dict[str, Any]] = {}
    pinned = pinned_in_state() if fleet.host_key_policy == "tofu" and fleet.hives else None
    planned = [_plan_hive(fleet, hive, secrets, pinned) for hive in fleet.hives]
    kickoff = _kickoff(planned)
    keys: dict[str, list[Any]] = {}
    after_kickoff = pulumi.ResourceOptions(depends_on=[kickoff]) if kickoff is not None else None
    for p in planned:
        hive, connection = p.hive, p.connection
        hive_resource = Hive(f"hive-{hive.alias}", p.args, after_kickoff, secret_source=p.secret)
        workers: dict[str, Any] = {}
        worker_resources: dict[str, Worker] = {}
        for worker, args, wsecret in p.workers:
            resource = Worker(
                f"worker-{hive.alias}-{worker.type}",
                args,
                pulumi.ResourceOptions(depends_on=[hive_resource]),
                secret_source=wsecret,
            )
            worker_resources[worker.type] = resource
            workers[worker.type] = {
                "path": resource.installPath,
                "version": resource.version,
                "commit": resource.commit,
            }
        keys.setdefault(p.target, []).extend(
            [hive_resource.trustedHostKey]  # type: ignore[attr-defined]
            + [w.trustedHostKey for w in worker_resources.values()]  # type: ignore[attr-defined]
        )
        if kickoff is not None:
            keys[p.target].append(
                kickoff.trustedHostKeys.apply(  # type: ignore[attr-defined]
                    lambda found, alias=hive.alias: (found or {}).get(alias)
                )
            )
        for command in commands:
            if command.hive == hive.alias:
                from rbee_infra.stack.command import declare_command

                declare_command(command, hive_resource, connection, worker_resources)
        exports[hive.alias] = {
            "hive": {
                "path": hive_resource.installPath,
                "version": hive_resource.version,
                "commit": hive_resource.commit,
                "extras": hive_resource.extras,
                "service": hive_resource.service,
                "hostFacts": hive_resource.hostFacts,
            },
            "workers": workers,
        }
    if pinned is not None:
        exports[HOST_KEYS] = {
            target: pulumi.Output.all(*found).apply(lambda keys: next(filter(None, keys), None))
            for target, found in keys.items()
        }
    return exports


def main() -> None:
    fleet, secrets = read_stack_config()
    data = pulumi.Config("rbee").get_object("commands")
    commands: list[CommandConfig] = []
    if data is not None:
        # pulumi_command and its models cost every start-up; only a stack with commands pays
        from rbee_infra.stack.command import parse_commands

        commands = parse_commands(data, fleet)
    for alias, value in declare_fleet(fleet, secrets, commands).items():
        pulumi.export(alias, value)
