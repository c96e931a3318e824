"""Where a hive is reached: its own fields, else the OpenSSH client config (`rbee:sshConfig`).

The file is read by asyncssh's own OpenSSH config parser, on the operator's machine, so
`Host` aliases resolve as `ssh` resolves them: HostName, User, Port, IdentityFile, ProxyJump
and UserKnownHostsFile. A value the stack config sets wins over the file's.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from typing import Any

from rbee_infra.base.errors import ConfigError
from rbee_infra.base.quiet import import_asyncssh
from rbee_infra.config.fleet import FleetConfig, HiveConfig, JumpHop, parse_proxy_jump

DEFAULT_SSH_CONFIG = "~/.ssh/config"


@dataclass(frozen=True)
class Target:
    """The resolved SSH target of one hive (what `ssh <hostname>` would connect to)."""

    host: str
    port: int
    user: str
    jumps: list[JumpHop] = field(default_factory=list)
    identity_file: str | None = None
    known_hosts: str | None = None


def config_path(fleet: FleetConfig) -> str | None:
    if fleet.ssh_config is True:
        return DEFAULT_SSH_CONFIG
    return fleet.ssh_config or None


def _lookup(path: str, host: str) -> dict[str, Any]:
    """asyncssh's reading of the file for `host` (empty when nothing matches)."""
    SSHClientConfig = import_asyncssh("asyncssh.config").SSHClientConfig

    expanded = os.path.expanduser(path)
    if not os.path.isfile(expanded):
        raise ConfigError([("sshConfig", f"{path} does not exist")])
    try:
        parsed = SSHClientConfig.load(
            None, [expanded], False, False, False, getpass.getuser(), (), host, ()
        )
    except (OSError, ValueError) as error:
        raise ConfigError([("sshConfig", f"{path}: {error}")]) from None
    return {
        name: parsed.get(name)
        for name in ("Hostname", "User", "Port", "IdentityFile", "ProxyJump", "UserKnownHostsFile")
        if parsed.get(name) is not None
    }


def _first(value: Any) -> str | None:
    if isinstance(value, (list, tuple)):
        return str(value[0]) if value else None
    return None if value is None else str(value)


def _hop(path: str | None, hop: dict[str, Any]) -> JumpHop:
    """A jump host; with a config file its name resolves through the file too (as `ssh -J`)."""
    found = _lookup(path, hop["host"]) if path else {}
    data = {**hop, "host": found.get("Hostname", hop["host"])}
    for key, name in (("port", "Port"), ("user", "User")):
        if key not in data and name in found:
            data[key] = found[name]
    data.setdefault("user", getpass.getuser())  # as ssh -J: the local user
    if "UserKnownHostsFile" in found:
        data["knownHosts"] = _first(found["UserKnownHostsFile"])
    return JumpHop.model_validate(data)


def resolve(fleet: FleetConfig, hive: HiveConfig) -> Target:
    """The hive's target: its stack config, completed from the OpenSSH config when enabled."""
    given = hive.model_fields_set
    path = config_path(fleet)
    found = _lookup(path, hive.hostname) if path else {}
    where = f"{path} (Host {hive.hostname})"
    try:
        if hive.proxy_jump is not None:
            hops = [j.model_dump(by_alias=True, exclude_unset=True) for j in hive.proxy_jump]
        elif isinstance(found.get("ProxyJump"), str) and found["ProxyJump"] != "none":
            hops = parse_proxy_jump(found["ProxyJump"])
        else:
            hops = []
        jumps = [_hop(path, hop) for hop in hops]
        target = Target(
            host=str(found.get("Hostname", hive.hostname)),
            port=int(found["Port"]) if "Port" in found and "ssh_port" not in given
            else hive.ssh_port,
            user=str(found["User"]) if "User" in found and "ssh_user" not in given
            else hive.ssh_user,
            jumps=jumps,
            identity_file=_first(found.get("IdentityFile")),
            known_hosts=_first(found.get("UserKnownHostsFile")),
        )
        HiveConfig.model_validate(
            {"alias": hive.alias, "hostname": target.host, "sshUser": target.user,
             "sshPort": target.port}
        )
    except ValueError as error:
        raise ConfigError([("sshConfig", f"{where}: {error}")]) from None
    return target


def connection_fields(fleet: FleetConfig, hive: HiveConfig) -> dict[str, Any]:
    """The resolved target as `spec.Connection` fields (camelCase), before any credential of
    the stack config is added: host, port, user, jumps, and the file's IdentityFile and
    UserKnownHostsFile where the stack config sets no key path or knownHosts."""
    target = resolve(fleet, hive)
    fields: dict[str, Any] = {"host": target.host, "port": target.port, "user": target.user}
    if target.jumps:
        fields["jumps"] = [j.model_dump(by_alias=True, exclude_none=True) for j in target.jumps]
    if fleet.ssh_private_key_path:
        fields["privateKeyPath"] = fleet.ssh_private_key_path
    elif target.identity_file and not fleet.ssh_private_key:
        fields["privateKeyPath"] = target.identity_file
    if target.known_hosts and "known_hosts" not in fleet.model_fields_set:
        fields["knownHosts"] = target.known_hosts
    elif fleet.known_hosts:
        fields["knownHosts"] = fleet.known_hosts
    return fields
