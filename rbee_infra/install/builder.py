"""`build: {builder: <alias>}`: a git source built once on one hive's host, for every host that
installs it (a CUDA build on the box with the toolkit, say).

The commit is resolved on the operator's machine, and so is the Cargo.lock of a tree without
one (`source`): the builder builds what this machine decided. It builds with the same detached,
resumable build job as a build on a host (`build_job.sh`), into its cache,
`~/.local/share/rbee/artifacts/<key>/` with a `build.json` saying what it is; `destroy` leaves
it there. The binary is then fetched to this machine (its sha256 checked against the builder's)
and shipped to each host like a controller build (`build_once.stage`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rbee_infra.base import layout
from rbee_infra.base.errors import CommandError, HostError
from rbee_infra.base.progress import report
from rbee_infra.config.spec import Artifact, BuildRequest, InstallSpec, parse_spec
from rbee_infra.decide import plan, preflight
from rbee_infra.decide.buildneeds import BuildNeeds
from rbee_infra.decide.facts import HostFacts, parse_artifacts
from rbee_infra.host import scripts
from rbee_infra.host.remote import Link, probe
from rbee_infra.install import cache, git, source, transfer


def _builder_spec(req: BuildRequest) -> InstallSpec:
    """The build as the host-side build steps know one (a worker-shaped spec on the builder's
    connection; its install name is never used as a path: the binary goes to the cache)."""
    place = req.build
    assert place.place == "builder" and place.builder and place.builder_connection
    return parse_spec({
        "alias": place.builder,
        "component": "worker",
        "workerType": "build",
        "binary": req.binary,
        "features": req.features,
        "source": req.source.model_dump(by_alias=True, exclude_none=True),
        "connection": place.builder_connection.model_dump(by_alias=True, exclude_none=True),
        "cargo": req.cargo,
        "stack": req.stack,
        "resourceName": req.resource_name,
        "buildTimeout": req.build_timeout,
        "lockTimeout": req.lock_timeout,
        "operationTimeout": req.operation_timeout,
    })


def _on_builder(req: BuildRequest, error: HostError) -> HostError:
    """An error of the builder's, named as the Build's, with the builder and the phase."""
    return HostError(req.label, error.phase, f"on builder {req.build.builder}: {error.message}")


def _matching(req: BuildRequest, commit: str, key: str, sha: str, meta: dict[str, object]
              ) -> bool:
    art = meta.get("artifact")
    return (
        isinstance(art, dict)
        and art.get("commit") == commit
        and art.get("key") == key
        and art.get("sha256") == sha
        and meta.get("repo") == layout.short_hash(req.source.repo)
        and meta.get("binary") == req.binary
        and meta.get("features") == sorted(req.features)
    )


async def cached_keys(req: BuildRequest, commit: str) -> list[str]:
    """The cache keys of the builds of `req` at `commit` the builder keeps, intact (read-only)."""
    spec = _builder_spec(req)
    try:
        async with Link(spec) as link:
            listing = await link.run(scripts.ARTIFACTS, req.binary, phase="probe", timeout=120)
    except HostError as error:
        raise _on_builder(req, error) from None
    return [key for key, sha, meta in parse_artifacts(listing.stdout)
            if _matching(req, commit, key, sha, meta)]


async def build(
    req: BuildRequest, commit: str, stored_lock: str | None, *, refresh_lock: bool = False
) -> cache.Built:
    """Build `req` at `commit` on the builder (or find it built there under its key), then
    fetch the binary to this machine, from where it is shipped."""
    try:
        return await _build(req, commit, stored_lock, refresh_lock)
    except HostError as error:
        raise (_on_builder(req, error) if error.host != req.label else error) from None


async def _build(
    req: BuildRequest, commit: str, stored_lock: str | None, refresh_lock: bool
) -> cache.Built:
    started = time.monotonic()
    spec = _builder_spec(req)
    ref = (plan.git_ref_names(req.source) or [commit])[0]
    needs = await source.needs_at(req.source.repo, ref, commit, req.binary, label=req.label,
                                  lock_timeout=req.lock_timeout)
    lock, origin = "", "repository"
    if not needs.cargo_lock:  # this machine decides the dependency graph, not the builder
        lock = (stored_lock if not refresh_lock else None) or ""
        origin = "state"
        if not lock:
            lock = await source.generate_lock(req.source.repo, ref, commit, cache.CARGO,
                                              label=req.label, lock_timeout=req.lock_timeout)
            origin = "generated"
        source.LOCKS[(layout.short_hash(req.source.repo), commit)] = lock
    async with Link(spec) as link:
        assert link.session is not None
        facts = await probe(link.session, spec)
        problems = preflight.preflight_problems(spec, facts, needs)
        if problems:
            raise HostError(spec.label, "preflight", preflight.describe(problems))
        triple = facts.rust_host
        if not triple:
            raise HostError(spec.label, "probe", f"{req.cargo}'s rustc names no host triple")
        key = cache.cache_key(commit, req.binary, req.features, triple, lock)
        stage = layout.artifact_dir(key)
        listing = await link.run(scripts.ARTIFACTS, req.binary, phase="probe", timeout=120)
        kept = {k: (sha, meta) for k, sha, meta in parse_artifacts(listing.stdout)}
        if key in kept and _matching(req, commit, key, *kept[key]):
            art = Artifact.model_validate(kept[key][1]["artifact"])
            report(req.label, f"{req.binary} at {commit[:12]} is already built on builder "
                   f"{req.build.builder} ({key})")
        else:
            build_spec = spec.model_copy(update={"build_mode": needs.build_mode})
            art = await _build_there(link, req, build_spec, commit, key, stage, facts, origin,
                                     needs)
        local = cache.artifact_file(key, req.binary)
        if not local.is_file() or transfer.sha256_file(local) != art.sha256:
            await _fetch(link, req, art, f"{stage}/{req.binary}", local)
    return cache.Built(art, lock, origin, time.monotonic() - started)


async def _build_there(
    link: Link, req: BuildRequest, spec: InstallSpec, commit: str, key: str, stage: str,
    facts: HostFacts, origin: str, needs: BuildNeeds,
) -> Artifact:
    """Run the build job on the builder into its cache dir for `key`, and record what it is."""
    iid = layout.short_hash(req.stack, req.resource_name, spec.connection.host,
                            str(spec.connection.port), spec.connection.user)
    job = git.job_dir(spec, iid, commit, False)
    report(req.label, f"building {req.binary} at {commit[:12]} on builder {req.build.builder} "
           f"({origin} Cargo.lock)")
    await git.send_lock(link, spec, commit)
    await link.run(scripts.START_JOB, *git.start_args(spec, iid, commit, False, stage=stage),
                   phase="build", timeout=60)
    fields = await git.wait_job(link, spec, job)
    if fields.get("exit") != "0":
        log = await link.run(scripts.JOB_LOG, job, str(git.LOG_LINES), phase="build",
                             check=False)
        what = f"cargo build --release --bin {req.binary}"
        raise CommandError(spec.label, fields.get("phase") or "build",
                           int(fields["exit"]) if fields.get("exit", "").isdigit() else None,
                           git.useful_tail(log.stdout), what)
    sha = (await link.run(scripts.ARTIFACT_META, stage, req.binary, phase="install",
                          timeout=120)).stdout.strip()
    art = Artifact(
        key=key, sha256=sha, commit=commit, triple=facts.rust_host, glibc=facts.glibc or None,
        package=needs.crate or None, version=needs.version or None,
    )
    meta = {"artifact": art.model_dump(mode="json"), "lockOrigin": origin,
            "repo": layout.short_hash(req.source.repo), "binary": req.binary,
            "features": sorted(req.features), "builtAt": time.time()}
    await link.run(scripts.ARTIFACT_META, stage, req.binary, stdin=json.dumps(meta),
                   phase="install", timeout=120)
    return art


async def _fetch(link: Link, req: BuildRequest, art: Artifact, remote: str, local: Path) -> None:
    """The builder's binary to this machine's cache, checked against the builder's sha256."""
    incoming = local.with_name(local.name + ".incoming")
    local.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    assert link.session is not None
    await link.session.download(remote, incoming)
    got = transfer.sha256_file(incoming)
    if got != art.sha256:
        incoming.unlink(missing_ok=True)
        raise HostError(req.label, "download", transfer.mismatch(
            f"{req.binary} from builder {req.build.builder}", got, art.sha256, "the builder"))
    incoming.chmod(0o755)
    incoming.rename(local)
    (local.parent / "build.json").write_text(json.dumps({
        "artifact": art.model_dump(mode="json"), "repo": layout.short_hash(req.source.repo),
        "binary": req.binary, "features": sorted(req.features), "builtAt": time.time(),
        "builtOn": f"builder {req.build.builder}"}))


async def fetch_artifact(spec: InstallSpec) -> Path:
    """Where this machine holds the builder's binary for `spec`: fetched by its Build, else
    (another machine ran the Build, or the cache was pruned) from the builder now."""
    art, place = spec.artifact, spec.build
    assert art is not None and place is not None
    local = cache.artifact_file(art.key, spec.binary)
    if local.is_file() and transfer.sha256_file(local) == art.sha256:
        return local
    req = BuildRequest(source=spec.source, binary=spec.binary, features=spec.features,
                       cargo=spec.cargo, build=place, stack=spec.stack,
                       resource_name=spec.resource_name, lock_timeout=spec.lock_timeout)
    try:
        async with Link(_builder_spec(req)) as link:
            await _fetch(link, req, art, f"{layout.artifact_dir(art.key)}/{spec.binary}", local)
    except HostError as error:
        raise HostError(spec.label, "download", f"the build on builder {place.builder}: "
                        f"{error.message}") from None
    return local
