"""The detached build jobs on a host (see build_job.sh): list them, stop them.

A build job outlives the `up` that started it, by design: it survives a dropped connection,
and the next `up` adopts it. When an `up` fails or is cancelled before an install took up a
build started ahead for it (`kickoff`), that build goes on; the provider says so when it
exits, `rbee-infra status` lists the jobs with their age and phase, and `rbee-infra builds
--stop` stops them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from rbee_infra.base import layout
from rbee_infra.base.errors import HostError
from rbee_infra.config.spec import InstallSpec
from rbee_infra.decide.facts import BuildJob, parse_jobs
from rbee_infra.host import pool, scripts
from rbee_infra.host.remote import PROBE_TIMEOUT, open_session
from rbee_infra.host.ssh import Session

STOP_TIMEOUT = 30.0


def listing_args(jobs: Sequence[str] = ()) -> list[str]:
    """JOBS's arguments: every job on the host, or just these job dirs."""
    return [layout.JOBS_DIR, *jobs]


async def list_jobs(
    session: Session, jobs: Sequence[str] = (), *, timeout: float = PROBE_TIMEOUT
) -> list[BuildJob]:
    """The host's build jobs (or just `jobs`, those that still exist). Read-only."""
    result = await session.run(scripts.JOBS, *listing_args(jobs), phase="probe", timeout=timeout)
    return parse_jobs(result.stdout)


async def stop(session: Session, job: BuildJob) -> None:
    """Kill the job's process group; it ends with exit 124 (the next `up` starts it again)."""
    await session.run(scripts.KILL_JOB, job.job, phase="build", timeout=STOP_TIMEOUT)


async def find(
    jobs: Mapping[str, InstallSpec], *, timeout: float = PROBE_TIMEOUT
) -> dict[str, BuildJob | HostError | None]:
    """What became of these jobs (job dir -> the install it is for): one round trip per host,
    all hosts at once. None: the job is gone; a HostError: its host could not be asked."""
    by_host: dict[str, list[str]] = {}
    for job, spec in jobs.items():
        by_host.setdefault(pool.credentials_key(spec.effective_connection()), []).append(job)

    async def one(dirs: list[str]) -> dict[str, BuildJob | HostError | None]:
        try:
            async with open_session(jobs[dirs[0]]) as session:
                seen = {j.job: j for j in await list_jobs(session, dirs, timeout=timeout)}
        except HostError as error:
            return dict.fromkeys(dirs, error)
        return {job: seen.get(job) for job in dirs}

    found: dict[str, BuildJob | HostError | None] = {}
    for part in await asyncio.gather(*(one(dirs) for dirs in by_host.values())):
        found.update(part)
    return found
