"""Host operations shared by every install method: the connection, the probe, the removal."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import Any

from rbee_infra.base import layout
from rbee_infra.base.errors import ConnectError, HostError
from rbee_infra.base.progress import report
from rbee_infra.base.redact import url_secrets
from rbee_infra.config.fleet import GitSource
from rbee_infra.config.spec import InstallSpec
from rbee_infra.decide.facts import HostFacts, parse_probe
from rbee_infra.host import pool, scripts
from rbee_infra.host.ssh import Result, Session

PROBE_TIMEOUT = 60.0
RECONNECTS = 5


def secrets_of(spec: InstallSpec) -> list[str]:
    found = [s for s in (spec.connection.private_key, spec.connection.private_key_password) if s]
    for key in ("repo", "base_url"):
        value = getattr(spec.source, key, None)
        if isinstance(value, str):
            found.extend(url_secrets(value))
    return found


def open_session(spec: InstallSpec) -> Any:
    """A session on the host's shared connection (see `pool`)."""
    return pool.lease(spec.effective_connection(), spec.label, secrets=secrets_of(spec))


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


def now() -> str:
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
        # this resource changed the host: what memoized probes say of it is stale
        touched = {self.spec.install_name}
        if self.spec.component == "hive":
            touched |= {pool.EXTRAS_MARK, pool.HEALTH_MARK}
        pool.forget(self.spec.connection, touched)

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

    async def run(self, script: str, *args: str, **kwargs: Any) -> Result:
        """Run one remote script. Every script is idempotent (a build job is rejoined, not
        restarted), so when the link drops it is reopened and the script runs again."""
        attempt = 0
        while True:
            try:
                if self.session is None:
                    await self.reopen()
                assert self.session is not None
                return await self.session.run(script, *args, **kwargs)
            except ConnectError:
                attempt += 1
                if attempt > RECONNECTS:
                    raise
                phase = kwargs.get("phase", "")
                report(self.spec.label, f"connection lost during {phase}; reconnecting")
                await asyncio.sleep(min(1.0 * attempt, 5.0))
                with contextlib.suppress(ConnectError):
                    await self.reopen()


def holder(spec: InstallSpec) -> str:
    return f"{spec.stack}/{spec.resource_name} ({spec.label}) since {now()}"


async def remove_install(
    link: Link,
    spec: InstallSpec,
    mode: str,
    iid: str,
    release_ids: list[str],
    *,
    wait_for_builds: bool = True,
) -> None:
    """REMOVE. Without `wait_for_builds` it never waits for another resource's build (the
    shared checkout then stays, in use): for a cleanup, whose own job has ended. `release_ids`
    may come from state or from the host: one that is not a release id never reaches it."""
    name = spec.install_name

    def valid(rid: object) -> bool:  # a release, or its download in progress (`.incoming`)
        return isinstance(rid, str) and layout.is_release_id(rid.removesuffix(".incoming"))

    for rid in release_ids:
        if not valid(rid):
            report(spec.label, f"not removing release {str(rid)[:80]!r}: not a release id")
    release_ids = [rid for rid in release_ids if valid(rid)]
    src = layout.source_dir(spec.source.repo) if isinstance(spec.source, GitSource) else ""
    await link.run(
        scripts.REMOVE,
        layout.LOCK_FILE,
        str(int(spec.lock_timeout)),
        holder(spec),
        mode,
        layout.stable_path(name),
        layout.receipt_path(name),
        iid,
        f"{layout.RELEASES_DIR}/{name}",
        src,
        f"{src}/users/{iid}" if src else "",
        f"{layout.JOBS_DIR}/{iid}",
        str(int(spec.lock_timeout)) if wait_for_builds else "now",
        *release_ids,
        phase="remove",
        timeout=spec.lock_timeout + 60,
    )


async def cleanup_install(
    link: Link, spec: InstallSpec, mode: str, iid: str, release_ids: list[str]
) -> None:
    """Best-effort undo after a failure; it never hides the failure that made it necessary,
    nor delays it behind another resource's build (see REMOVE)."""
    try:
        await remove_install(link, spec, mode, iid, release_ids, wait_for_builds=False)
    except HostError as error:
        report(spec.label, f"could not clean up after the failure: {error}")
