"""Where a hive is reached: its own fields, else the OpenSSH client config (`rbee:sshConfig`).

The file is read by asyncssh's own OpenSSH config parser, on the operator's machine, so
`Host` aliases resolve as `ssh` resolves them: HostName, User, Port, IdentityFile, ProxyJump
and UserKnownHostsFile. A value the stack config sets wins over the file's.

The file is read as data, never run: `Match exec` (which would run its command on every
preview, up and status), and a `ProxyCommand` or `LocalCommand` that applies to a hive, are
refused with the reason; another option that would change how `ssh` reaches the host and that
rbee-infra does not apply (BindAddress, HostKeyAlias, ...) is named in a warning.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from typing import Any

from rbee_infra.base.errors import ConfigError
from rbee_infra.base.progress import warn
from rbee_infra.base.quiet import import_asyncssh
from rbee_infra.config.fleet import FleetConfig, HiveConfig, JumpHop, parse_proxy_jump

DEFAULT_SSH_CONFIG = "~/.ssh/config"
# what `ssh` would do differently with these, which rbee-infra does not apply
DROPPED = (
    "AddressFamily",
    "BindAddress",
    "BindInterface",
    "CanonicalDomains",
    "CanonicalizeHostname",
    "GlobalKnownHostsFile",
    "HostKeyAlias",
)


@dataclass(frozen=True)
class Target:
    """The resolved SSH target of one hive (what `ssh <hostname>` would connect to)."""

    host: str
    port: int
    user: str
    jumps: list[JumpHop] = field(default_factory=list)
    identity_file: str | None = None
    known_hosts: str | None = None
    dropped: tuple[str, ...] = ()  # options of the file for this host that are not applied


def config_path(fleet: FleetConfig) -> str | None:
    if fleet.ssh_config is True:
        return DEFAULT_SSH_CONFIG
    return fleet.ssh_config or None


def _reader() -> Any:
    """asyncssh's client config parser, refusing what would run a command (see the module
    docstring). Its handlers run for an option only where the option applies to the host
    looked up; `Match` runs for every Match line, before its criteria are evaluated."""
    module = import_asyncssh("asyncssh.config")
    SSHClientConfig, SSHConfig = module.SSHClientConfig, module.SSHConfig

    def match(config: Any, option: str, args: list[str]) -> None:
        if any(arg.lower().lstrip("!") == "exec" for arg in args):
            config._error(
                "Match exec is refused: it would run its command on every preview, up and "
                "status (rbee-infra reads this file as data, never runs it)"
            )
        SSHConfig._match(config, option, args)

    def command(config: Any, option: str, args: list[str]) -> None:
        if option == "ProxyCommand" and [a.lower() for a in args] == ["none"]:
            args.clear()
            return
        instead = "use ProxyJump for jump hosts" if option == "ProxyCommand" else "remove it"
        config._error(f"{option} is refused: rbee-infra runs no command from this file; {instead}")

    class Reader(SSHClientConfig):  # type: ignore[misc]
        _handlers = {
            **SSHClientConfig._handlers,
            "match": ("Match", match),
            "proxycommand": ("ProxyCommand", command),
            "localcommand": ("LocalCommand", command),
            "bindinterface": ("BindInterface", SSHConfig._set_string),
        }

    return Reader


def _lookup(path: str, host: str) -> dict[str, Any]:
    """asyncssh's reading of the file for `host` (empty when nothing matches)."""
    expanded = os.path.expanduser(path)
    if not os.path.isfile(expanded):
        raise ConfigError([("sshConfig", f"{path} does not exist")])
    try:
        parsed = _reader().load(
            None, [expanded], False, False, False, getpass.getuser(), (), host, ()
        )
    except (OSError, ValueError) as error:
        raise ConfigError([("sshConfig", f"{path}: {error}")]) from None
    names = ("Hostname", "User", "Port", "IdentityFile", "ProxyJump", "UserKnownHostsFile")
    return {name: parsed.get(name) for name in (*names, *DROPPED) if parsed.get(name) is not None}


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
            dropped=tuple(name for name in DROPPED if name in found),
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
    if target.dropped:
        warn(
            f"hive {hive.alias}",
            f"{config_path(fleet)} sets {', '.join(target.dropped)} for Host {hive.hostname}, "
            f"which rbee-infra does not apply: it connects to {target.host}:{target.port}"
            + (" through the jump hosts" if target.jumps else " directly"),
        )
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
