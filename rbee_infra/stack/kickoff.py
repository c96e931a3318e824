"""Start the builds of every host at once, ahead of the installs that wait for them.

The SDK's dynamic-provider server runs at most 4 handler calls at a time (a fixed thread pool),
and an install's create holds its thread while its build runs. Without help, only 4 hosts would
build at once, however many the engine schedules. One `BuildKickoff` per stack, declared first
(every hive depends on it), does the host work of all hosts inside single calls, concurrently
on the provider's shared SSH loop: its check reads every host (one batched probe each, which
the hosts' hives and workers then reuse, see `hostview`; each host resolves its own refs);
its create/update starts the detached build job of every binary that needs one
(`git.start_job`'s deterministic job, the one the install would start) and returns at once.
All hosts build together; each install then only waits for its job, or finds it done. On one
host the jobs take turns on the build lock; they share the checkout and the cargo target dir,
so the workers build incrementally after the hive.

It is an optimisation, never a source of truth: it plans a build only where the install would
make the same one, and anything it skips or fails to start, the install does itself (a host it
cannot reach is only reported). Its diff is "update" exactly when some binary is to be built,
so a converged stack previews as no change; preview never calls its create/update, and its
check only reads, so a preview changes no host.

The provider is pickled by reference into stack state: keep `rbee_infra.stack.kickoff.
BuildKickoffProvider` where it is.
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
from typing import TYPE_CHECKING, Any

from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from rbee_infra.base import layout, wire
from rbee_infra.base.errors import HostError, HostKeyError
from rbee_infra.base.lazy import lazy
from rbee_infra.base.progress import report, warn
from rbee_infra.base.redact import url_has_credentials
from rbee_infra.config.fleet import GitSource
from rbee_infra.stack.provider_server import quiet_expected_errors

if TYPE_CHECKING:
    from rbee_infra.config import spec as specs_
    from rbee_infra.config.spec import Hosts, InstallSpec
    from rbee_infra.decide import buildneeds, plan, preflight
    from rbee_infra.decide.buildneeds import BuildNeeds
    from rbee_infra.decide.facts import HostFacts
    from rbee_infra.host import hostview, jobs, pins, pool, remote, scripts
    from rbee_infra.install import build_once, cache, git, source
else:  # the program imports this module only to pickle the class: see `lazy`
    hostview = lazy("rbee_infra.host.hostview")
    specs_ = lazy("rbee_infra.config.spec")
    jobs = lazy("rbee_infra.host.jobs")
    pins = lazy("rbee_infra.host.pins")
    plan = lazy("rbee_infra.decide.plan")
    pool = lazy("rbee_infra.host.pool")
    preflight = lazy("rbee_infra.decide.preflight")
    remote = lazy("rbee_infra.host.remote")
    scripts = lazy("rbee_infra.host.scripts")
    git = lazy("rbee_infra.install.git")
    source = lazy("rbee_infra.install.source")
    build_once = lazy("rbee_infra.install.build_once")
    cache = lazy("rbee_infra.install.cache")
    buildneeds = lazy("rbee_infra.decide.buildneeds")

quiet_expected_errors()  # in the provider server: expected errors as messages (`provider_server`)

ADDED = ("pending", "started", "trustedHostKeys", "cargoLocks")  # what check/create add


def build_cargo(
    spec: InstallSpec, facts: HostFacts, needs: BuildNeeds | None = None
) -> str | None:
    """The cargo the install will build with (as `lifecycle` preflight decides), or None when
    the install must act first (a preflight problem, rustup or a build tool to install)."""
    if preflight.preflight_problems(spec, facts, needs):
        return None
    user = facts.user or spec.connection.user
    if needs is not None and spec.ensure_toolchain and buildneeds.ensure_steps(needs, facts, user):
        return None
    if spec.ensure_toolchain and preflight.cargo_missing(spec, facts):
        if preflight.needs_toolchain(spec, facts):
            return None
        return preflight.HOME_CARGO
    return spec.cargo


def settled(spec: InstallSpec, commit: str, facts: HostFacts) -> bool:
    """The host already holds this build, or the install rebuilds from scratch
    (reinstallTrigger changed: a `fresh` job, which is the install's own to start)."""
    installed = facts.installed.get(spec.install_name)
    if installed is None or installed.receipt is None:
        return False
    receipt = installed.receipt
    if receipt.get("installId") != plan.install_id(spec):
        return False
    if plan.host_state(installed, plan.install_id(spec)) != plan.IN_SYNC:
        return False  # drift: the install rebuilds as it is (not fresh)
    if receipt.get("releaseId") == plan.release_id(spec, commit):
        return True
    old_commit, old_features = receipt.get("commit"), receipt.get("features")
    if not isinstance(old_commit, str) or not isinstance(old_features, list):
        return False
    as_before = spec.model_copy(update={"features": old_features})
    return receipt.get("releaseId") != plan.release_id(as_before, old_commit)


def to_build(specs: list[InstallSpec], seen: hostview.HostView) -> list[tuple[InstallSpec, str]]:
    """The git binaries not yet built at the commit their ref means now, hive first, with that
    commit (decided from the inventory alone: no toolchain facts needed)."""
    out: list[tuple[InstallSpec, str]] = []
    for spec in sorted(specs, key=lambda s: s.component != "hive"):
        if not isinstance(spec.source, GitSource) or spec.build is not None:
            continue  # not built on this host (a release, a local file, or shipped)
        try:
            commit = seen.commit_for(spec)
        except HostError:
            continue  # the install reports it
        if not settled(spec, commit, seen.facts):
            out.append((spec, commit))
    return out


def pending(
    specs: list[InstallSpec],
    seen: hostview.HostView,
    needs: dict[str, BuildNeeds | None] | None = None,
) -> list[dict[str, str]]:
    """The builds to start now, hive first: one per git binary the install would build, with
    the cargo it would build with. `seen` must hold the host's facts (`survey` reads them
    where something is to be built); `needs`: what each resource's build needs (`source`),
    so that no build starts that its preflight would refuse."""
    todo: list[dict[str, str]] = []
    for spec, commit in to_build(specs, seen):
        wanted = (needs or {}).get(spec.resource_name)
        cargo = build_cargo(spec, seen.facts, wanted) if seen.need.facts else None
        if cargo is None:
            continue
        todo.append(
            {
                "alias": spec.alias,
                "resource": spec.resource_name,
                "binary": spec.binary,
                "commit": commit,
                "cargo": cargo,
                "buildMode": wanted.build_mode if wanted is not None else "",
            }
        )
    return todo


async def needs_of(
    hosts: Hosts, seen: dict[str, hostview.HostView]
) -> dict[str, BuildNeeds | None]:
    """What each build to start needs, read from its tree on this machine (`source`)."""
    builds = [(spec, commit) for alias, specs in hosts if alias in seen
              for spec, commit in to_build(specs, seen[alias])]
    found = await asyncio.gather(*(source.needs_for(spec, commit) for spec, commit in builds))
    return {spec.resource_name: needs for (spec, _), needs in zip(builds, found, strict=True)}


async def survey(hosts: Hosts) -> dict[str, hostview.HostView]:
    """Every reachable host's batched probe, at once, memoized for its hive and workers.

    Each host resolves its own refs (`git ls-remote` in its own probe): what one host answers
    never decides what another builds (a host that lies, or a man in the middle on its way to
    the git server, picks nothing for the rest of the fleet).

    The first round trip reads no toolchain facts; a host with something to build gets a
    second one for them (its installs' preflight reads them from the memo), so a converged
    fleet costs one light probe per host."""

    def reached(found: dict[str, hostview.HostView | HostError]) -> dict[str, hostview.HostView]:
        for alias, view in found.items():
            if isinstance(view, HostError):
                report(f"build {alias}", f"could not inspect the host: {view}")
        return {alias: v for alias, v in found.items() if not isinstance(v, HostError)}

    seen = reached(await hostview.views_of(hosts))

    # `view` memoizes these facts for the host's preflight and installs
    building = [(a, specs) for a, specs in hosts if a in seen and to_build(specs, seen[a])]
    more = reached(await hostview.views_of(
        building, lambda specs: hostview.facts_only(hostview.need_of_all(specs))))
    for alias, full in more.items():
        view = seen[alias]
        seen[alias] = dataclasses.replace(
            view, need=dataclasses.replace(view.need, facts=True), facts=full.facts
        )
    return seen


async def kept_locks(
    hosts: Hosts, seen: dict[str, hostview.HostView], kept: dict[str, str], *, refresh: bool
) -> dict[str, str]:
    """The Cargo.lock of every commit the hosts build or hold, for the trees that have none:
    the one the stack kept (state), else one generated now on this machine (`source`); every
    host then builds that commit's same dependency graph, --locked. Keyed
    `<repository hash>@<commit>`, compressed. `refresh` (rbee:cargoLockRefresh changed)
    generates them all again. Also memoized for this run's builds (`source.LOCKS`)."""
    wanted: dict[str, tuple[InstallSpec, str]] = {}
    for alias, specs in hosts:
        for spec in specs:
            source_ = spec.source
            if alias not in seen or not isinstance(source_, GitSource) or spec.build is not None:
                continue
            try:
                commit = seen[alias].commit_for(spec)
            except HostError:
                continue
            wanted.setdefault(f"{layout.short_hash(source_.repo)}@{commit}", (spec, commit))
    locks: dict[str, str] = {}
    for key, (spec, commit) in sorted(wanted.items()):
        source_ = spec.source
        assert isinstance(source_, GitSource)
        needs = await source.needs_for(spec, commit)
        if needs is None or needs.cargo_lock:
            continue  # the tree could not be read here, or it has its own (built --locked)
        if key in kept and not refresh:
            locks[key] = kept[key]
        else:
            ref = (plan.git_ref_names(source_) or [commit])[0]
            try:
                text = await source.generate_lock(
                    source_.repo, ref, commit, cache.CARGO, label=f"build {spec.alias}",
                    lock_timeout=spec.lock_timeout,
                )
            except HostError as error:
                report(f"build {spec.alias}", f"no Cargo.lock kept for {commit[:12]} (each "
                       f"host resolves its own dependencies): {error.message}")
                continue
            report(f"build {spec.alias}", f"generated the Cargo.lock for {commit[:12]} on this "
                   "machine; every host builds it --locked")
            locks[key] = build_once.pack_lock(text)
        source.LOCKS[(layout.short_hash(source_.repo), commit)] = build_once.unpack_lock(
            locks[key]
        )
    return locks


_background: set[asyncio.Task[None]] = set()
# every job launched ahead by this provider process -> the install it is for; what is still in
# `git.KICKED` at the end, no install took up (see `report_left_running`)
LAUNCHED: dict[str, InstallSpec] = {}
EXIT_CHECK_SECONDS = 3.0  # the engine kills the provider 5 s after asking it to stop
STOP_HINT = "`rbee-infra builds --stop` stops it"


async def launch(hosts: Hosts, todo: list[dict[str, str]]) -> list[dict[str, str]]:
    """Register the planned jobs (`git.KICKED`), start them in the background (one round trip
    per host, all hosts at once) and return at once: the create holds a provider thread for
    milliseconds. An install that finds its job registered waits for that start instead of
    starting the job itself."""
    by_name = {s.resource_name: s for _, specs in hosts for s in specs}
    per_host: dict[str, list[tuple[dict[str, str], InstallSpec, asyncio.Future[str]]]] = {}
    for entry in todo:
        spec = by_name.get(entry["resource"])
        if spec is None:
            continue
        spec = spec.model_copy(
            update={"cargo": entry["cargo"], "build_mode": entry.get("buildMode", "")}
        )
        job = git.job_dir(spec, plan.install_id(spec), entry["commit"], False)
        if job in git.KICKED:
            continue
        git.KICKED[job] = asyncio.get_running_loop().create_future()
        if not LAUNCHED:
            atexit.register(report_left_running)
        LAUNCHED[job] = spec
        per_host.setdefault(spec.alias, []).append((entry, spec, git.KICKED[job]))
    for jobs in per_host.values():
        task = asyncio.ensure_future(_start(jobs))
        _background.add(task)
        task.add_done_callback(_background.discard)
    return [entry for jobs in per_host.values() for entry, _, _ in jobs]


async def _start(jobs: list[tuple[dict[str, str], InstallSpec, asyncio.Future[str]]]) -> None:
    """One host's START_JOBs in one round trip, in order (the hive's build takes the build
    lock first). Never fails: a job not started here is started by its install."""
    first = jobs[0][1]
    parts = [
        (scripts.START_JOB, git.start_args(spec, plan.install_id(spec), entry["commit"], False))
        for entry, spec, _ in jobs
    ]
    states = ["not started"] * len(jobs)
    try:
        async with remote.open_session(first) as session:
            for commit, spec in {entry["commit"]: spec for entry, spec, _ in jobs}.items():
                await git.send_lock(session, spec, commit)  # before the builds that use it
            results = await hostview.run_batch(session, parts, phase="build", timeout=120)
        states = [r.stdout.strip() if r.exit_status == 0 else "not started" for r in results]
    except HostError as error:
        report(f"build {first.alias}", f"could not start builds ahead: {error}")
    finally:
        for (entry, spec, done), state in zip(jobs, states, strict=True):
            report(spec.label, f"build of {spec.binary} at {entry['commit'][:12]}: {state} ahead")
            if not done.done():
                done.set_result(state)



def unclaimed() -> dict[str, InstallSpec]:
    """The jobs started ahead (their start answered) that no install has taken up."""
    out: dict[str, InstallSpec] = {}
    for job, spec in LAUNCHED.items():
        started = git.KICKED.get(job)
        if started is not None and started.done() and started.result() in ("started", "running"):
            out[job] = spec
    return out


def report_left_running() -> None:
    """At the provider server's exit: the engine stops it at the end of every run (done,
    failed, or cancelled with Ctrl-C), and what it prints then still reaches the operator.
    A build started ahead whose install never began (an earlier failure stopped the update,
    its hive failed, Ctrl-C) goes on on its host, detached by design, and the next `up` adopts
    it: say which, where, and how to stop it."""
    left = unclaimed()
    if not left:
        return
    try:
        found = pool.run(asyncio.wait_for(jobs.find(left), timeout=EXIT_CHECK_SECONDS))
    except (HostError, asyncio.TimeoutError):
        found = {}
    for job, spec in left.items():
        c = spec.connection
        where = f"{c.user}@{c.host}:{c.port}"
        seen = found.get(job)
        if job not in found or isinstance(seen, HostError):
            warn(spec.label, f"the build of {spec.binary} started ahead on {where} may still "
                 f"be running (no install took it up; job {job}); {STOP_HINT}")
        elif seen is None:
            continue  # gone
        elif seen.state == "running":
            warn(spec.label, f"build of {spec.binary} still running on {where} "
                 f"({seen.progress()}): no install took it up, it goes on and the next `up` "
                 f"adopts it; {STOP_HINT}")
        elif seen.state == "built":
            report(spec.label, f"build of {spec.binary} on {where} finished; the next `up` "
                   "installs it")


def _targets(props: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """alias -> (host, port) of each host entry: the machine as SSH knows it (its host key is
    the same whoever logs in)."""
    out: dict[str, tuple[Any, ...]] = {}
    for host in wire.host_entries(props) or []:
        c = host.get("connection") or {}
        out[str(host.get("alias"))] = tuple(plan.norm(c.get(k)) for k in ("host", "port"))
    return out


def _carries_credentials(specs: list[InstallSpec]) -> bool:
    return any(
        url_has_credentials(getattr(s.source, "repo", "") or getattr(s.source, "base_url", ""))
        for s in specs
    )


def _trusted_enough(hosts: Hosts) -> Hosts:
    """Under hostKeyPolicy "tofu": record the pins this kick-off holds (one per host for the
    stack, see `pins`), and leave out a host it would meet for the first time with a
    credential to send: the kick-off is created anew at times (its olds are then empty) while
    the host's hive holds a pin, and a token must never reach a host no one has vouched for.
    That host's hive and workers read it themselves, against their own pin."""
    kept: Hosts = []
    for alias, specs in hosts:
        first = specs[0]
        if known := pins.adopt(first, f"build {alias}"):
            specs = [s.model_copy(update={"trusted_host_key": known}) for s in specs]
        elif pins.first_use(first) and _carries_credentials(specs):
            report(f"build {alias}", "not read ahead: no pinned host key yet to send a token to")
            continue
        kept.append((alias, specs))
    return kept


class BuildKickoffProvider(ResourceProvider):
    """Starts the builds of every host (see the module docstring)."""

    serialize_as_secret_always = False

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs = {k: v for k, v in plan.public_props(news).items() if k not in ADDED}
        # hostKeyPolicy "tofu": a host's key seen first is kept while the host and port stay
        old_keys, old_targets = olds.get("trustedHostKeys") or {}, _targets(olds)
        kept = {
            alias: old_keys[alias]
            for alias, target in _targets(inputs).items()
            if old_keys.get(alias) and old_targets.get(alias) == target
        }
        inputs["trustedHostKeys"] = kept
        hosts, problems = specs_.hosts_of(inputs)
        if problems:
            return CheckResult(inputs, [CheckFailure(p, r) for p, r in problems])
        try:
            hosts = _trusted_enough(hosts)
        except HostKeyError as error:
            return CheckResult(inputs, [CheckFailure("trustedHostKeys", str(error))])
        seen = pool.run(survey(hosts)) if hosts else {}
        needs = pool.run(needs_of(hosts, seen)) if seen else {}
        refresh = bool(olds) and olds.get("cargoLockRefresh") != inputs.get("cargoLockRefresh")
        old_locks = olds.get("cargoLocks") or {}
        inputs["cargoLocks"] = (
            pool.run(kept_locks(hosts, seen, old_locks, refresh=refresh)) if seen else {}
        )
        todo: list[dict[str, str]] = []
        for alias, specs in hosts:
            view = seen.get(alias)
            if view is None:
                continue
            first = specs[0]
            if pins.first_use(first) and view.server_host_key:
                kept[alias] = view.server_host_key
                pins.record(first.connection, view.server_host_key, f"build {alias}")
            todo += pending(specs, view, needs)
        if todo:
            inputs["pending"] = todo
        return CheckResult(inputs, [])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        locks_changed = (olds.get("cargoLocks") or {}) != (news.get("cargoLocks") or {}) or (
            (olds.get("cargoLockRefresh") or "") != (news.get("cargoLockRefresh") or "")
        )
        return DiffResult(
            changes=bool(news.get("pending")) or locks_changed,
            replaces=[],
            stables=[],
            delete_before_replace=False,
        )

    def _kick(self, props: dict[str, Any]) -> dict[str, Any]:
        outs = {k: v for k, v in plan.public_props(props).items() if k != "pending"}
        todo = props.get("pending") or []
        hosts, _ = specs_.hosts_of(props)
        outs["started"] = pool.run(launch(hosts, todo)) if hosts and todo else []
        return outs

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult("build-kickoff", self._kick(props))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._kick(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Nothing on a host is its own: the jobs belong to the installs."""

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)
