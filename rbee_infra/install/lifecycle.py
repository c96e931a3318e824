"""Execute: the I/O half of facts -> plan -> execute, one host connection per operation."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from rbee_infra.base import layout
from rbee_infra.base.errors import CommandError, HostError, PhaseTimeout, VerifyError
from rbee_infra.base.progress import report
from rbee_infra.config.fleet import GitSource, ReleaseSource
from rbee_infra.config.spec import InstallSpec
from rbee_infra.decide import extras, plan, preflight, verify
from rbee_infra.decide.buildneeds import BuildNeeds
from rbee_infra.decide.facts import HostFacts, InstalledBinary
from rbee_infra.host import hostview, scripts, service
from rbee_infra.host.remote import (
    Link,
    cleanup_install,
    holder,
    now,
    open_session,
    probe,
    remove_install,
)
from rbee_infra.install import Staged, build_once, git, local, release, source, toolchain

VERIFY_RUN_SECONDS = 20  # bound on one run of the binary (`--version`, `--help`)
VERIFY_TIMEOUT = 60.0


@dataclass(frozen=True)
class Observed:
    """What `check` records about the host: the commit the ref means now, and the host state."""

    resolved_commit: str | None
    host_state: str
    host_key: str
    extras: tuple[str, ...] = ()  # hive only: unmanaged installs, as shown (see `extras`)
    service: str | None = None  # hive with autoStart: "running", or why not


async def observe(spec: InstallSpec) -> Observed:
    """Read-only: safe during preview. A local source's sha256 is the version it stands for.
    Reads no toolchain or platform facts: `preflight_problems` does, when an install is due."""
    commit = None
    if spec.source.method == "local":
        commit = local.file_sha(spec)
    elif isinstance(spec.source, ReleaseSource):
        commit = spec.source.sha256
    found: list[str] = []
    running: str | None = None
    seen = await hostview.view(spec)  # one round trip, shared by the host's resources
    if isinstance(spec.source, GitSource):
        # shipped from a build elsewhere: the commit its Build resolved (None until it ran)
        commit = spec.artifact.commit if spec.artifact else None
        if spec.build is None:
            commit = seen.commit_for(spec)
    if spec.component == "hive":
        found = extras.shown(seen.extras_for(spec))
        if spec.auto_start:
            running = seen.health_for(spec).summary
    installed = seen.facts.installed.get(spec.install_name)
    return Observed(
        resolved_commit=commit,
        host_state=plan.host_state(installed, plan.install_id(spec)),
        host_key=seen.server_host_key,
        extras=tuple(found),
        service=running,
    )


async def preflight_problems(spec: InstallSpec, needs: BuildNeeds | None = None) -> list[str]:
    """What the host lacks for this install (read-only). Shares the host's view: after the
    build kick-off planned this host, its facts are already read. `needs`: what the tree to
    build needs besides cargo (`buildneeds`), when it was read."""
    seen = await hostview.view(spec, hostview.facts_only(hostview.need_of(spec)))
    return preflight.preflight_problems(spec, seen.facts, needs)


@dataclass(frozen=True)
class Installed:
    install_id: str
    release_id: str
    commit: str
    version: str
    sha256: str
    verified_by: str
    install_path: str
    phase_seconds: dict[str, float]
    facts: HostFacts | None = None
    hive_service: service.ServiceState | None = None  # hive only; None without autoStart
    cargo_lock: str = ""  # the sha256 of the Cargo.lock a build on the host used

    def outputs(self) -> dict[str, Any]:
        outs = {
            "installId": self.install_id,
            "releaseId": self.release_id,
            "commit": self.commit,
            "resolvedCommit": self.commit,
            "version": self.version,
            "sha256": self.sha256,
            "verifiedBy": self.verified_by,
            "installPath": self.install_path,
            "hostState": plan.IN_SYNC,
            "phaseSeconds": self.phase_seconds,
        }
        if self.facts is not None:
            outs["hostFacts"] = preflight.host_facts_output(self.facts)
        if self.cargo_lock:
            outs["cargoLockSha256"] = self.cargo_lock
        return outs


def service_outputs(spec: InstallSpec, state: service.ServiceState | None) -> dict[str, Any]:
    """The hive's `serviceState` (compared by diff) and `service` (mode, pid, port) outputs."""
    if spec.component != "hive":
        return {}
    outs: dict[str, Any] = service.outputs(state)
    if spec.auto_start and state is not None:
        outs["serviceState"] = state.summary
    return outs


@dataclass(frozen=True)
class Verified:
    """What verification found: the version to record, the binary's sha256, the check it
    passed (`--version`, `--help`, `configured: ...`) and `--version`'s line if it answered."""

    version: str
    sha256: str
    verified_by: str
    version_line: str


async def _verify(
    link: Link, spec: InstallSpec, iid: str, staged: Staged, abort: str
) -> Verified:
    """Run the binary in its release dir (see `decide/verify`); a binary that proves nothing
    is removed with its release dir, and only that (the build cache stays)."""
    rid = staged.release_id
    path = f"{layout.release_dir(spec.install_name, rid)}/{spec.binary}"
    metadata = f"{staged.job_dir}/metadata.json" if staged.job_dir else ""
    try:
        result = await link.run(
            scripts.VERIFY,
            str(VERIFY_RUN_SECONDS),
            path,
            spec.binary,
            "1",
            metadata,
            *verify.verify_args(spec.verify),
            phase="verify",
            check=False,
            timeout=VERIFY_TIMEOUT,
        )
    except PhaseTimeout:
        await cleanup_install(link, spec, abort, iid, [rid])
        raise
    found = verify.parse_report(result.stdout)
    verdict = verify.judge(spec.binary, found, spec.verify)
    if not verdict.ok or not found.sha256:
        await cleanup_install(link, spec, abort, iid, [rid])
        why = verdict.describe() if not verdict.ok else f"could not read the sha256 of {path}"
        raise VerifyError(spec.label, why)
    version = verify.installed_version(spec, verdict, staged.version_key, found.metadata)
    assert verdict.passed is not None
    return Verified(version, found.sha256, verdict.passed, verdict.version_line)


async def _activate(
    link: Link, spec: InstallSpec, abort: str, iid: str, rid: str, *args: str
) -> None:
    """Switch the stable path; if that fails, the staged release goes (the old one stays)."""
    try:
        await link.run(scripts.ACTIVATE, *args, phase="activate", timeout=spec.lock_timeout + 60)
    except CommandError:
        await cleanup_install(link, spec, abort, iid, [rid])
        raise


Stager = Callable[..., Awaitable[Staged]]
STAGERS: dict[str, Stager] = {"git": git.stage, "release": release.stage, "local": local.stage}


def _stager(spec: InstallSpec) -> Stager:
    if spec.build is not None:
        return build_once.stage  # a git source built elsewhere: shipped, not built here
    stager = STAGERS.get(spec.source.method)
    if stager is None:
        raise HostError(spec.label, "install", f"install method {spec.source.method!r} is unknown")
    return stager


async def _preflight(
    link: Link,
    spec: InstallSpec,
    facts: HostFacts,
    iid: str,
    abort: str,
    needs: BuildNeeds | None = None,
) -> InstallSpec:
    """Refuse a host that lacks something, before anything on it changes; with
    ensureToolchain, install Rust first, then what the build script runs (`needs`). Returns
    the spec to stage with (its cargo and build mode)."""
    problems = preflight.preflight_problems(spec, facts, needs)
    if problems:
        raise HostError(spec.label, "preflight", preflight.describe(problems, spec))
    build_spec = spec
    try:
        if spec.ensure_toolchain and preflight.cargo_missing(spec, facts):
            if preflight.needs_toolchain(spec, facts):
                await toolchain.install_rust(link, spec)
            build_spec = spec.model_copy(update={"cargo": preflight.HOME_CARGO})
            if needs is not None:  # the new toolchain's targets, read now
                assert link.session is not None
                facts = await probe(link.session, build_spec)
                problems = preflight.preflight_problems(build_spec, facts, needs)
                if problems:
                    raise HostError(spec.label, "preflight", preflight.describe(problems, spec))
        if needs is not None and preflight.builds_here(spec):
            if spec.ensure_toolchain:
                await toolchain.ensure_build_needs(link, build_spec, needs, facts)
            build_spec = build_spec.model_copy(update={"build_mode": needs.build_mode})
    except HostError:
        await cleanup_install(link, spec, abort, iid, [])  # the lock file it made
        raise
    return build_spec


def _commit_to_build(spec: InstallSpec) -> str | None:
    """The commit a build on this host will build, as the check just read it (the engine
    checks every resource it creates or updates first); None without that reading."""
    seen = hostview.memoized(spec)
    return seen.commit_for(spec) if seen is not None else None


async def install(
    spec: InstallSpec, *, updating: bool, fresh: bool = False, needs: BuildNeeds | None = None
) -> Installed:
    """Preflight, build (or rejoin a build), verify, then switch the stable path atomically;
    a hive with autoStart is then restarted on the new binary. `needs`: what the tree at the
    commit to build needs besides cargo (`buildneeds.tree_needs`); None checks cargo alone.

    A failure leaves the host as it was: the previous binary stays active (and running), and a
    failed create removes everything it made.
    """
    iid = plan.install_id(spec)
    abort = "abort-update" if updating else "abort-create"
    async with Link(spec) as link:
        assert link.session is not None
        # what this resource's check just read, if still valid
        seen = hostview.memoized(spec, facts=True)
        facts = seen.facts if seen is not None else await probe(link.session, spec)
        if needs is None and preflight.builds_here(spec):
            needs = await source.needs_for(spec, _commit_to_build(spec))
        build_spec = await _preflight(link, spec, facts, iid, abort, needs)
        current = facts.installed.get(spec.install_name)
        staged = await _stager(spec)(link, build_spec, iid, fresh=fresh, abort=abort)
        rid, commit = staged.release_id, staged.version_key
        checked = await _verify(link, spec, iid, staged, abort)
        version, sha = checked.version, checked.sha256
        previous = current.release_id if current and _owned(current, iid) else None
        keep = [rid] + ([previous] if previous and previous != rid else [])
        name = spec.install_name
        await _activate(
            link,
            spec,
            abort,
            iid,
            rid,
            layout.LOCK_FILE,
            str(int(spec.lock_timeout)),
            holder(spec),
            layout.stable_path(name),
            layout.link_target(name, rid, spec.binary),
            layout.receipt_path(name),
            plan.receipt(
                spec,
                iid=iid,
                rid=rid,
                commit=commit,
                version=version,
                sha256=sha,
                installed_at=now(),
                verified_by=checked.verified_by,
                version_line=checked.version_line,
                cargo_lock=staged.lock_sha256,
            ),
            f"{layout.RELEASES_DIR}/{name}",
            staged.job_dir or f"{layout.JOBS_DIR}/{iid}/none",
            *keep,
        )
        report(
            spec.label, f"installed {version} ({commit[:12]}), verified by {checked.verified_by}"
        )
        running = None
        if spec.component == "hive" and spec.auto_start:
            restore = current if previous and previous != rid and current else None
            running = await _start_hive(link, spec, facts, iid, rid, version, restore, updating)
        return Installed(
            install_id=iid,
            release_id=rid,
            commit=commit,
            version=version,
            sha256=sha,
            verified_by=checked.verified_by,
            install_path=f"{facts.home}/{layout.stable_path(name)}",
            phase_seconds=staged.phase_seconds,
            facts=facts,
            hive_service=running,
            cargo_lock=staged.lock_sha256,
        )


async def _start_hive(
    link: Link,
    spec: InstallSpec,
    facts: HostFacts,
    iid: str,
    rid: str,
    version: str,
    restore: InstalledBinary | None,
    updating: bool,
) -> service.ServiceState:
    """Restart the hive on the binary just activated. If it does not come up, switch back to
    `restore` (the previous release) and restart that; a create with nothing to go back to
    removes what it installed. Either way the error says what happened."""
    mode = service.mode_for(facts)
    state = await service.start(link, spec, mode)
    if state.healthy:
        report(spec.label, f"rbee-hive running on port {spec.hive_port} (pid {state.pid}, {mode})")
        return state
    failed = f"{version} did not start: {state.why()}"
    if restore is not None and restore.receipt is not None and restore.release_id:
        name = spec.install_name
        old_version = restore.receipt.get("version") or restore.release_id
        await link.run(
            scripts.ACTIVATE,
            layout.LOCK_FILE,
            str(int(spec.lock_timeout)),
            holder(spec),
            layout.stable_path(name),
            restore.link,
            layout.receipt_path(name),
            json.dumps(restore.receipt, sort_keys=True),
            f"{layout.RELEASES_DIR}/{name}",
            f"{layout.JOBS_DIR}/{iid}/none",
            restore.release_id,
            phase="service",
            timeout=spec.lock_timeout + 60,
        )
        again = await service.start(link, spec, mode)
        if again.healthy:
            outcome = f"the previous version ({old_version}) was restored and is running"
        else:
            outcome = (
                f"the previous version ({old_version}) was restored but did not start "
                f"either: {again.why()}"
            )
        raise HostError(spec.label, "service", f"{failed}\n{outcome}")
    if not updating:
        await service.stop(link, purge=True)
        await cleanup_install(link, spec, "undo-create", iid, [rid])  # keeps the build cache
        raise HostError(spec.label, "service", f"{failed}\nnothing was installed")
    raise HostError(spec.label, "service", f"{failed}\nthere is no previous version to go back to")


def _owned(installed: InstalledBinary, iid: str) -> bool:
    return installed.receipt is not None and installed.receipt.get("installId") == iid


async def remove(spec: InstallSpec, release_id: str | None) -> None:
    """Stop the hive's service (unless another resource owns the install), then remove."""
    iid = plan.install_id(spec)
    async with Link(spec) as link:
        if spec.component == "hive":
            assert link.session is not None
            facts = await probe(link.session, spec)
            installed = facts.installed.get(spec.install_name)
            if installed is None or installed.receipt is None or _owned(installed, iid):
                await service.stop(link, purge=True)
        await remove_install(link, spec, "delete", iid, [release_id] if release_id else [])


async def reconcile_service(spec: InstallSpec) -> dict[str, Any]:
    """The hive's service without a reinstall (autoStart, hivePort or its state changed):
    restart it on the installed binary, or stop it when autoStart is off. Returns outputs."""
    async with Link(spec) as link:
        assert link.session is not None
        facts = await probe(link.session, spec)
        state = None
        if spec.auto_start:
            state = await service.start(link, spec, service.mode_for(facts))
            if not state.healthy:
                raise HostError(spec.label, "service", f"rbee-hive did not start: {state.why()}")
            report(spec.label, f"rbee-hive running on port {spec.hive_port} (pid {state.pid})")
        else:
            await service.stop(link, purge=True)
    return {"hostFacts": preflight.host_facts_output(facts), **service_outputs(spec, state)}


@dataclass(frozen=True)
class Reading:
    installed: InstalledBinary | None  # None when it is not ours or gone
    facts: HostFacts
    hive_service: service.ServiceState | None


async def read_host(spec: InstallSpec) -> Reading:
    """What the host holds for this resource now, its facts, and the hive's service."""
    running = None
    async with open_session(spec) as session:
        facts = await probe(session, spec)
        if spec.component == "hive":
            running = await service.health(session, spec)
    installed = facts.installed.get(spec.install_name)
    if installed is not None and not _owned(installed, plan.install_id(spec)):
        installed = None
    return Reading(installed, facts, running)


async def read(spec: InstallSpec) -> InstalledBinary | None:
    """What the host holds for this resource now (None when it is not ours or gone)."""
    return (await read_host(spec)).installed
