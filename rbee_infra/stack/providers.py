"""The dynamic providers. They are pickled by reference into stack state, so this module's
path is part of the state format: keep `rbee_infra.stack.providers.HiveProvider`/`WorkerProvider`.

Handlers run on the provider server's thread pool with no event loop: each call submits its
coroutine to the process's shared SSH loop (`pool`: one connection per host, shared by every
resource), and nothing (loop, connection) is kept on the provider object.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)
from pulumi.output import Unknown

from rbee_infra.base.errors import ConfigError, HostError, HostKeyError
from rbee_infra.base.lazy import lazy
from rbee_infra.base.progress import report
from rbee_infra.stack.provider_server import quiet_expected_errors

if TYPE_CHECKING:
    from rbee_infra.config.spec import InstallSpec
    from rbee_infra.decide import plan, preflight
    from rbee_infra.host import pins, pool, prune
    from rbee_infra.install import lifecycle, source
else:  # the program imports this module only to pickle the classes: see `lazy`
    lifecycle = lazy("rbee_infra.install.lifecycle")
    source = lazy("rbee_infra.install.source")
    pins = lazy("rbee_infra.host.pins")
    plan = lazy("rbee_infra.decide.plan")
    pool = lazy("rbee_infra.host.pool")
    preflight = lazy("rbee_infra.decide.preflight")
    prune = lazy("rbee_infra.host.prune")

# the provider server imports this module when it loads a provider: from then on it reports
# an expected error as its message (see `provider_server`)
quiet_expected_errors()


def parse_spec(data: dict[str, Any]) -> InstallSpec:
    from rbee_infra.config.spec import parse_spec as parse

    return parse(data)

INPUT_ONLY = ("resolvedCommit", "hostState", "pruneExtras", "serviceState", "preflight")
# A change of these restarts (or stops) the hive's service without a reinstall.
SERVICE_KEYS = {"autoStart", "hivePort", "queenUrl", "serviceState"}


T = TypeVar("T")


def _run(spec: InstallSpec, operation: Coroutine[Any, Any, T]) -> T:
    """Run one handler's host work on the shared loop, bounded by `operationTimeout`."""

    async def bounded() -> T:
        try:
            return await asyncio.wait_for(operation, timeout=spec.operation_timeout)
        except asyncio.TimeoutError:
            raise HostError(
                spec.label, "operation", f"did not finish within {spec.operation_timeout:.0f}s"
            ) from None

    return pool.run(bounded())



def _spec(props: dict[str, Any]) -> InstallSpec:
    return parse_spec({k: v for k, v in plan.public_props(props).items() if k not in plan_keys()})


def plan_keys() -> tuple[str, ...]:
    """Keys the provider adds (from check or an install) that are not part of the spec."""
    outputs = (
        "installId",
        "releaseId",
        "commit",
        "version",
        "verifiedBy",
        "sha256",
        "installPath",
        "extras",
        "phaseSeconds",
        "cargoLockSha256",
        "hostFacts",
        "service",
    )
    return (*INPUT_ONLY, *outputs)


def _extras(spec: InstallSpec, planned: Any) -> dict[str, Any]:
    """Hive only: remove what the preview listed to prune (pruneUnmanaged), list what is left."""
    if spec.component != "hive":
        return {}
    left = _run(spec, prune.settle(spec, planned if isinstance(planned, list) else []))
    return {"extras": left, **({"pruneExtras": []} if spec.prune_unmanaged else {})}


def _same_host(olds: dict[str, Any], news: dict[str, Any]) -> bool:
    """The same machine as SSH knows it: its host key is the same whoever logs in."""
    old, new = olds.get("connection") or {}, news.get("connection") or {}
    keys = ("host", "port")
    return bool(old) and all(plan.norm(old.get(k)) == plan.norm(new.get(k)) for k in keys)


class _InstallProvider(ResourceProvider):
    serialize_as_secret_always = False

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs = {k: v for k, v in plan.public_props(news).items() if k not in plan_keys()}
        # the key the stack pinned for this host before, from its state (see `program`)
        stacks = inputs.pop("trustedHostKey", None)
        stacks = stacks if isinstance(stacks, str) and stacks else None
        if isinstance(inputs.get("artifact"), Unknown):
            del inputs["artifact"]  # its Build runs first in this `up`: a new binary to come
        if _same_host(olds, inputs) and olds.get("trustedHostKey"):
            inputs["trustedHostKey"] = olds["trustedHostKey"]
        elif stacks:
            inputs["trustedHostKey"] = stacks
        try:
            spec = parse_spec(inputs)
        except ConfigError as error:
            return CheckResult(inputs, [CheckFailure(p or "", r) for p, r in error.problems])
        try:  # one pin per host for the whole stack (see `pins`)
            c = spec.connection
            tofu = c.host_key_policy == "tofu" and not c.host_key
            if tofu and stacks and stacks != spec.trusted_host_key:
                pins.record(c, stacks, spec.label)  # its own pin differs: `adopt` refuses
            if known := pins.adopt(spec, spec.label):
                inputs["trustedHostKey"] = known
                spec = parse_spec(inputs)
        except HostKeyError as error:
            return CheckResult(inputs, [CheckFailure("trustedHostKey", str(error))])
        try:
            observed = _run(spec, lifecycle.observe(spec))
            # Only a state worth acting on becomes an input: an in-sync host adds nothing, so
            # recorded inputs do not churn and previews show just real changes.
            creating = not plan.public_props(olds)
            quiet = {plan.IN_SYNC, plan.NOT_INSTALLED} if creating else {plan.IN_SYNC}
            if observed.host_state not in quiet:
                inputs["hostState"] = observed.host_state
            if observed.resolved_commit:
                inputs["resolvedCommit"] = observed.resolved_commit
            if pins.first_use(spec) and observed.host_key:
                report(spec.label, "trusting the host key seen on first use")
                pins.record(spec.connection, observed.host_key, spec.label)
                inputs["trustedHostKey"] = observed.host_key
            if spec.prune_unmanaged and observed.extras:
                inputs["pruneExtras"] = list(observed.extras)
            # What the host lacks matters only when something is to be installed; then the
            # preview lists it and `up` stops at preflight.
            installing = creating or plan.decide_diff(plan.public_props(olds), inputs).reinstall
            needs = None
            if installing and preflight.builds_here(spec):  # what the tree needs, read here
                needs = _run(spec, source.needs_for(spec, observed.resolved_commit))
            problems = _run(spec, lifecycle.preflight_problems(spec, needs)) if installing else []
            if problems:
                inputs["preflight"] = problems
                for problem in problems:
                    report(spec.label, f"preflight: {problem}")
            if observed.service is not None and not creating:
                inputs["serviceState"] = observed.service
        except ConfigError as error:
            return CheckResult(inputs, [CheckFailure(p or "", r) for p, r in error.problems])
        except HostError as error:
            # Preview still shows the plan; the host problem is the reason for the update.
            report(spec.label, f"could not inspect the host: {error}")
            inputs["hostState"] = f"unreachable: {error.phase} failed"
            if "resolvedCommit" in olds:
                inputs["resolvedCommit"] = olds["resolvedCommit"]
        return CheckResult(inputs, [])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        decision = plan.decide_diff(plan.public_props(olds), plan.public_props(news))
        return DiffResult(
            changes=decision.changes,
            replaces=decision.replaces,
            stables=[],
            delete_before_replace=False,
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        spec = _spec(props)
        installed = _run(spec, lifecycle.install(spec, updating=False))
        outs = {**plan.public_props(props), **installed.outputs()}
        outs.update(lifecycle.service_outputs(spec, installed.hive_service))
        outs.pop("preflight", None)
        outs.update(_extras(spec, props.get("pruneExtras")))
        return CreateResult(installed.install_id, outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        spec = _spec(news)
        decision = plan.decide_diff(plan.public_props(olds), plan.public_props(news))
        if not decision.reinstall:
            kept = {k: olds[k] for k in plan_keys() if k in olds and k != "pruneExtras"}
            outs = {**plan.public_props(news), **kept, "hostState": plan.IN_SYNC}
            if spec.component == "hive" and SERVICE_KEYS & set(decision.changed):
                outs.update(_run(spec, lifecycle.reconcile_service(spec)))
        else:
            fresh = "reinstallTrigger" in decision.changed
            installed = _run(spec, lifecycle.install(spec, updating=True, fresh=fresh))
            outs = {**plan.public_props(news), **installed.outputs()}
            outs.update(lifecycle.service_outputs(spec, installed.hive_service))
            if spec.component == "hive" and not spec.auto_start and "autoStart" in decision.changed:
                outs.update(_run(spec, lifecycle.reconcile_service(spec)))  # stops it
        if not spec.auto_start:
            outs.pop("serviceState", None)
        outs.pop("preflight", None)
        outs.update(_extras(spec, news.get("pruneExtras")))
        return UpdateResult(outs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        spec = _spec(props)
        _run(spec, lifecycle.remove(spec, props.get("releaseId")))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        spec = _spec(props)
        reading = _run(spec, lifecycle.read_host(spec))
        installed = reading.installed
        if installed is None:
            return ReadResult("", {})
        outs = dict(plan.public_props(props))
        outs["hostFacts"] = preflight.host_facts_output(reading.facts)
        outs.update(lifecycle.service_outputs(spec, reading.hive_service))
        outs["hostState"] = installed.drift() or plan.IN_SYNC
        if installed.sha256:
            outs["sha256"] = installed.sha256
        if installed.release_id:
            outs["releaseId"] = installed.release_id
        if spec.component == "hive":
            outs["extras"] = _run(spec, prune.listed(spec))
        return ReadResult(id_, outs)


class HiveProvider(_InstallProvider):
    """Installs `rbee-hive` at ~/.local/bin/rbee-hive."""


class WorkerProvider(_InstallProvider):
    """Installs one worker at ~/.local/share/rbee/workers/rbee-worker-<type>."""
