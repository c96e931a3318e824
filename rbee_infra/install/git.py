"""The git method: resolve the ref on the host, then a detached, resumable cargo build."""

from __future__ import annotations

import asyncio
import time

from rbee_infra.base import layout
from rbee_infra.base.errors import CommandError, PhaseTimeout, RefMoved
from rbee_infra.base.progress import report
from rbee_infra.config.fleet import GitSource
from rbee_infra.config.spec import InstallSpec
from rbee_infra.decide import buildneeds, plan
from rbee_infra.decide.facts import duration, parse_fields, phase_seconds
from rbee_infra.decide.failure import useful_tail
from rbee_infra.host import hostview, scripts
from rbee_infra.host.remote import PROBE_TIMEOUT, Link, cleanup_install, holder
from rbee_infra.host.ssh import Session
from rbee_infra.install import Staged
from rbee_infra.install import source as lockfiles

# Jobs this provider process starts ahead of their install (see `kickoff`): job dir -> the
# state its START_JOB answered. The install waits for such a job as it is, even when it
# failed, instead of starting it again.
KICKED: dict[str, asyncio.Future[str]] = {}
# how much of a failed job's log is read: enough to reach cargo's error past a build script's
# directives (`useful_tail` picks what is shown)
LOG_LINES = 1000


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
        summary=plan.resolve_summary(source),
    )
    return plan.commit_in_listing(spec, result.stdout)


PROGRESS_SECONDS = 30  # how often a long build reports that it is alive


async def wait_job(link: Link, spec: InstallSpec, job: str) -> dict[str, str]:
    """Wait for a detached job (a dropped link is reopened by `Link.run`, which rejoins it),
    reporting every PROGRESS_SECONDS what it does (phase, crates compiled, age); a job still
    running after buildTimeout is killed."""
    deadline = time.monotonic() + spec.build_timeout
    while True:
        most = max(1, min(PROGRESS_SECONDS, int(deadline - time.monotonic())))
        try:
            result = await link.run(scripts.WAIT_JOB, job, str(most), phase="build",
                                    timeout=most + 60)
        except PhaseTimeout:
            result = None
        fields = parse_fields(result.stdout) if result is not None else {"exit": "running"}
        if fields.get("exit") != "running":
            return fields
        if time.monotonic() >= deadline:
            await link.run(scripts.KILL_JOB, job, phase="build", check=False, timeout=30)
            raise PhaseTimeout(spec.label, "build", spec.build_timeout)
        report(spec.label, progress_line(spec.binary, fields))


def progress_line(binary: str, fields: dict[str, str]) -> str:
    """`building llm-worker-rbee-cpu: 212 crates compiled, 3m 05s (phase build)`."""
    started, now = fields.get("started", ""), fields.get("now", "")
    age = f", {duration(int(now) - int(started))}" if started.isdigit() and now.isdigit() else ""
    compiled = fields.get("compiled", "")
    crates = f"{compiled} crates compiled" if compiled.isdigit() else "running"
    return f"building {binary}: {crates}{age} (phase {fields.get('phase') or 'starting'})"


async def stage(link: Link, spec: InstallSpec, iid: str, *, fresh: bool, abort: str) -> Staged:
    """Resolve the ref (on this host), then run (or rejoin) the detached build job. When the
    host's fetch of the ref gets another commit (the ref moved since it was resolved), ask
    the host once more: if its `git ls-remote` now names what the fetch got, build that;
    if not, nothing is built."""
    assert link.session is not None
    seen = hostview.memoized(spec)  # the commit the check resolved, if its view is still valid
    commit = seen.commit_for(spec) if seen else await resolve_commit(link.session, spec)
    try:
        return await build(link, spec, iid, commit, fresh, abort)
    except RefMoved as moved:
        again = await resolve_commit(link.session, spec)
        if again != moved.fetched:
            why = f"git ls-remote on the host now names {again}; building neither"
            raise RefMoved(spec.label, _ref(spec), moved.expected, moved.fetched, why) from None
        report(spec.label, f"{_ref(spec)} moved from {commit[:12]} to {again[:12]} since it "
                           f"was resolved; building {again[:12]}")
        return await build(link, spec, iid, again, fresh, abort)


def _ref(spec: InstallSpec) -> str:
    source = spec.source
    assert isinstance(source, GitSource)
    return f"{source.ref_kind} {source.ref!r}"


async def build(
    link: Link, spec: InstallSpec, iid: str, commit: str, fresh: bool, abort: str
) -> Staged:
    """Run (or rejoin) the detached build job."""
    source = spec.source
    assert isinstance(source, GitSource)
    rid = plan.release_id(spec, commit)
    job = job_dir(spec, iid, commit, fresh)
    timings: dict[str, float] = {}
    lock_sha = ""
    ahead = KICKED.pop(job, None)
    state = await ahead if ahead is not None else "not started"
    if state in ("started", "running"):
        state = "started ahead"
    elif state != "reuse":
        state = await start_job(link, spec, iid, commit, fresh)
    if state != "reuse":
        report(spec.label, f"building {spec.binary} at {commit[:12]} ({state})")
        fields = await wait_job(link, spec, job)
        if state == "started ahead" and fields.get("exit") == "lost":
            state = await start_job(link, spec, iid, commit, fresh)  # it vanished: start it
            fields = {"exit": "0"} if state == "reuse" else await wait_job(link, spec, job)
        status = fields.get("exit", "lost")
        timings = phase_seconds(fields.get("times", ""))
        lock_sha = fields.get("lock", "")
        if status != "0":
            log = await link.run(scripts.JOB_LOG, job, str(LOG_LINES), phase="build", check=False)
            phase = fields.get("phase") or "build"
            await cleanup_install(link, spec, abort, iid, [rid])
            fetched = fields.get("commit", "")
            moved = fetched and not fetched.startswith(commit)
            if phase == "clone" and status == str(RefMoved.EXIT) and moved:
                raise RefMoved(spec.label, _ref(spec), commit, fetched)
            code = None if status == "lost" else int(status) if status.isdigit() else None
            what = {
                "clone": f"git fetch of {source.ref_kind} {source.ref!r}",
                "deps": f"{buildneeds.install_command(spec.build_mode)} in the checkout",
                "build": f"cargo build --release --bin {spec.binary}",
                "lock": "could not take the host lock",
                "install": "could not stage the built binary",
            }.get(phase, "")
            if status == "lost":
                what = f"{what} (the build process vanished)".strip()
            raise CommandError(spec.label, phase, code, useful_tail(log.stdout), what)
    return Staged(release_id=rid, version_key=commit, job_dir=job, phase_seconds=timings,
                  lock_sha256=lock_sha)


def job_dir(spec: InstallSpec, iid: str, commit: str, fresh: bool) -> str:
    """Deterministic per build: a second start of the same build joins the first."""
    features = ",".join(spec.features)
    parts = (commit, spec.binary, features, spec.reinstall_trigger, str(fresh), spec.cargo)
    return layout.job_dir(iid, *parts)


def start_args(
    spec: InstallSpec, iid: str, commit: str, fresh: bool, stage: str | None = None
) -> list[str]:
    """START_JOB's arguments for this build: the binary lands in `stage` (default: the
    release dir it installs from)."""
    source = spec.source
    assert isinstance(source, GitSource)
    if stage is None:
        stage = layout.release_dir(spec.install_name, plan.release_id(spec, commit))
    src = layout.source_dir(source.repo)
    fetch_ref = (plan.git_ref_names(source) or [commit])[0]
    return [
        job_dir(spec, iid, commit, fresh),
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
        ",".join(spec.features),
        stage,
        "1" if fresh else "0",
        spec.build_mode,
    ]


async def send_lock(runner: Link | Session, spec: InstallSpec, commit: str) -> None:
    """The Cargo.lock the stack keeps for this commit (a tree without one), before its build
    starts: the build job then builds --locked with it."""
    source = spec.source
    assert isinstance(source, GitSource)
    lock = lockfiles.lock_for(source.repo, commit)
    if lock is not None:
        await runner.run(scripts.PUT_LOCK, layout.source_dir(source.repo), commit, stdin=lock,
                         phase="build", timeout=60)


async def start_job(
    runner: Link | Session, spec: InstallSpec, iid: str, commit: str, fresh: bool
) -> str:
    """Start the detached build (or find it running or done): `started`, `running`, `reuse`."""
    await send_lock(runner, spec, commit)
    started = await runner.run(
        scripts.START_JOB, *start_args(spec, iid, commit, fresh), phase="build", timeout=60
    )
    return started.stdout.strip()
