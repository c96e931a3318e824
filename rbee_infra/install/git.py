"""The git method: resolve the ref on the host, then a detached, resumable cargo build."""

from __future__ import annotations

import asyncio
import time

from rbee_infra import layout, plan, scripts
from rbee_infra.config import GitSource
from rbee_infra.errors import CommandError, ConnectError, HostError
from rbee_infra.facts import parse_fields, parse_ls_remote, phase_seconds
from rbee_infra.install import Staged
from rbee_infra.progress import report
from rbee_infra.redact import redact_url
from rbee_infra.remote import PROBE_TIMEOUT, Link, holder, remove_install
from rbee_infra.spec import InstallSpec
from rbee_infra.ssh import Session, tail

RECONNECTS_WHILE_WAITING = 5


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
        summary=f"git ls-remote of {source.ref_kind} {source.ref!r}",
    )
    commit = plan.pick_commit(source, parse_ls_remote(result.stdout))
    if commit is None:
        where = redact_url(source.repo)
        raise HostError(
            spec.label, "resolve", f"{source.ref_kind} {source.ref!r} not found in {where}"
        )
    return commit


async def wait_job(link: Link, spec: InstallSpec, job: str) -> dict[str, str]:
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


async def stage(link: Link, spec: InstallSpec, iid: str, *, fresh: bool, abort: str) -> Staged:
    """Resolve the ref, then run (or rejoin) the detached build job."""
    assert link.session is not None
    commit = await resolve_commit(link.session, spec)
    return await build(link, spec, iid, commit, fresh, abort)


async def build(
    link: Link, spec: InstallSpec, iid: str, commit: str, fresh: bool, abort: str
) -> Staged:
    """Run (or rejoin) the detached build job."""
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
        str(int(spec.lock_timeout)),
        holder(spec),
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
    timings: dict[str, float] = {}
    if state != "reuse":
        report(spec.label, f"building {spec.binary} at {commit[:12]} ({state})")
        fields = await wait_job(link, spec, job)
        status = fields.get("exit", "lost")
        timings = phase_seconds(fields.get("times", ""))
        if status != "0":
            log = await link.run(scripts.JOB_LOG, job, "40", phase="build", check=False)
            phase = fields.get("phase") or "build"
            lines = [ln for ln in log.stdout.splitlines() if not ln.startswith("== ")]
            await remove_install(link, spec, abort, iid, [rid])
            code = None if status == "lost" else int(status) if status.isdigit() else None
            what = {
                "clone": f"git fetch of {source.ref_kind} {source.ref!r}",
                "build": f"cargo build --release --bin {spec.binary}",
                "lock": "could not take the host lock",
                "install": "could not stage the built binary",
            }.get(phase, "")
            if status == "lost":
                what = f"{what} (the build process vanished)".strip()
            raise CommandError(spec.label, phase, code, tail("\n".join(lines)), what)
    return Staged(release_id=rid, version_key=commit, job_dir=job, phase_seconds=timings)
