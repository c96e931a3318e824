"""What `check` reads on a host, in one round trip, shared by every resource on that host.

A check needs the host's receipts and checksums (INVENTORY), the commit each ref means now
(`git ls-remote`), and for a hive its extras and its service's health. Only a check that
finds something to install also needs the toolchain and platform facts for preflight (PROBE:
`cargo`/`rustc --version`, GPUs, free disk...), which cost several processes per host: those
are read in a second round trip then (`Need.facts`), so a no-op stays light. `view` runs
what a need asks for as one batched, read-only command (`scripts.BATCH`), and on the
provider's shared loop (`pool`)
memoizes the result per host for `TTL_SECONDS` (within one provider process, i.e. one
preview or up), so the other resources of the host (whose needs it covers) read it without
another round trip: a no-op preview or `up` costs one probe per host, and an install right
after its check reads its facts and commit from it too. When a resource changes the host
(`remote.Link` closes), what it touched is marked stale (`pool.forget`): its install name, and
for a hive its extras and service; a memo no longer serves a need that includes them.

The batch asks for more than one resource needs: the hive's names every worker configured on
it, and `BuildKickoff` (see `kickoff`) asks for everything its host's resources need.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from rbee_infra.base import layout
from rbee_infra.base.errors import CommandError, HostError
from rbee_infra.base.redact import url_secrets
from rbee_infra.config.fleet import GitSource
from rbee_infra.config.spec import Hosts, InstallSpec, hosts_of
from rbee_infra.decide import extras, plan
from rbee_infra.decide.facts import BuildJob, HostFacts, parse_jobs, parse_probe
from rbee_infra.host import jobs, pool, prune, scripts, service
from rbee_infra.host.remote import PROBE_TIMEOUT, secrets_of
from rbee_infra.host.ssh import Result, Session, tail

TTL_SECONDS = 300.0
CONCURRENT_HOSTS = 64  # hosts read at once; each is one SSH connection
VERSION_SECONDS = 10  # bound on one run of a binary's check (`--version`, `--help`)
END = "\n@@rbee-end\t"
ERR = "\n@@rbee-stderr\n"


@dataclass(frozen=True)
class Need:
    """What a check reads: install names, refs per repo, the extras scan, service ports, and
    (`facts`) the toolchain and platform facts of preflight, for the configured `cargo`."""

    cargo: str
    names: frozenset[str] = frozenset()
    refs: frozenset[tuple[str, str]] = frozenset()  # (repo, full ref name)
    extras: bool = False
    ports: frozenset[int] = frozenset()
    facts: bool = False
    # binaries whose checks to run (status only: preview runs nothing), as (install name,
    # binary, the configured check's arguments or ()) (see `decide/verify`)
    versions: frozenset[tuple[str, str, tuple[str, ...]]] = frozenset()
    jobs: bool = False  # the build jobs on the host (status only)

    def covers(self, other: Need) -> bool:
        return (
            (not other.facts or (self.facts and self.cargo == other.cargo))
            and other.names <= self.names
            and other.refs <= self.refs
            and (self.extras or not other.extras)
            and other.ports <= self.ports
            and other.versions <= self.versions
            and (self.jobs or not other.jobs)
        )

    def repos(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for repo, ref in sorted(self.refs):
            out.setdefault(repo, []).append(ref)
        return out


def need_of(spec: InstallSpec, *, facts: bool = False) -> Need:
    """One resource's check (with `facts`: and its preflight); a hive's also covers the
    workers configured on it."""
    names = {spec.install_name}
    if spec.component == "hive":
        names |= {f"rbee-worker-{t}" for t in spec.managed_workers}
    refs: set[tuple[str, str]] = set()
    source = spec.source
    if isinstance(source, GitSource) and not source.rev and spec.build is None:
        refs = {(source.repo, ref) for ref in plan.git_ref_names(source)}
    hive = spec.component == "hive"
    return Need(
        cargo=spec.cargo,
        names=frozenset(names),
        refs=frozenset(refs),
        extras=hive,
        ports=frozenset({spec.hive_port} if hive and spec.auto_start else ()),
        facts=facts,
    )


def need_of_all(specs: Iterable[InstallSpec]) -> Need:
    needs = [need_of(s) for s in specs]
    return Need(
        cargo=needs[0].cargo,
        names=frozenset().union(*(n.names for n in needs)),
        refs=frozenset().union(*(n.refs for n in needs)),
        extras=any(n.extras for n in needs),
        ports=frozenset().union(*(n.ports for n in needs)),
    )


def facts_only(need: Need) -> Need:
    """The second round trip of a host with something to install: the toolchain and platform
    facts and the inventory of `need`'s names, not its refs, extras or health again."""
    return Need(cargo=need.cargo, names=need.names, facts=True)


@dataclass(frozen=True)
class HostView:
    need: Need
    label: str
    facts: HostFacts  # without need.facts: only home and the installed binaries
    server_host_key: str
    listings: dict[str, Result] = field(default_factory=dict)  # repo -> RESOLVE's result
    scan: Result | None = None
    health: dict[int, Result] = field(default_factory=dict)
    versions: dict[str, Result] = field(default_factory=dict)  # install name -> VERIFY's result
    jobs: Result | None = None

    def build_jobs(self) -> list[BuildJob]:
        """The build jobs on the host (with `need.jobs`)."""
        if self.jobs is None:
            return []
        _check(self.jobs, self.label, "probe")
        return parse_jobs(self.jobs.stdout)

    def commit_for(self, spec: InstallSpec) -> str:
        """What `git.resolve_commit` answers, with the same errors."""
        source = spec.source
        assert isinstance(source, GitSource)
        if source.rev:
            return source.rev
        result = self.listings[source.repo]
        _check(result, spec.label, "resolve", plan.resolve_summary(source))
        return plan.commit_in_listing(spec, result.stdout)

    def extras_for(self, spec: InstallSpec) -> list[str]:
        assert self.scan is not None
        _check(self.scan, spec.label, "probe")
        return extras.find_extras(extras.parse_scan(self.scan.stdout), spec.managed_workers)

    def health_for(self, spec: InstallSpec) -> service.ServiceState:
        return service.parse_health(self.health[spec.hive_port].stdout, spec.hive_port)


def _check(result: Result, label: str, phase: str, summary: str = "") -> None:
    if result.exit_status != 0:
        raise CommandError(
            label, phase, result.exit_status, tail(result.stderr or result.stdout), summary
        )


def batch_parts(need: Need) -> list[tuple[str, list[str]]]:
    """The scripts a need runs, in order: PROBE (or INVENTORY without facts), then RESOLVE
    per repo, EXTRAS_SCAN, HEALTH per port, VERIFY per binary (no sha256: the inventory has
    it), JOBS."""
    parts: list[tuple[str, list[str]]] = []
    items: list[str] = []
    for name in sorted(need.names):
        items += [name, layout.stable_path(name), layout.receipt_path(name)]
    if need.facts:
        parts.append((scripts.PROBE, [need.cargo, *items]))
    else:
        parts.append((scripts.INVENTORY, items))
    for repo, refs in need.repos().items():
        parts.append((scripts.RESOLVE, [repo, *refs]))
    if need.extras:
        parts.append((scripts.EXTRAS_SCAN, list(prune.SCAN_ARGS)))
    for port in sorted(need.ports):
        parts.append((scripts.HEALTH, [str(port), "0"]))
    for name, binary, args in sorted(need.versions):
        path = layout.stable_path(name)
        parts.append((scripts.VERIFY, [str(VERSION_SECONDS), path, binary, "0", "", *args]))
    if need.jobs:
        parts.append((scripts.JOBS, jobs.listing_args()))
    return parts


def batch_args(need: Need) -> list[str]:
    """BATCH's arguments for a need."""
    return encode(batch_parts(need))


def encode(parts: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """BATCH's arguments for these (script, arguments) parts."""
    out: list[str] = []
    for script, args in parts:
        out += [script, str(len(args)), *args]
    return out


async def run_batch(
    session: Session, parts: Sequence[tuple[str, Sequence[str]]], *, phase: str, timeout: float
) -> list[Result]:
    """Several scripts in one round trip; one Result per part (in order)."""
    result = await session.run(scripts.BATCH, *encode(parts), phase=phase, timeout=timeout)
    found = split_batch(result.stdout)
    if len(found) != len(parts):
        raise CommandError(
            session.label, phase, result.exit_status, "the batched command's output is cut short"
        )
    return found


def split_batch(output: str) -> list[Result]:
    """BATCH's output -> one Result per part, in order."""
    results: list[Result] = []
    pos = 0
    while True:
        err = output.find(ERR, pos)
        if err < 0:
            return results
        end = output.find(END, err)
        if end < 0:
            return results
        stop = output.find("\n", end + len(END))
        stop = len(output) if stop < 0 else stop
        status = output[end + len(END) : stop].strip()
        results.append(
            Result(
                exit_status=int(status) if status.isdigit() else None,
                stdout=output[pos:err],
                stderr=output[err + len(ERR) : end],
            )
        )
        pos = stop + 1


def to_view(need: Need, label: str, host_key: str, results: Sequence[Result]) -> HostView:
    """Parse the parts in `batch_parts` order; a failed PROBE/INVENTORY is the error."""
    probe = results[0]
    _check(probe, label, "probe")
    rest = list(results[1:])
    listings = {repo: rest.pop(0) for repo in need.repos()}
    scan = rest.pop(0) if need.extras else None
    health = {port: rest.pop(0) for port in sorted(need.ports)}
    versions = {name: rest.pop(0) for name, _, _ in sorted(need.versions)}
    found = rest.pop(0) if need.jobs else None
    facts = parse_probe(probe.stdout)
    return HostView(need, label, facts, host_key, listings, scan, health, versions, found)


async def probe_batch(session: Session, need: Need) -> HostView:
    results = await run_batch(
        session,
        batch_parts(need),
        phase="probe",
        timeout=PROBE_TIMEOUT + 60 + 2 * VERSION_SECONDS * len(need.versions),
    )
    return to_view(need, session.label, session.server_host_key, results)


def _secrets(specs: Sequence[InstallSpec], need: Need) -> list[str]:
    found = {s for spec in specs for s in secrets_of(spec)}
    found |= {s for repo, _ in need.refs for s in url_secrets(repo)}
    return sorted(found)


@dataclass
class Memo:
    """A view as memoized: when it was taken, and what changed on the host since."""

    taken: float
    view: HostView
    stale: set[str] = field(default_factory=set)

    def serves(self, need: Need) -> bool:
        if time.monotonic() - self.taken >= TTL_SECONDS or not self.view.need.covers(need):
            return False
        if need.names & self.stale:
            return False
        if need.extras and pool.EXTRAS_MARK in self.stale:
            return False
        return not (need.ports and pool.HEALTH_MARK in self.stale)


def _lookup(spec: InstallSpec, need: Need) -> HostView | None:
    for entry in pool.memo(spec.effective_connection()).get("views", []):
        if entry.serves(need):
            return entry.view
    return None


def memoized(spec: InstallSpec, *, facts: bool = False) -> HostView | None:
    """A memoized view that still covers this resource's check (with `facts`: and its
    preflight), without any I/O (None off the shared loop): an install right after its
    check reads the host from it."""
    need = facts_only(need_of(spec)) if facts else need_of(spec)
    return _lookup(spec, need) if pool.on_shared_loop() else None


async def view(
    spec: InstallSpec, need: Need | None = None, *, specs: Sequence[InstallSpec] = ()
) -> HostView:
    """The host as the batched probe shows it: memoized per host on the shared loop (a view
    taken for a wider need serves a narrower one), else read now. Read-only."""
    need = need or need_of(spec)
    connection = spec.effective_connection()
    if not pool.on_shared_loop():
        async with pool.lease(connection, spec.label, secrets=_secrets([spec, *specs], need)) as s:
            return await probe_batch(s, need)
    memo = pool.memo(connection)
    async with memo.setdefault("lock", asyncio.Lock()):
        found = _lookup(spec, need)
        if found is not None:
            return found
        async with pool.lease(connection, spec.label, secrets=_secrets([spec, *specs], need)) as s:
            seen = await probe_batch(s, need)
        now = time.monotonic()
        kept = [m for m in memo.get("views", []) if now - m.taken < TTL_SECONDS]
        memo["views"] = [*kept[-3:], Memo(now, seen)]
        return seen


async def views_of(
    hosts: Hosts, need: Callable[[list[InstallSpec]], Need] = need_of_all
) -> dict[str, HostView | HostError]:
    """Every host's `view` at once (at most CONCURRENT_HOSTS at a time), for `need` of its
    installs: alias -> its view, or the HostError that stopped it."""
    gate = asyncio.Semaphore(CONCURRENT_HOSTS)

    async def one(specs: list[InstallSpec]) -> HostView | HostError:
        async with gate:
            try:
                return await view(specs[0], need(specs), specs=specs)
            except HostError as error:
                return error

    found = await asyncio.gather(*(one(specs) for _, specs in hosts))
    return dict(zip((alias for alias, _ in hosts), found, strict=True))


def vouched(spec: InstallSpec) -> bool:
    """Whether the host's key is known before any check runs (`strict`: known_hosts or the
    configured key; "tofu" with a configured key): a read ahead meets the host exactly as the
    check would, and never takes a key on first use, which is the check's to record."""
    c = spec.connection
    return c.host_key_policy == "strict" or bool(c.host_key)


def read_ahead(payload: dict) -> None:
    """Read the hosts of the build kick-off's inputs (`payload["hosts"]`) before the engine
    asks: the provider server started ahead calls this while the program still runs
    (tools/pulumi/pulumi-dynamic-warm.py), and the kick-off's check, then every hive's and
    worker's, answers from the views memoized here, on connections already open. Read-only,
    the same batched probe as `kickoff.survey`'s first round trip. Only hosts whose key is
    vouched for; an entry that does not parse, a host that cannot be read: left to the check,
    which reads it itself and reports what it finds. Never raises."""
    try:
        hosts, _ = hosts_of(payload)
        chosen = [(a, specs) for a, specs in hosts if all(vouched(s) for s in specs)]
        if chosen:
            pool.run(views_of(chosen))
    except Exception:  # the check reads (and parses) them again and names the problem
        return
