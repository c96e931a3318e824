"""Execute: the I/O half of facts -> plan -> execute, one host connection per operation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from rbee_infra import extras, layout, plan, prune, scripts
from rbee_infra.config import GitSource, ReleaseSource
from rbee_infra.errors import CommandError, HostError, VerifyError
from rbee_infra.facts import InstalledBinary
from rbee_infra.install import Staged, git, local, release
from rbee_infra.progress import report
from rbee_infra.remote import (
    LOCK_WAIT_SECONDS,
    Link,
    holder,
    now,
    open_session,
    probe,
    remove_install,
)
from rbee_infra.spec import InstallSpec
from rbee_infra.ssh import tail

VERIFY_TIMEOUT = 60.0


@dataclass(frozen=True)
class Observed:
    """What `check` records about the host: the commit the ref means now, and the host state."""

    resolved_commit: str | None
    host_state: str
    host_key: str
    extras: tuple[str, ...] = ()  # hive only: unmanaged installs, as shown (see `extras`)


async def observe(spec: InstallSpec) -> Observed:
    """Read-only: safe during preview. A local source's sha256 is the version it stands for."""
    commit = None
    if spec.source.method == "local":
        commit = local.file_sha(spec)
    elif isinstance(spec.source, ReleaseSource):
        commit = spec.source.sha256
    found: list[str] = []
    async with open_session(spec) as session:
        facts = await probe(session, spec)
        if isinstance(spec.source, GitSource):
            commit = await git.resolve_commit(session, spec)
        if spec.component == "hive":
            found = extras.shown(await prune.scan(session, spec))
    state = plan.host_state(facts.installed.get(spec.install_name), plan.install_id(spec))
    return Observed(
        resolved_commit=commit,
        host_state=state,
        host_key=session.server_host_key,
        extras=tuple(found),
    )


@dataclass(frozen=True)
class Installed:
    install_id: str
    release_id: str
    commit: str
    version: str
    sha256: str
    install_path: str
    phase_seconds: dict[str, float]

    def outputs(self) -> dict[str, Any]:
        return {
            "installId": self.install_id,
            "releaseId": self.release_id,
            "commit": self.commit,
            "resolvedCommit": self.commit,
            "version": self.version,
            "sha256": self.sha256,
            "installPath": self.install_path,
            "hostState": plan.IN_SYNC,
            "phaseSeconds": self.phase_seconds,
        }


async def _verify(link: Link, spec: InstallSpec, iid: str, rid: str, abort: str) -> tuple[str, str]:
    path = f"{layout.release_dir(spec.install_name, rid)}/{spec.binary}"
    result = await link.run(
        scripts.VERIFY, path, phase="verify", check=False, timeout=VERIFY_TIMEOUT
    )
    lines = result.stdout.splitlines()
    sha = next((ln.split("\t", 1)[1] for ln in lines if ln.startswith("@@sha256\t")), "")
    output = "\n".join(ln for ln in lines if not ln.startswith("@@sha256\t"))
    if result.exit_status != 0 or not plan.version_matches(output, spec.binary) or not sha:
        await remove_install(link, spec, abort, iid, [rid])
        expected = f"expected {spec.binary!r} in the first line"
        raise VerifyError(
            spec.label,
            f"{spec.binary} --version exited {result.exit_status} ({expected}): "
            f"{tail(output, 5) or '<no output>'}",
        )
    return output.splitlines()[0].strip(), sha


async def _activate(
    link: Link, spec: InstallSpec, abort: str, iid: str, rid: str, *args: str
) -> None:
    """Switch the stable path; if that fails, the staged release goes (the old one stays)."""
    try:
        await link.run(scripts.ACTIVATE, *args, phase="activate", timeout=LOCK_WAIT_SECONDS + 60)
    except CommandError:
        await remove_install(link, spec, abort, iid, [rid])
        raise


Stager = Callable[..., Awaitable[Staged]]
STAGERS: dict[str, Stager] = {"git": git.stage, "release": release.stage, "local": local.stage}


def _stager(spec: InstallSpec) -> Stager:
    stager = STAGERS.get(spec.source.method)
    if stager is None:
        raise HostError(spec.label, "install", f"install method {spec.source.method!r} is unknown")
    return stager


async def install(spec: InstallSpec, *, updating: bool, fresh: bool = False) -> Installed:
    """Build (or rejoin a build), verify, then switch the stable path atomically.

    A failure leaves the host as it was: the previous binary stays active, and a failed
    create removes everything it made.
    """
    iid = plan.install_id(spec)
    abort = "abort-update" if updating else "abort-create"
    async with Link(spec) as link:
        assert link.session is not None
        facts = await probe(link.session, spec)
        current = facts.installed.get(spec.install_name)
        staged = await _stager(spec)(link, spec, iid, fresh=fresh, abort=abort)
        rid, commit = staged.release_id, staged.version_key
        version, sha = await _verify(link, spec, iid, rid, abort)
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
            str(LOCK_WAIT_SECONDS),
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
            ),
            f"{layout.RELEASES_DIR}/{name}",
            staged.job_dir or f"{layout.JOBS_DIR}/{iid}/none",
            *keep,
        )
        report(spec.label, f"installed {version} ({commit[:12]})")
        return Installed(
            install_id=iid,
            release_id=rid,
            commit=commit,
            version=version,
            sha256=sha,
            install_path=f"{facts.home}/{layout.stable_path(name)}",
            phase_seconds=staged.phase_seconds,
        )


def _owned(installed: InstalledBinary, iid: str) -> bool:
    return installed.receipt is not None and installed.receipt.get("installId") == iid


async def remove(spec: InstallSpec, release_id: str | None) -> None:
    async with Link(spec) as link:
        await remove_install(
            link, spec, "delete", plan.install_id(spec), [release_id] if release_id else []
        )


async def read(spec: InstallSpec) -> InstalledBinary | None:
    """What the host holds for this resource now (None when it is not ours or gone)."""
    async with open_session(spec) as session:
        facts = await probe(session, spec)
    installed = facts.installed.get(spec.install_name)
    if installed is None or not _owned(installed, plan.install_id(spec)):
        return None
    return installed
