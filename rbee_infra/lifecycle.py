"""Execute: the I/O half of facts -> plan -> execute, one host connection per operation."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

from rbee_infra import layout, plan, scripts
from rbee_infra.config import GitSource
from rbee_infra.errors import CommandError, ConnectError, HostError, VerifyError
from rbee_infra.facts import HostFacts, InstalledBinary, parse_fields, parse_ls_remote, parse_probe
from rbee_infra.progress import report
from rbee_infra.redact import url_secrets
from rbee_infra.spec import InstallSpec
from rbee_infra.ssh import Session, connect, tail

LOCK_WAIT_SECONDS = 1800
RECONNECTS_WHILE_WAITING = 5
PROBE_TIMEOUT = 60.0
VERIFY_TIMEOUT = 60.0


def secrets_of(spec: InstallSpec) -> list[str]:
    found = [s for s in (spec.connection.private_key, spec.connection.private_key_password) if s]
    for key in ("repo", "base_url"):
        value = getattr(spec.source, key, None)
        if isinstance(value, str):
            found.extend(url_secrets(value))
    return found


def open_session(spec: InstallSpec):
    return connect(spec.connection, spec.label, secrets=secrets_of(spec))


async def probe(session: Session, spec: InstallSpec) -> HostFacts:
    name = spec.install_name
    result = await session.run(
        scripts.PROBE,
        spec.cargo,
        name,
        layout.stable_path(name),
        layout.receipt_path(name),
        phase="probe",
        timeout=PROBE_TIMEOUT,
    )
    return parse_probe(result.stdout)


async def resolve_commit(session: Session, spec: InstallSpec) -> str:
    source = spec.source
    assert isinstance(source, GitSource)
    if source.rev:
        return source.rev
    result = await session.run(
        scripts.RESOLVE,
        source.repo,
        *plan.git_ref_names(source),
        phase="resolve",
        timeout=PROBE_TIMEOUT,
        summary=f"git ls-remote of {source.ref_kind} {source.ref!r} failed",
    )
    commit = plan.pick_commit(source, parse_ls_remote(result.stdout))
    if commit is None:
        raise CommandError(
            spec.label, "resolve", None, "", f"{source.ref_kind} {source.ref!r} not found in repo"
        )
    return commit


@dataclass(frozen=True)
class Observed:
    """What `check` records about the host: the commit the ref means now, and the host state."""

    resolved_commit: str | None
    host_state: str


async def observe(spec: InstallSpec) -> Observed:
    """Read-only: safe during preview."""
    async with open_session(spec) as session:
        facts = await probe(session, spec)
        commit = None
        if isinstance(spec.source, GitSource):
            commit = await resolve_commit(session, spec)
    state = plan.host_state(facts.installed.get(spec.install_name), plan.install_id(spec))
    return Observed(resolved_commit=commit, host_state=state)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


class Link:
    """One host connection that can be reopened when the link drops (while waiting on a build)."""

    def __init__(self, spec: InstallSpec) -> None:
        self.spec = spec
        self._cm: Any = None
        self.session: Session | None = None

    async def __aenter__(self) -> Link:
        await self.reopen()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._close()

    async def _close(self) -> None:
        if self._cm is not None:
            cm, self._cm, self.session = self._cm, None, None
            with contextlib.suppress(OSError, HostError):
                await cm.__aexit__(None, None, None)

    async def reopen(self) -> None:
        await self._close()
        cm = open_session(self.spec)
        self.session = await cm.__aenter__()
        self._cm = cm

    async def run(self, script: str, *args: str, **kwargs: Any):
        assert self.session is not None
        return await self.session.run(script, *args, **kwargs)


def _holder(spec: InstallSpec) -> str:
    return f"{spec.stack}/{spec.resource_name} ({spec.label}) since {_now()}"


async def _wait_job(link: Link, spec: InstallSpec, job: str) -> dict[str, str]:
    """Wait for a detached job; when the link drops, reconnect and wait for the same job."""
    deadline = time.monotonic() + spec.build_timeout
    reconnects = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            await link.run(scripts.KILL_JOB, job, phase="build", check=False, timeout=30)
            raise HostError(spec.label, "build", f"timed out after {spec.build_timeout:.0f}s")
        try:
            result = await link.run(scripts.WAIT_JOB, job, phase="build", timeout=remaining)
            return parse_fields(result.stdout)
        except ConnectError:
            reconnects += 1
            if reconnects > RECONNECTS_WHILE_WAITING:
                raise
            report(spec.label, "connection lost while building; reconnecting to wait for it")
            await asyncio.sleep(min(1.0 * reconnects, 5.0))
            try:
                await link.reopen()
            except ConnectError:
                continue


@dataclass(frozen=True)
class Installed:
    install_id: str
    release_id: str
    commit: str
    version: str
    sha256: str
    install_path: str

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
        }


async def _remove(
    link: Link, spec: InstallSpec, mode: str, iid: str, release_ids: list[str]
) -> None:
    name = spec.install_name
    src = layout.source_dir(spec.source.repo) if isinstance(spec.source, GitSource) else ""
    await link.run(
        scripts.REMOVE,
        layout.LOCK_FILE,
        str(LOCK_WAIT_SECONDS),
        _holder(spec),
        mode,
        layout.stable_path(name),
        layout.receipt_path(name),
        iid,
        f"{layout.RELEASES_DIR}/{name}",
        src,
        f"{src}/users/{iid}" if src else "",
        f"{layout.JOBS_DIR}/{iid}",
        *release_ids,
        phase="remove",
        timeout=LOCK_WAIT_SECONDS + 60,
    )


async def _build_git(
    link: Link, spec: InstallSpec, iid: str, commit: str, fresh: bool, abort: str
) -> str:
    """Run (or rejoin) the detached build job; return the release id it staged."""
    source = spec.source
    assert isinstance(source, GitSource)
    rid = plan.release_id(spec, commit)
    name = spec.install_name
    stage = layout.release_dir(name, rid)
    src = layout.source_dir(source.repo)
    features = ",".join(spec.features)
    job = layout.job_dir(iid, commit, spec.binary, features, spec.reinstall_trigger, str(fresh))
    fetch_ref = (plan.git_ref_names(source) or [commit])[0]
    started = await link.run(
        scripts.START_JOB,
        job,
        f"{stage}/{spec.binary}",
        scripts.BUILD_JOB,
        layout.LOCK_FILE,
        str(LOCK_WAIT_SECONDS),
        _holder(spec),
        src,
        f"{src}/users/{iid}",
        source.repo,
        fetch_ref,
        commit,
        spec.cargo,
        spec.binary,
        features,
        stage,
        "1" if fresh else "0",
        phase="build",
        timeout=60,
    )
    state = started.stdout.strip()
    if state != "reuse":
        report(spec.label, f"building {spec.binary} at {commit[:12]} ({state})")
        fields = await _wait_job(link, spec, job)
        status = fields.get("exit", "lost")
        if status != "0":
            log = await link.run(scripts.JOB_LOG, job, "40", phase="build", check=False)
            phase = fields.get("phase") or "build"
            lines = [ln for ln in log.stdout.splitlines() if not ln.startswith("== ")]
            await _remove(link, spec, abort, iid, [rid])
            code = None if status == "lost" else int(status) if status.isdigit() else None
            what = {
                "clone": f"git fetch of {source.ref_kind} {source.ref!r} failed",
                "build": f"cargo build --release --bin {spec.binary} failed",
                "lock": "could not take the host lock",
                "install": "could not stage the built binary",
            }.get(phase, f"{phase} failed")
            if status == "lost":
                what += " (the build process vanished)"
            raise CommandError(spec.label, phase, code, tail("\n".join(lines)), what)
    return rid


async def _verify(link: Link, spec: InstallSpec, iid: str, rid: str, abort: str) -> tuple[str, str]:
    path = f"{layout.release_dir(spec.install_name, rid)}/{spec.binary}"
    result = await link.run(
        scripts.VERIFY, path, phase="verify", check=False, timeout=VERIFY_TIMEOUT
    )
    lines = result.stdout.splitlines()
    sha = next((ln.split("\t", 1)[1] for ln in lines if ln.startswith("@@sha256\t")), "")
    output = "\n".join(ln for ln in lines if not ln.startswith("@@sha256\t"))
    if result.exit_status != 0 or not plan.version_matches(output, spec.binary) or not sha:
        await _remove(link, spec, abort, iid, [rid])
        expected = f"expected {spec.binary!r} in the first line"
        raise VerifyError(
            spec.label,
            f"{spec.binary} --version exited {result.exit_status} ({expected}): "
            f"{tail(output, 5) or '<no output>'}",
        )
    return output.splitlines()[0].strip(), sha


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
        if not isinstance(spec.source, GitSource):
            raise HostError(spec.label, "install", f"{spec.source.method} installs arrive later")
        commit = await resolve_commit(link.session, spec)
        rid = await _build_git(link, spec, iid, commit, fresh, abort)
        version, sha = await _verify(link, spec, iid, rid, abort)
        previous = current.release_id if current and _owned(current, iid) else None
        keep = [rid] + ([previous] if previous and previous != rid else [])
        name = spec.install_name
        await link.run(
            scripts.ACTIVATE,
            layout.LOCK_FILE,
            str(LOCK_WAIT_SECONDS),
            _holder(spec),
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
                installed_at=_now(),
            ),
            f"{layout.RELEASES_DIR}/{name}",
            layout.job_dir(
                iid,
                commit,
                spec.binary,
                ",".join(spec.features),
                spec.reinstall_trigger,
                str(fresh),
            ),
            *keep,
            phase="activate",
            timeout=LOCK_WAIT_SECONDS + 60,
        )
        report(spec.label, f"installed {version} ({commit[:12]})")
        return Installed(
            install_id=iid,
            release_id=rid,
            commit=commit,
            version=version,
            sha256=sha,
            install_path=f"{facts.home}/{layout.stable_path(name)}",
        )


def _owned(installed: InstalledBinary, iid: str) -> bool:
    return installed.receipt is not None and installed.receipt.get("installId") == iid


async def remove(spec: InstallSpec, release_id: str | None) -> None:
    async with Link(spec) as link:
        await _remove(
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
