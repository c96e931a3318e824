"""pulumi-command interop: site-specific steps (a driver check, a warm-up request) on a hive's host.

`hive_command` declares a `pulumi_command.remote.Command` that depends on the Hive and reuses the
hive's connection, converted to pulumi-command's `ConnectionArgs` and kept secret. pulumi-command
skips host key checks when no `hostKey` is given, so the conversion always pins one (the hive's
`hostKey`, else the host's entry in its known_hosts file) and refuses otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pulumi
from pydantic import Field, ValidationError

from rbee_infra.base.errors import AuthError, ConfigError, HostKeyError
from rbee_infra.config.fleet import Alias, FleetConfig, Model, WorkerType, problems_of
from rbee_infra.config.spec import Connection
from rbee_infra.host.known_hosts import host_keys, host_pattern_name
from rbee_infra.stack.resources import Hive

if TYPE_CHECKING:
    from pulumi_command import remote

CommandText = Annotated[str, Field(min_length=1, max_length=65536)]


def command_connection(
    conn: Connection,
    *,
    host_key: str,
    private_key: str | None,
    proxy: remote.ProxyConnectionArgs | None = None,
) -> remote.ConnectionArgs:
    """The pulumi-command shape of a resolved connection (pure)."""
    from pulumi_command import remote

    return remote.ConnectionArgs(
        proxy=proxy,
        host=conn.host,
        port=conn.port,
        user=conn.user,
        private_key=private_key,
        private_key_password=conn.private_key_password,
        agent_socket_path=conn.agent_socket_path,
        host_key=host_key,
        dial_error_limit=conn.dial_error_limit,
        per_dial_timeout=max(1, round(conn.connect_timeout)),
    )


def resolve_host_key(conn: Connection, label: str) -> str:
    if conn.host_key:
        return conn.host_key
    target = host_pattern_name(conn.host, conn.port)
    if not conn.known_hosts:
        raise HostKeyError(
            label,
            f"no hostKey pinned and no known_hosts file to find {target} in; pulumi-command "
            "would not check the host key, so pin it with hostKey",
        )
    try:
        text = Path(os.path.expanduser(conn.known_hosts)).read_text()
    except OSError as error:
        raise HostKeyError(
            label, f"known_hosts file {conn.known_hosts} could not be read: {error.strerror}"
        ) from None
    keys = host_keys(text, conn.host, conn.port)
    if not keys:
        raise HostKeyError(
            label,
            f"no hostKey pinned and {target} is not in known_hosts {conn.known_hosts}; "
            "pulumi-command would not check the host key, so pin it with hostKey",
        )
    return keys[0]


def resolve_private_key(conn: Connection, label: str) -> str | None:
    """pulumi-command takes key contents only: read `privateKeyPath` (it stays a secret)."""
    if conn.private_key or not conn.private_key_path:
        return conn.private_key
    try:
        return Path(os.path.expanduser(conn.private_key_path)).read_text()
    except OSError as error:
        raise AuthError(
            label, f"the private key file could not be read: {error.strerror}"
        ) from None


def to_command_connection(connection: Mapping[str, Any], label: str) -> remote.ConnectionArgs:
    """Our connection (the Hive's `connection` input) as pulumi-command's `ConnectionArgs`."""
    try:
        conn = Connection.model_validate(dict(connection))
    except ValidationError as error:
        raise ConfigError(problems_of(error, "connection")) from None
    private_key = resolve_private_key(conn, label)
    if private_key is None and conn.agent_socket_path is None:
        raise AuthError(label, "no private key, key path or agent socket configured")
    from pulumi_command import remote

    proxy = None
    if len(conn.jumps) > 1:
        raise ConfigError([(
            "proxyJump",
            f"{label}: pulumi-command reaches a host through one jump host only "
            f"({len(conn.jumps)} given)",
        )])
    if conn.jumps:
        (hop,) = conn.jumps
        via, where = conn.through(hop), f"{label}: {hop.label}"
        proxy = remote.ProxyConnectionArgs(
            host=via.host,
            port=via.port,
            user=via.user,
            private_key=resolve_private_key(via, where),
            private_key_password=via.private_key_password,
            agent_socket_path=via.agent_socket_path,
            host_key=resolve_host_key(via, where),
        )
    return command_connection(
        conn, host_key=resolve_host_key(conn, label), private_key=private_key, proxy=proxy
    )


def hive_command(
    name: str,
    hive: Hive,
    create: pulumi.Input[str],
    *,
    connection: pulumi.Input[Mapping[str, Any]],
    update: pulumi.Input[str] | None = None,
    delete: pulumi.Input[str] | None = None,
    triggers: Sequence[Any] | None = None,
    rerun_on_hive_change: bool = True,
    opts: pulumi.ResourceOptions | None = None,
) -> remote.Command:
    """A remote command on the hive's host, run after the hive is installed.

    `connection` is the connection given to the Hive. With `rerun_on_hive_change` the hive's
    release id joins the triggers, so the step runs again when the hive is reinstalled.
    """
    from pulumi_command import remote

    label = f"pulumi-command {name}"
    args = pulumi.Output.secret(
        pulumi.Output.from_input(connection).apply(lambda c: to_command_connection(c, label))
    )
    all_triggers: list[Any] = list(triggers or [])
    if rerun_on_hive_change:
        all_triggers.append(hive.releaseId)  # type: ignore[attr-defined]
    return remote.Command(
        name,
        connection=args,
        create=create,
        update=update,
        delete=delete,
        triggers=all_triggers or None,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[hive])),
    )


class CommandConfig(Model):
    """One entry of `rbee:commands` in the stack config."""

    hive: Alias
    name: Alias
    create: CommandText
    update: CommandText | None = None
    delete: CommandText | None = None
    triggers: list[str | int | float | bool] = Field(default_factory=list, max_length=64)
    after_workers: list[WorkerType] = Field(default_factory=list)
    rerun_on_hive_change: bool = True

    @property
    def resource_name(self) -> str:
        return f"command-{self.hive}-{self.name}"


def parse_commands(data: Any, fleet: FleetConfig) -> list[CommandConfig]:
    """Validate `rbee:commands` against the fleet; raise ConfigError naming every bad field."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise ConfigError([("commands", "expected a list of {hive, name, create} entries")])
    problems: list[tuple[str, str]] = []
    commands: list[CommandConfig] = []
    hives = {hive.alias: hive for hive in fleet.hives}
    seen: set[str] = set()
    for index, item in enumerate(data):
        where = f"commands[{index}]"
        try:
            command = CommandConfig.model_validate(item)
        except ValidationError as error:
            problems.extend(problems_of(error, where))
            continue
        hive = hives.get(command.hive)
        if hive is None:
            known = ", ".join(sorted(hives)) or "none"
            problems.append((f"{where}.hive", f"no hive {command.hive!r} (hives: {known})"))
            continue
        types = [worker.type for worker in hive.workers]
        for position, worker_type in enumerate(command.after_workers):
            if worker_type not in types:
                problems.append(
                    (
                        f"{where}.afterWorkers[{position}]",
                        f"hive {hive.alias!r} has no {worker_type!r} worker",
                    )
                )
        if command.resource_name in seen:
            problems.append(
                (f"{where}.name", f"{command.name!r} is used twice on hive {command.hive!r}")
            )
        seen.add(command.resource_name)
        commands.append(command)
    if problems:
        raise ConfigError(problems)
    return commands


def declare_command(
    command: CommandConfig,
    hive: Hive,
    connection: pulumi.Input[Mapping[str, Any]],
    workers: Mapping[str, pulumi.Resource],
) -> remote.Command:
    """The Command for one `rbee:commands` entry (validated by `parse_commands`)."""
    after = [workers[worker_type] for worker_type in command.after_workers]
    return hive_command(
        command.resource_name,
        hive,
        command.create,
        connection=connection,
        update=command.update,
        delete=command.delete,
        triggers=command.triggers,
        rerun_on_hive_change=command.rerun_on_hive_change,
        opts=pulumi.ResourceOptions(depends_on=after) if after else None,
    )
