"""Start every build of a host at once, ahead of the installs that wait for them.

The SDK's dynamic-provider server runs at most 4 handler calls at a time (a fixed thread pool),
and an install's create holds its thread while its build runs. Without help, only 4 hosts would
build at once, however many the engine schedules. One `BuildKickoff` per host (declared first;
the hive depends on it) is quick: its create/update starts the detached build job of every
binary on the host that needs one (`git.start_job`, the same deterministic job the install
would start) and returns. All hosts build at once; each install then only waits for its job
(or finds it done). On one host the jobs take turns on the host lock; they share the checkout
and the cargo target dir, so the workers build incrementally after the hive.

It is an optimisation, never a source of truth: its check reads the host (one batched probe,
`hostview`, which the host's other resources then reuse) and plans a build only where the
install would do the same one; anything it skips or fails to start, the install does itself.
Its diff is "update" exactly when some binary on the host is to be built, so a converged stack
previews as no change; preview never calls its create/update, so a preview changes no host.

The provider is pickled by reference into stack state: keep `rbee_infra.kickoff.
BuildKickoffProvider` where it is.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from rbee_infra import hostview, layout, plan, pool, preflight, scripts
from rbee_infra.config import GitSource
from rbee_infra.errors import ConfigError, HostError
from rbee_infra.facts import HostFacts
from rbee_infra.install import git
from rbee_infra.progress import report
from rbee_infra.remote import open_session
from rbee_infra.spec import InstallSpec, parse_spec

ADDED = ("pending", "started", "trustedHostKey")  # what check/create add to the inputs


def specs_of(props: dict[str, Any]) -> tuple[list[InstallSpec], list[tuple[str, str]]]:
    """The host's installs as the hive and workers will see them, or the problems."""
    specs: list[InstallSpec] = []
    problems: list[tuple[str, str]] = []
    for i, item in enumerate(props.get("installs") or []):
        data = {**item, "alias": props.get("alias"), "connection": props.get("connection")}
        if props.get("trustedHostKey"):
            data["trustedHostKey"] = props["trustedHostKey"]
        try:
            specs.append(parse_spec(data))
        except ConfigError as error:
            problems += [
                (f"installs[{i}].{p}" if p else f"installs[{i}]", r) for p, r in error.problems
            ]
    return specs, problems


def build_cargo(spec: InstallSpec, facts: HostFacts) -> str | None:
    """The cargo the install will build with (as `lifecycle` preflight decides), or None when
    the install must act first (a preflight problem, or rustup to install)."""
    if preflight.preflight_problems(spec, facts):
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


def pending(specs: list[InstallSpec], seen: hostview.HostView) -> list[dict[str, str]]:
    """The builds to start now, hive first: one per git binary the install would build."""
    todo: list[dict[str, str]] = []
    for spec in sorted(specs, key=lambda s: s.component != "hive"):
        if not isinstance(spec.source, GitSource):
            continue
        try:
            commit = seen.commit_for(spec)
        except HostError:
            continue  # the install reports it
        cargo = build_cargo(spec, seen.facts)
        if cargo is None or settled(spec, commit, seen.facts):
            continue
        todo.append(
            {
                "resource": spec.resource_name,
                "binary": spec.binary,
                "commit": commit,
                "cargo": cargo,
            }
        )
    return todo


_background: set[asyncio.Task[None]] = set()


async def launch(specs: list[InstallSpec], todo: list[dict[str, str]]) -> list[dict[str, str]]:
    """Register the planned jobs (`git.KICKED`), start them in the background, return at once:
    the kick-off's create holds a provider thread for milliseconds, not a round trip. An
    install that finds its job registered waits for that start instead of starting it."""
    by_name = {s.resource_name: s for s in specs}
    jobs: list[tuple[dict[str, str], InstallSpec, asyncio.Future[str]]] = []
    for entry in todo:
        spec = by_name.get(entry["resource"])
        if spec is None:
            continue
        spec = spec.model_copy(update={"cargo": entry["cargo"]})
        job = git.job_dir(spec, plan.install_id(spec), entry["commit"], False)
        if job in git.KICKED:
            continue
        git.KICKED[job] = asyncio.get_running_loop().create_future()
        jobs.append((entry, spec, git.KICKED[job]))
    if jobs:
        task = asyncio.ensure_future(_start(specs[0], jobs))
        _background.add(task)
        task.add_done_callback(_background.discard)
    return [entry for entry, _, _ in jobs]


async def _start(
    first: InstallSpec, jobs: list[tuple[dict[str, str], InstallSpec, asyncio.Future[str]]]
) -> None:
    """The planned jobs' START_JOBs in one round trip, in order (the hive's build takes the
    build lock first). Never fails: a job not started here is started by its install."""
    parts = [
        (scripts.START_JOB, git.start_args(spec, plan.install_id(spec), entry["commit"], False))
        for entry, spec, _ in jobs
    ]
    states = ["not started"] * len(jobs)
    try:
        async with open_session(first) as session:
            results = await hostview.run_batch(session, parts, phase="build", timeout=120)
        states = [r.stdout.strip() if r.exit_status == 0 else "not started" for r in results]
    except HostError as error:
        report(f"build {first.alias}", f"could not start builds ahead: {error}")
    finally:
        for (entry, spec, done), state in zip(jobs, states, strict=True):
            report(spec.label, f"build of {spec.binary} at {entry['commit'][:12]}: {state} ahead")
            if not done.done():
                done.set_result(state)


def _public(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if not k.startswith("__")}


def _same_target(olds: dict[str, Any], news: dict[str, Any]) -> bool:
    old, new = olds.get("connection") or {}, news.get("connection") or {}
    keys = ("host", "port", "user")
    return bool(old) and all(plan.norm(old.get(k)) == plan.norm(new.get(k)) for k in keys)


class BuildKickoffProvider(ResourceProvider):
    """Starts the builds of one host (see the module docstring)."""

    serialize_as_secret_always = False

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs = {k: v for k, v in _public(news).items() if k not in ADDED}
        if _same_target(olds, inputs) and olds.get("trustedHostKey"):
            inputs["trustedHostKey"] = olds["trustedHostKey"]
        specs, problems = specs_of(inputs)
        if problems:
            return CheckResult(inputs, [CheckFailure(p, r) for p, r in problems])
        if not specs:
            return CheckResult(inputs, [])
        try:
            need = hostview.need_of_all(specs)
            seen = pool.run(hostview.view(specs[0], need, specs=specs))
        except HostError as error:
            report(f"build {specs[0].alias}", f"could not inspect the host: {error}")
            return CheckResult(inputs, [])
        first = specs[0]
        tofu = first.connection.host_key_policy == "tofu" and not first.connection.host_key
        if tofu and not first.trusted_host_key and seen.server_host_key:
            inputs["trustedHostKey"] = seen.server_host_key
        todo = pending(specs, seen)
        if todo:
            inputs["pending"] = todo
        return CheckResult(inputs, [])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(
            changes=bool(news.get("pending")),
            replaces=[],
            stables=[],
            delete_before_replace=False,
        )

    def _kick(self, props: dict[str, Any]) -> dict[str, Any]:
        outs = {k: v for k, v in _public(props).items() if k != "pending"}
        todo = props.get("pending") or []
        specs, _ = specs_of(props)
        outs["started"] = pool.run(launch(specs, todo)) if specs and todo else []
        return outs

    def create(self, props: dict[str, Any]) -> CreateResult:
        c = props.get("connection") or {}
        ident = layout.short_hash(
            str(props.get("alias")), str(c.get("host")), str(c.get("port")), str(c.get("user"))
        )
        return CreateResult(f"build-{ident}", self._kick(props))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._kick(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Nothing on the host is its own: the jobs belong to the installs."""

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)
