"""The Build resource's provider: one build of a git source for every host that ships it.

`build: controller` (or `{builder: <alias>}`) turns a hive's or worker's git source into one
Build resource per (where, repository, ref, binary, features, cargo), which `pulumi preview`
lists on its own line: what will be built where. Its check resolves the ref on the operator's
machine and looks for the binary in the build cache; its diff is an update exactly when that
commit is not built yet (or the recorded binary is gone); its create/update builds it and
records the binary's cache key, sha256, commit, target triple, glibc and the Cargo.lock it was
built with, which every install that ships it takes as its `artifact` input (so a preview shows
those installs receiving a binary, not building one). Deleting it removes nothing: the cache is
pruned on purpose (`rbee-infra prune-builds`, see docs/build.md).

The provider is pickled by reference into stack state: keep `rbee_infra.stack.builds.
BuildProvider` where it is.
"""

from __future__ import annotations

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

from rbee_infra.base.errors import ConfigError, HostError
from rbee_infra.base.lazy import lazy
from rbee_infra.base.progress import report

if TYPE_CHECKING:
    from rbee_infra.config.spec import BuildRequest
    from rbee_infra.decide import plan
    from rbee_infra.host import pool
    from rbee_infra.install import build_once
else:  # the program imports this module only to pickle the class: see `lazy`
    build_once = lazy("rbee_infra.install.build_once")
    plan = lazy("rbee_infra.decide.plan")
    pool = lazy("rbee_infra.host.pool")

# what check adds to the inputs, and what create/update record
CHECKED = ("resolvedCommit", "cached", "preflight")
OUTPUTS = ("artifact", "cargoLock", "lockOrigin", "buildSeconds")
# inputs whose change means another binary
REBUILD = ("source", "binary", "features", "cargo", "build", "cargoLockRefresh")


def parse_request(props: dict[str, Any]) -> BuildRequest:
    from rbee_infra.config.spec import parse_request as parse

    return parse({k: v for k, v in props.items() if k not in (*CHECKED, *OUTPUTS)})


class BuildProvider(ResourceProvider):
    serialize_as_secret_always = False

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs = {
            k: v for k, v in plan.public_props(news).items() if k not in (*CHECKED, *OUTPUTS)
        }
        try:
            req = parse_request(inputs)
        except ConfigError as error:
            return CheckResult(inputs, [CheckFailure(p or "", r) for p, r in error.problems])
        try:
            commit = pool.run(build_once.resolve(req))
        except HostError as error:
            report(req.label, f"could not resolve {req.source.ref_kind} {req.source.ref!r}: "
                   f"{error.message}")
            old = (olds.get("artifact") or {}).get("commit")
            if old:
                inputs["resolvedCommit"] = old
            return CheckResult(inputs, [])
        inputs["resolvedCommit"] = commit
        inputs["cached"] = pool.run(build_once.cached(req, commit))
        if req.build.place == "controller" and not inputs["cached"]:  # a build to come
            try:
                problems = pool.run(build_once.preflight_here(req, commit))
            except HostError as error:
                problems = [f"what the build needs could not be read: {error.message}"]
            if problems:  # the preview lists them; `up` refuses the build before compiling
                inputs["preflight"] = problems
                for problem in problems:
                    report(req.label, f"preflight: {problem}")
        return CheckResult(inputs, [])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in REBUILD if plan.norm(olds.get(k)) != plan.norm(news.get(k))]
        recorded = olds.get("artifact") or {}
        commit = news.get("resolvedCommit")
        if commit and recorded.get("commit") != commit:
            changed.append("resolvedCommit")  # the ref moved: a new commit to build
        elif recorded.get("key") not in (news.get("cached") or []):
            changed.append("artifact")  # the recorded build is gone (or changed) here
        return DiffResult(changes=bool(changed), replaces=[], stables=[],
                          delete_before_replace=False)

    def _build(self, props: dict[str, Any], olds: dict[str, Any] | None) -> dict[str, Any]:
        req = parse_request(props)
        commit = props.get("resolvedCommit")
        if not isinstance(commit, str) or not commit:
            commit = pool.run(build_once.resolve(req))
        stored = None
        old = olds or {}
        refresh = bool(olds) and old.get("cargoLockRefresh") != props.get("cargoLockRefresh")
        if (old.get("artifact") or {}).get("commit") == commit and old.get("cargoLock"):
            stored = build_once.unpack_lock(old["cargoLock"])
        built = pool.run(build_once.build(req, commit, stored, refresh_lock=refresh))
        outs = {k: v for k, v in plan.public_props(props).items() if k not in CHECKED}
        outs.update(
            artifact=built.artifact.model_dump(mode="json"),
            cargoLock=build_once.pack_lock(built.lock) if built.lock else None,
            lockOrigin=built.lock_origin,
            buildSeconds=round(built.seconds, 1),
        )
        return outs

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._build(props, None)
        return CreateResult(f"build-{outs['artifact']['key']}", outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._build(news, olds))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """The built binary stays in the cache (pruned on purpose, see docs/build.md)."""

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)
