"""The hive's extras on a host (see `extras`): list them, and remove them when asked."""

from __future__ import annotations

from rbee_infra.base import layout
from rbee_infra.base.progress import report
from rbee_infra.config.spec import InstallSpec
from rbee_infra.decide import extras
from rbee_infra.host import scripts
from rbee_infra.host.remote import PROBE_TIMEOUT, holder, open_session
from rbee_infra.host.ssh import Session

# EXTRAS_SCAN's arguments (also run inside the batched probe, see `hostview`)
SCAN_ARGS = (layout.WORKERS_DIR, layout.RELEASES_DIR, layout.RECEIPTS_DIR, extras.HAND_MADE_HIVE)


async def scan(session: Session, spec: InstallSpec) -> list[str]:
    """Read-only: the extras now, home-relative (safe during preview)."""
    result = await session.run(
        scripts.EXTRAS_SCAN,
        *SCAN_ARGS,
        phase="probe",
        timeout=PROBE_TIMEOUT,
    )
    return extras.find_extras(extras.parse_scan(result.stdout), spec.managed_workers)


async def listed(spec: InstallSpec) -> list[str]:
    async with open_session(spec) as session:
        return extras.shown(await scan(session, spec))


async def settle(spec: InstallSpec, planned: list[str]) -> list[str]:
    """With pruneUnmanaged, remove what the preview listed (`planned`) and is still extra;
    return the extras left on the host, as shown in outputs."""
    async with open_session(spec) as session:
        current = await scan(session, spec)
        doomed = extras.to_remove(planned, current) if spec.prune_unmanaged else []
        if doomed:
            await session.run(
                scripts.PRUNE,
                layout.LOCK_FILE,
                str(int(spec.lock_timeout)),
                holder(spec),
                *doomed,
                phase="prune",
                timeout=spec.lock_timeout + 60,
                summary="removing unmanaged installs",
            )
            report(spec.label, f"removed unmanaged: {', '.join(extras.shown(doomed))}")
            current = [p for p in current if p not in doomed]
        return extras.shown(current)
