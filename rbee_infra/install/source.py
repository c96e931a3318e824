"""The source at the commit to build, read on this machine: what building a binary needs.

Preflight must know what the build at the resolved commit needs before any build starts (for
rbee's hive: Node.js, pnpm, the workspace install, wasm-pack and the wasm32 target, which its
build script runs only after cargo compiled every dependency). The commit is fetched into this
machine's cache (`host/controller`: trusted, it holds the stack's credentials) and only the
files `decide/buildneeds` asks for are read (the manifests, the crate's build script, the
toolchain file, package.json). The answer is kept per (repository, commit, binary) for the run,
so a fleet's hosts cost one fetch.
"""

from __future__ import annotations

from pathlib import Path

from rbee_infra.base import layout
from rbee_infra.base.errors import HostError
from rbee_infra.base.progress import report
from rbee_infra.config.fleet import GitSource
from rbee_infra.config.spec import InstallSpec
from rbee_infra.decide import buildneeds, plan
from rbee_infra.decide.buildneeds import BuildNeeds
from rbee_infra.host import controller

_NEEDS: dict[tuple[str, str, str], BuildNeeds] = {}
_UNKNOWN: dict[tuple[str, str], str] = {}  # (repository, commit) -> why it could not be read


async def needs_at(
    repo: str, ref: str, commit: str, binary: str, *, label: str, lock_timeout: float
) -> BuildNeeds:
    """What building `binary` at `commit` needs, read from the tree on this machine."""
    key = (layout.short_hash(repo), commit, binary)
    if key in _NEEDS:
        return _NEEDS[key]
    folder = await controller.fetch(repo, ref, commit, label=label, lock_timeout=lock_timeout)
    listing = await controller.tree_listing(folder, commit, label=label)
    files: dict[str, str] = {}
    while want := buildneeds.files_to_read(listing, binary, files):
        found = await controller.read_files(folder, commit, want, label=label)
        files.update({path: found.get(path, "") for path in want})
    needs = _NEEDS[key] = buildneeds.tree_needs(listing, files, binary)
    return needs


async def needs_for(spec: InstallSpec, commit: str | None) -> BuildNeeds | None:
    """For a build on the spec's host: what it needs, or None (reported once) when this machine
    cannot read the tree (no route to the repository, say): preflight then checks cargo alone,
    as before the tree was read."""
    source = spec.source
    if not isinstance(source, GitSource) or not commit:
        return None
    ref = (plan.git_ref_names(source) or [commit])[0]
    why = _UNKNOWN.get((layout.short_hash(source.repo), commit))
    if why is None:
        try:
            return await needs_at(source.repo, ref, commit, spec.binary, label=spec.label,
                                  lock_timeout=spec.lock_timeout)
        except HostError as error:
            why = _UNKNOWN[(layout.short_hash(source.repo), commit)] = error.message
    report(spec.label, f"what the build at {commit[:12]} needs is not known here ({why}); "
           "preflight checks git and cargo only")
    return None


# The Cargo.lock each (repository, commit) built on the hosts uses in this run, as the stack
# keeps it (`kickoff`): every host builds that commit's dependency graph, --locked.
LOCKS: dict[tuple[str, str], str] = {}


def lock_for(repo: str, commit: str) -> str | None:
    return LOCKS.get((layout.short_hash(repo), commit))


async def run_generate_lockfile(cargo: str, checkout: Path, *, label: str, timeout: float) -> None:
    """`cargo generate-lockfile` for the tree in `checkout`, run from beside it: rustup picks
    the toolchain by the working directory, and in the tree its rust-toolchain.toml would make
    rustup install that toolchain's targets on this machine just to resolve dependencies."""
    await controller.run(
        [cargo, "generate-lockfile", "--manifest-path", str(checkout / "Cargo.toml")],
        label=label, phase="lock", cwd=checkout.parent, timeout=timeout,
    )


async def generate_lock(
    repo: str, ref: str, commit: str, cargo: str, *, label: str, lock_timeout: float
) -> str:
    """A Cargo.lock for `commit` of a tree that has none, generated on this machine (trusted:
    no host decides the dependency graph the others build)."""
    folder = await controller.fetch(repo, ref, commit, label=label, lock_timeout=lock_timeout)
    async with controller.repo_lock(repo, label=label, timeout=lock_timeout):
        checkout = await controller.checkout(folder, commit, label=label)
        await run_generate_lockfile(cargo, checkout, label=label, timeout=600)
        lock = checkout / "Cargo.lock"
        text = lock.read_text()
        lock.unlink()
        return text
