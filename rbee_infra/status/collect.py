"""`rbee-infra status`: what each host holds against what the config asks for. Read-only.

One SSH connection per host, all hosts at once, each read with the batched probe `preview`
uses (`host/hostview.py`): the configured binaries and receipts, their checks, the
extras, the service's health, the toolchain facts, and the commits of the desired git refs.
`status/assess.py` judges what it found (pure); `status/render.py` prints it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from rbee_infra.base.errors import AuthError, ConfigError, ConnectError, HostError, HostKeyError
from rbee_infra.config import sshconfig
from rbee_infra.config.fleet import (
    HIVE_BINARY,
    FleetConfig,
    GitSource,
    HiveConfig,
    ReleaseSource,
    worker_source,
)
from rbee_infra.config.spec import Connection, InstallSpec
from rbee_infra.decide import preflight, verify
from rbee_infra.decide.facts import BuildJob
from rbee_infra.host import hostview, jobs
from rbee_infra.host.remote import secrets_of
from rbee_infra.host.ssh import close_jumps, connect, listed_in_known_hosts
from rbee_infra.install import local
from rbee_infra.status.assess import (
    assess,
    builds_of,
    extra_names,
    extras_of,
    hive_state,
    service_view,
    summarize,
    unreachable_status,
    with_service_drift,
)
from rbee_infra.status.model import (
    ConfigSource,
    HiveStatus,
    HostFactsView,
    StatusReport,
)


@dataclass(frozen=True)
class Credentials:
    """How status reaches the hosts (from the stack config, overridden by CLI flags)."""

    private_key_path: str | None = None
    # the key is only ssh's default one (~/.ssh/id_*): a hive's IdentityFile comes first
    fallback_key: bool = False
    agent_socket_path: str | None = None
    # None: the config's (rbee:knownHosts, else the ssh config's UserKnownHostsFile)
    known_hosts: str | None = None
    host_key_policy: Literal["strict", "tofu"] = "strict"
    connect_timeout: float = 10.0
    # hostKeyPolicy "tofu": alias -> the key the stack's state pinned (see `automation`)
    pinned: Mapping[str, str] = field(default_factory=dict)


# --- what the config asks for ------------------------------------------------------------


def connection_for(fleet: FleetConfig, hive: HiveConfig, creds: Credentials) -> Connection:
    """Status never trusts on first use: under "tofu" it checks the key the stack pinned,
    else knownHosts, and a host with neither is refused before anything is sent to it."""
    host_key = hive.host_key
    if creds.host_key_policy == "tofu" and not host_key:
        host_key = creds.pinned.get(hive.alias)
    target = sshconfig.connection_fields(fleet, hive)
    data: dict[str, Any] = {
        **target,
        "privateKeyPath": (
            target.get("privateKeyPath") or creds.private_key_path
            if creds.fallback_key or not creds.private_key_path
            else creds.private_key_path
        ),
        "agentSocketPath": creds.agent_socket_path,
        "knownHosts": creds.known_hosts or target.get("knownHosts"),
        "hostKeyPolicy": "strict",
        "connectTimeout": creds.connect_timeout,
        "dialErrorLimit": 1,  # status reports a down host; it does not wait for it
        "hostKey": host_key,
    }
    per_hive = getattr(hive, "connection", None)
    if per_hive is not None:
        for name in ("private_key", "private_key_password", "agent_socket_path", "host_key"):
            value = getattr(per_hive, name, None)
            if value:
                data[name] = value
    return Connection.model_validate({k: v for k, v in data.items() if v is not None})


def hive_specs(
    fleet: FleetConfig, hive: HiveConfig, connection: Connection, stack: str
) -> list[InstallSpec]:
    """The hive and its workers exactly as `program.declare_fleet` declares them."""
    specs = [
        InstallSpec(
            alias=hive.alias,
            component="hive",
            binary=HIVE_BINARY,
            features=[],
            source=hive.install_method,
            connection=connection,
            cargo=hive.cargo,
            reinstall_trigger=hive.reinstall_trigger,
            stack=stack,
            resource_name=f"hive-{hive.alias}",
            build_timeout=fleet.build_timeout,
            managed_workers=[w.type for w in hive.workers],
            prune_unmanaged=hive.prune_unmanaged,
            auto_start=hive.auto_start,
            hive_port=hive.hive_port,
            queen_url=hive.queen_url,
            verify=hive.verify,
            **hive.preflight_settings(),
        )
    ]
    for worker in hive.workers:
        specs.append(
            InstallSpec(
                alias=hive.alias,
                component="worker",
                worker_type=worker.type,
                binary=worker.binary_name,
                features=worker.feature_list,
                source=worker_source(hive, worker),
                connection=connection,
                cargo=hive.cargo,
                reinstall_trigger=worker.reinstall_trigger or hive.reinstall_trigger,
                stack=stack,
                resource_name=f"worker-{hive.alias}-{worker.type}",
                build_timeout=fleet.build_timeout,
                verify=worker.verify,
                **hive.preflight_settings(),
            )
        )
    return specs


# --- talking to the hosts ----------------------------------------------------------------


def local_keys(specs: list[InstallSpec]) -> tuple[dict[str, str], dict[str, str]]:
    """Version keys known without the host: a pinned release sha256, a local file's sha256
    (as `check` computes them), a pinned git rev. Errors per install name."""
    keys: dict[str, str] = {}
    errors: dict[str, str] = {}
    for spec in specs:
        source = spec.source
        if isinstance(source, GitSource) and source.rev:
            keys[spec.install_name] = source.rev
        elif isinstance(source, ReleaseSource) and source.sha256:
            keys[spec.install_name] = source.sha256
        elif source.method == "local":
            try:
                keys[spec.install_name] = local.file_sha(spec)
            except ConfigError as error:
                reasons = "; ".join(f"{p}: {r}" if p else r for p, r in error.problems)
                errors[spec.install_name] = f"{spec.label}: check failed: {reasons}"
    return keys, errors


def status_need(specs: list[InstallSpec], *, resolve: bool) -> hostview.Need:
    """What status reads of a hive's host, in the batched probe preview reads with: every
    configured binary (and its check, `--version` or `--help`), the commits of the git refs
    (with `resolve`), the extras, the service's health, and the preflight facts."""
    checks = hostview.need_of_all(specs)  # what the resources' checks read
    return dataclasses.replace(
        checks,
        refs=checks.refs if resolve else frozenset(),
        ports=frozenset({specs[0].hive_port}),  # status shows the service even when off
        facts=True,
        versions=frozenset(
            (s.install_name, s.binary, tuple(verify.verify_args(s.verify))) for s in specs
        ),
        jobs=True,
    )


def no_host_key(c: Connection, label: str) -> HostKeyError | None:
    """The refusal for a host status has no key to check against (no pin, not in knownHosts)."""
    if c.host_key or listed_in_known_hosts(c):
        return None
    return HostKeyError(
        label,
        f"no host key to check {c.host}:{c.port} against: the stack's state pins none for it "
        f"and {c.known_hosts or 'no known_hosts file'} lists none; refusing to connect "
        "(run `rbee-infra up`, which pins it under hostKeyPolicy tofu, or add the host's key "
        "to known_hosts)",
    )


async def observe_hive(
    hive: HiveConfig, specs: list[InstallSpec], *, resolve: bool, stack_known: bool
) -> HiveStatus:
    label = f"hive {hive.alias}"
    secrets = sorted({s for spec in specs for s in secrets_of(spec)})
    unverifiable = no_host_key(specs[0].connection, label)
    if unverifiable is not None:
        return unreachable_status(hive, specs, unverifiable, unreachable=False)
    try:
        async with connect(specs[0].connection, label, secrets=secrets) as session:
            seen = await hostview.probe_batch(session, status_need(specs, resolve=resolve))
            extras = extra_names(seen.extras_for(specs[0]))
            facts = seen.facts
            if extras:  # their receipts say whether another stack installed them
                more = await hostview.probe_batch(
                    session, hostview.Need(cargo=specs[0].cargo, names=frozenset(extras))
                )
                facts = dataclasses.replace(
                    facts, installed={**facts.installed, **more.facts.installed}
                )
    except (ConnectError, AuthError, HostKeyError) as error:
        unreachable = isinstance(error, ConnectError) and error.phase == "connect"
        return unreachable_status(hive, specs, error, unreachable=unreachable)
    except HostError as error:
        return unreachable_status(hive, specs, error, unreachable=False)
    checked = {name: verify.parse_report(r.stdout) for name, r in seen.versions.items()}
    running = seen.health_for(specs[0])
    commits, errors = local_keys(specs)
    if resolve:
        for spec in specs:
            if isinstance(spec.source, GitSource) and spec.install_name not in commits:
                try:
                    commits[spec.install_name] = seen.commit_for(spec)
                except HostError as error:
                    errors[spec.install_name] = str(error)
    components = [
        assess(
            spec,
            facts.installed.get(spec.install_name),
            checked.get(spec.install_name),
            commit=commits.get(spec.install_name),
            stack_known=stack_known,
            error=errors.get(spec.install_name),
        )
        for spec in specs
    ]
    extra_list = extras_of(extras, facts)
    view = service_view(specs[0], running)
    components[0] = with_service_drift(components[0], view)
    return HiveStatus(
        alias=hive.alias,
        host=hive.hostname,
        port=hive.ssh_port,
        user=hive.ssh_user,
        reachable=True,
        state=hive_state(components, extra_list),  # type: ignore[arg-type]
        error=None,
        components=components,
        extras=extra_list,
        service=view,
        facts=HostFactsView.model_validate(preflight.host_facts_output(facts)),
        builds=builds_of(seen.build_jobs()),
    )


async def collect(
    fleet: FleetConfig,
    *,
    source: ConfigSource,
    creds: Credentials,
    aliases: list[str] | None = None,
    resolve: bool = True,
) -> StatusReport:
    """Probe every (selected) hive concurrently; a down host never hides the others."""
    stack_known = source.stack is not None
    hives = [h for h in fleet.hives if not aliases or h.alias in aliases]
    jobs = []
    for hive in hives:
        specs = hive_specs(fleet, hive, connection_for(fleet, hive, creds), source.stack or "")
        jobs.append(observe_hive(hive, specs, resolve=resolve, stack_known=stack_known))
    try:
        statuses = list(await asyncio.gather(*jobs))
    finally:
        await close_jumps()
    return StatusReport(config=source, summary=summarize(statuses), hives=statuses)


# --- build jobs (`rbee-infra builds`) -------------------------------------------------------


@dataclass(frozen=True)
class HostBuilds:
    """One host's build jobs (hives on the same host and user share them)."""

    aliases: list[str]
    where: str  # user@host:port
    jobs: list[BuildJob] = field(default_factory=list)  # what is on the host now
    stopped: list[BuildJob] = field(default_factory=list)
    error: str | None = None


def stoppable(job: BuildJob, stack: str | None) -> bool:
    """A running job of `stack` (any stack's when None; a job that does not say whose it is
    counts as this stack's)."""
    return job.state == "running" and (stack is None or not job.stack or job.stack == stack)


async def builds(
    fleet: FleetConfig,
    *,
    creds: Credentials,
    aliases: list[str] | None = None,
    stop: bool = False,
    stack: str | None = None,
) -> list[HostBuilds]:
    """The build jobs on every (selected) hive's host, all hosts at once; with `stop`, the
    running ones of `stack` are stopped first (see `stoppable`). Never trusts a host on first
    use (as status)."""
    targets: dict[tuple[str, str, int], tuple[list[str], HiveConfig, Connection]] = {}
    for hive in fleet.hives:
        if aliases and hive.alias not in aliases:
            continue
        c = connection_for(fleet, hive, creds)
        entry = targets.setdefault((c.user, c.host, c.port), ([], hive, c))
        entry[0].append(hive.alias)

    async def one(names: list[str], c: Connection) -> HostBuilds:
        where = f"{c.user}@{c.host}:{c.port}"
        label = f"hive {names[0]}"
        refused = no_host_key(c, label)
        if refused is not None:
            return HostBuilds(names, where, error=str(refused))
        stopped: list[BuildJob] = []
        try:
            async with connect(c, label) as session:
                found = await jobs.list_jobs(session)
                for job in found:
                    if stop and stoppable(job, stack):
                        await jobs.stop(session, job)
                        stopped.append(job)
                if stopped:
                    found = await jobs.list_jobs(session)
        except HostError as error:
            return HostBuilds(names, where, stopped=stopped, error=str(error))
        return HostBuilds(names, where, found, stopped)

    try:
        return list(await asyncio.gather(*(one(n, c) for n, _, c in targets.values())))
    finally:
        await close_jumps()
