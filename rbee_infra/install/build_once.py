"""Build once, install everywhere.

With `build: controller` a git source is built on the operator's machine (what rbee's own SSH
install does), with `build: {builder: <alias>}` on that hive's host (a CUDA build on a box with
the toolkit); every host that installs it then receives the binary over the upload path
(`transfer.upload_binary`: sha256 checked on the host before anything is switched) instead of
building it. One build per cache key: (commit, binary, features, target triple, Cargo.lock),
kept where it was built, so a re-run or a new host does not rebuild. A host whose platform
differs from the build's (target triple, or a glibc older than the builder's) is refused at
preflight (`preflight.shipped_problems`), never given a binary that cannot run there.

The Build resource (`stack/builds.py`) runs `build`; the Hive and Worker resources that ship it
stage with `stage` (see `lifecycle.STAGERS`).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from rbee_infra.base import layout
from rbee_infra.base.errors import HostError
from rbee_infra.base.progress import report
from rbee_infra.config.spec import Artifact, BuildRequest, InstallSpec
from rbee_infra.decide import buildneeds, plan, preflight, verify
from rbee_infra.host import controller
from rbee_infra.host.remote import Link
from rbee_infra.install import Staged, builder, source, transfer
from rbee_infra.install.cache import CARGO, Built, artifact_file, cache_key

PROGRESS_EVERY = 20.0


# -------------------------------------------------------------------- this machine's platform


@dataclass(frozen=True)
class Platform:
    triple: str
    glibc: str | None


_GLIBC = re.compile(r"(\d{1,3}\.\d{1,3})")


def parse_host_triple(rustc_vv: str) -> str:
    for line in rustc_vv.splitlines():
        if line.startswith("host:"):
            return line.split(":", 1)[1].strip()
    return ""


def parse_glibc(text: str) -> str | None:
    """`glibc 2.36` (getconf GNU_LIBC_VERSION) or `ldd (Debian GLIBC 2.36-9) 2.36` -> 2.36."""
    found = _GLIBC.findall(text.splitlines()[0]) if text.strip() else []
    return found[-1] if found else None


async def local_platform(label: str) -> Platform:
    rustc = shutil.which("rustc") or "rustc"
    done = await controller.run([rustc, "-vV"], label=label, phase="probe", timeout=60)
    triple = parse_host_triple(done.stdout)
    libc = await controller.run(["getconf", "GNU_LIBC_VERSION"], label=label, phase="probe",
                                check=False, timeout=30)
    glibc = parse_glibc(libc.stdout) if libc.code == 0 and "gnu" in triple else None
    if not triple:
        raise HostError(label, "probe", "rustc -vV on this machine names no host triple")
    return Platform(triple, glibc)


# -------------------------------------------------------------------- the lockfile


def pack_lock(text: str) -> str:
    import base64
    import zlib

    return base64.b64encode(zlib.compress(text.encode(), 9)).decode()


def unpack_lock(packed: str) -> str:
    import base64
    import zlib

    return zlib.decompress(base64.b64decode(packed)).decode()


async def lockfile(
    req: BuildRequest, checkout: Path, stored: str | None, *, refresh: bool
) -> tuple[str, str]:
    """(the Cargo.lock this build uses, where it comes from): the repository's own, else the
    one kept in state for this commit (`stored`), else one generated now on this machine."""
    own = checkout / "Cargo.lock"
    if own.is_file():
        return own.read_text(), "repository"
    if stored and not refresh:
        own.write_text(stored)
        return stored, "state"
    await source.run_generate_lockfile(CARGO, checkout, label=req.label,
                                       timeout=req.build_timeout)
    return own.read_text(), "generated"


# -------------------------------------------------------------------- the commit


async def resolve(req: BuildRequest) -> str:
    """The commit `req`'s ref names now, resolved on this machine (trusted: it holds the
    credentials and no host answers for another)."""
    source = req.source
    if source.rev:
        return source.rev
    listing = await controller.ls_remote(source.repo, plan.git_ref_names(source), label=req.label)
    return plan.commit_of(source, req.label, listing)


def cached_keys(req: BuildRequest, commit: str) -> list[str]:
    """The cache keys of the builds of `req` at `commit` kept on this machine and intact (their
    binary still has the sha256 recorded when it was built)."""
    keys: list[str] = []
    root = controller.cache_root() / "artifacts"
    wanted = {"repo": layout.short_hash(req.source.repo), "binary": req.binary,
              "features": sorted(req.features)}
    for meta in sorted(root.glob("*/build.json")) if root.is_dir() else []:
        try:
            found = json.loads(meta.read_text())
            art = Artifact.model_validate(found["artifact"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if art.commit != commit or any(found.get(k) != v for k, v in wanted.items()):
            continue
        binary = meta.parent / req.binary
        if binary.is_file() and transfer.sha256_file(binary) == art.sha256:
            keys.append(art.key)
    return keys


async def cached(req: BuildRequest, commit: str) -> list[str]:
    """`cached_keys` where `req` is built (read-only: safe during preview)."""
    if req.build.place == "builder":
        return await builder.cached_keys(req, commit)
    return await asyncio.to_thread(cached_keys, req, commit)


# Cargo.locks made or read in this run, per (repository, commit): the hive's and the workers'
# builds of one commit share one dependency graph.
LOCKS: dict[tuple[str, str], tuple[str, str]] = {}  # -> (the lock, where it came from)


# -------------------------------------------------------------------- the build, here


def _build_path() -> str:
    """PATH for a build here: the user's prefixes of the build tools (pnpm in ~/.local/bin,
    wasm-pack in ~/.cargo/bin), as the build job has them on a host."""
    home = Path.home()
    return os.pathsep.join([str(home / ".local" / "bin"), os.environ.get("PATH", ""),
                            str(home / ".cargo" / "bin")])


def rustc_beside(cargo: str) -> dict[str, str]:
    """RUSTC for a cargo given by path, the rustc installed beside it (as the build job does on a
    host): left to PATH, rustc may be rustup's proxy, which picks a toolchain per crate by the
    directory cargo runs it in, and crates built by two compilers do not link (E0514)."""
    if os.sep not in cargo:
        return {}
    rustc = Path(cargo).parent / "rustc"
    return {"RUSTC": str(rustc)} if os.access(rustc, os.X_OK) else {}


async def preflight_here(req: BuildRequest, commit: str) -> list[str]:
    """For the preview: what this machine lacks to build `req` at `commit` (read-only but for
    the fetch into this machine's cache)."""
    ref = (plan.git_ref_names(req.source) or [commit])[0]
    needs = await source.needs_at(req.source.repo, ref, commit, req.binary, label=req.label,
                                  lock_timeout=req.lock_timeout)
    return await problems_here(req, needs)


async def problems_here(req: BuildRequest, needs: buildneeds.BuildNeeds) -> list[str]:
    """What this machine lacks to build `req` (its tree's needs: Node.js, pnpm, wasm-pack,
    Rust targets), as a host's preflight would say it."""
    facts = await controller.probe(CARGO, label=req.label)
    user = facts.user or getpass.getuser()
    return [f"on this machine: {p}" for p in buildneeds.needs_problems(needs, facts, user)]


async def _progress(label: str, binary: str, log: Path, started: float) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY)
        try:
            text = log.read_text(errors="replace")
        except OSError:
            continue
        crates = text.count("Compiling ")
        report(label, f"building {binary} on this machine: {crates} crates compiled, "
               f"{time.monotonic() - started:.0f}s")


async def build(
    req: BuildRequest, commit: str, stored_lock: str | None, *, refresh_lock: bool = False
) -> Built:
    """Build `req` at `commit` on this machine (or on its builder hive: `builder`), or find it
    built under its cache key. `stored_lock`: the Cargo.lock state keeps for this commit (used
    unless `refresh_lock`)."""
    if req.build.place == "builder":
        return await builder.build(req, commit, stored_lock, refresh_lock=refresh_lock)
    label = req.label
    ref = (plan.git_ref_names(req.source) or [commit])[0]
    started = time.monotonic()
    here = await local_platform(label)
    folder = await controller.fetch(req.source.repo, ref, commit, label=label,
                                    lock_timeout=req.lock_timeout)
    async with controller.repo_lock(req.source.repo, label=label, timeout=req.lock_timeout):
        checkout = await controller.checkout(folder, commit, label=label)
        shared = (layout.short_hash(req.source.repo), commit)
        if shared in LOCKS and (not refresh_lock or LOCKS[shared][1] == "generated"):
            lock, origin = LOCKS[shared]  # a sibling build of this commit made or read it
            if origin != "repository":
                (checkout / "Cargo.lock").write_text(lock)
        else:
            lock, origin = await lockfile(req, checkout, stored_lock, refresh=refresh_lock)
            LOCKS[shared] = (lock, origin)
        key = cache_key(commit, req.binary, req.features, here.triple, lock)
        target = artifact_file(key, req.binary)
        meta = target.parent / "build.json"
        if target.is_file() and meta.is_file():
            found = json.loads(meta.read_text())
            report(label, f"{req.binary} at {commit[:12]} is already built here ({key})")
            return Built(Artifact.model_validate(found["artifact"]), lock, origin, 0.0)
        needs = await source.needs_at(req.source.repo, ref, commit, req.binary, label=label,
                                      lock_timeout=req.lock_timeout)
        problems = await problems_here(req, needs)
        if problems:
            raise HostError(label, "preflight", preflight.describe(problems))
        env = {"CARGO_TARGET_DIR": str(folder / "target"), "PATH": _build_path(),
               **rustc_beside(CARGO)}
        if needs.install_command:  # the workspace install the build script relies on
            report(label, f"{needs.install_command} on this machine")
            await controller.run(needs.install_command.split(), label=label, phase="deps",
                                 cwd=checkout, env=env, timeout=req.build_timeout)
        metadata = await controller.run(
            [CARGO, "metadata", "--no-deps", "--format-version", "1", "--locked"],
            label=label, phase="build", cwd=checkout, timeout=300,
        )
        log = folder / f"build-{key}.log"
        log.unlink(missing_ok=True)
        features = ["--features", ",".join(req.features)] if req.features else []
        report(label, f"building {req.binary} at {commit[:12]} on this machine ({origin} "
               "Cargo.lock)")
        ticker = asyncio.ensure_future(_progress(label, req.binary, log, started))
        try:
            await controller.run(
                [CARGO, "build", "--release", "--locked", "--bin", req.binary, *features],
                label=label, phase="build", cwd=checkout, log=log, env=env,
                timeout=req.build_timeout,
            )
        finally:
            ticker.cancel()
        built = folder / "target" / "release" / req.binary
        incoming = target.parent.with_name(target.parent.name + ".incoming")
        shutil.rmtree(incoming, ignore_errors=True)
        incoming.mkdir(parents=True, mode=0o700)
        shutil.copy2(built, incoming / req.binary)
        sha = transfer.sha256_file(incoming / req.binary)
        package = verify.package_version(metadata.stdout, req.binary)
        artifact = Artifact(
            key=key, sha256=sha, commit=commit, triple=here.triple, glibc=here.glibc,
            package=package[0] if package else None, version=package[1] if package else None,
        )
        (incoming / "build.json").write_text(json.dumps(
            {"artifact": artifact.model_dump(mode="json"), "lockOrigin": origin,
             "repo": layout.short_hash(req.source.repo), "binary": req.binary,
             "features": sorted(req.features), "builtAt": time.time()}, indent=1))
        shutil.rmtree(target.parent, ignore_errors=True)
        incoming.rename(target.parent)
        seconds = time.monotonic() - started
        report(label, f"built {req.binary} at {commit[:12]} on this machine in {seconds:.0f}s "
               f"({key})")
        return Built(artifact, lock, origin, seconds)


# -------------------------------------------------------------------- shipping to a host


async def stage(link: Link, spec: InstallSpec, iid: str, *, fresh: bool, abort: str) -> Staged:
    """Ship the binary its Build resource made to this host (sha256 checked there)."""
    art, place = spec.artifact, spec.build
    if art is None or place is None:
        raise HostError(spec.label, "upload", "no build to ship: its Build resource has not run")
    local = artifact_file(art.key, spec.binary)
    if place.place == "builder":
        local = await builder.fetch_artifact(spec)
    if not local.is_file() or transfer.sha256_file(local) != art.sha256:
        raise HostError(
            spec.label, "upload",
            f"the build {art.key} of {spec.binary} is not on this machine as recorded (missing "
            "or its sha256 differs); run `pulumi up` again to rebuild it",
        )
    rid = plan.release_id(spec, art.commit)
    report(spec.label, f"shipping {spec.binary} {art.commit[:12]} built on {place.label} "
           f"({art.key})")
    await transfer.upload_binary(link, spec, rid, local, art.sha256,
                                 f"{spec.binary} built on {place.label}")
    return Staged(release_id=rid, version_key=art.commit)


