"""The operator's machine (the controller) as a place: git and cargo run here, not on a host.

What the controller decides is trusted: it already holds the stack's credentials, and the
operator runs it. So a git source's ref is resolved here (one `git ls-remote` per repository
and run, whatever the number of hosts), its commit is fetched into a cache here, the tree is
read here (what the build needs, the package version), a missing Cargo.lock is generated here,
and with `build: controller` the binary is built here and shipped (see `install/ship.py`).

The cache is `${RBEE_INFRA_CACHE:-${XDG_CACHE_HOME:-~/.cache}/rbee-infra}` (0700): one checkout
and one cargo target dir per repository (`src/<hash>/`), built binaries under their cache key
(`artifacts/<key>/`). Concurrent runs take turns per repository on a file lock. A credential in
a repository URL reaches git on a private file read by git's `store` helper, never in argv or
the environment, as on the hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rbee_infra.base import layout
from rbee_infra.base.errors import HostError
from rbee_infra.base.redact import git_credential, redact_text, url_secrets
from rbee_infra.decide.facts import HostFacts, parse_probe
from rbee_infra.host import scripts
from rbee_infra.host.ssh import tail

HERE = "this machine"
GIT_TIMEOUT = 300.0


def cache_root() -> Path:
    given = os.environ.get("RBEE_INFRA_CACHE")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rbee-infra"


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def source_dir(repo: str) -> Path:
    """The checkout and target dir of one repository (by a hash of its URL)."""
    return cache_root() / "src" / layout.short_hash(repo)


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str


async def run(
    argv: Sequence[str],
    *,
    label: str,
    phase: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = GIT_TIMEOUT,
    secrets: Sequence[str] = (),
    check: bool = True,
    log: Path | None = None,
) -> Ran:
    """One local command; its output (or `log`, when given, which gets both streams)."""
    sink = open(log, "ab") if log is not None else None  # noqa: SIM115 - closed below
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sink or asyncio.subprocess.PIPE,
            stderr=sink or asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as error:
        if sink:
            sink.close()
        raise HostError(label, phase, f"cannot run {argv[0]} on {HERE}: {error}") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        await proc.wait()
        raise HostError(
            label, phase, f"{argv[0]} on {HERE} timed out after {timeout:.0f}s"
        ) from None
    finally:
        if sink:
            sink.close()
    result = Ran(
        proc.returncode if proc.returncode is not None else -1,
        (out or b"").decode(errors="replace"),
        (err or b"").decode(errors="replace"),
    )
    if check and result.code != 0:
        text = result.stderr or result.stdout
        if log is not None:
            text = log.read_text(errors="replace")
        detail = redact_text(tail(text), secrets)
        command = " ".join(argv[:3])
        raise HostError(label, phase, f"{command} on {HERE} exited {result.code}: {detail}")
    return result


@contextlib.contextmanager
def git_env(repo: str) -> Iterator[tuple[str, dict[str, str], list[str]]]:
    """(the URL git sees, its environment, the secrets to scrub): a credential in the URL goes
    to a 0600 file for git's `store` helper, removed afterwards; the user's helpers and any
    prompt are switched off."""
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "", "LC_ALL": "C"}
    secrets = url_secrets(repo)
    found = git_credential(repo)
    if found is None:
        yield repo, {**env, "GIT_CONFIG_COUNT": "0"}, secrets
        return
    public, line = found
    folder = Path(tempfile.mkdtemp(prefix="rbee-git-"))
    try:
        store = folder / "credentials"
        fd = os.open(store, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(line + "\n")
        config = {
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "credential.helper",
            "GIT_CONFIG_VALUE_0": "",
            "GIT_CONFIG_KEY_1": "credential.helper",
            "GIT_CONFIG_VALUE_1": f"store --file={store}",
        }
        yield public, {**env, **config}, secrets
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def ls_remote(repo: str, refs: Sequence[str], *, label: str) -> str:
    """`git ls-remote` of `refs` in `repo`, run here."""
    with git_env(repo) as (url, env, secrets):
        done = await run(
            ["git", "ls-remote", "--", url, *refs],
            label=label, phase="resolve", env=env, secrets=secrets,
        )
    return done.stdout


@contextlib.asynccontextmanager
async def repo_lock(repo: str, *, label: str, timeout: float) -> AsyncIterator[Path]:
    """The repository's cache dir, held against other runs on this machine."""
    folder = _private_dir(source_dir(repo))
    handle = open(folder / ".lock", "a+")  # noqa: SIM115 - closed below
    os.utime(folder / ".lock")  # when this repository's cache was last used (prune-builds)
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if asyncio.get_running_loop().time() > deadline:
                    raise HostError(
                        label, "lock", f"the cache of this repository on {HERE} is still in "
                        f"use after {timeout:.0f}s ({folder})"
                    ) from None
                await asyncio.sleep(0.2)
        yield folder
    finally:
        handle.close()


async def _git(folder: Path, *args: str, label: str, phase: str, env: dict[str, str] | None = None,
               secrets: Sequence[str] = (), check: bool = True, timeout: float = GIT_TIMEOUT
               ) -> Ran:
    return await run(["git", "-C", str(folder / "checkout"), *args], label=label, phase=phase,
                     env=env, secrets=secrets, check=check, timeout=timeout)


async def fetch(repo: str, ref: str, commit: str, *, label: str, lock_timeout: float) -> Path:
    """The repository's cache dir, its checkout holding `commit` (fetched by its ref when
    missing; the fetched ref must still name `commit`, or the resolve is stale)."""
    async with repo_lock(repo, label=label, timeout=lock_timeout) as folder:
        checkout = folder / "checkout"
        if not (checkout / ".git").is_dir():
            shutil.rmtree(checkout, ignore_errors=True)
            await run(["git", "init", "-q", "--", str(checkout)], label=label, phase="clone")
        have = await _git(folder, "cat-file", "-e", "--", f"{commit}^{{commit}}",
                          label=label, phase="clone", check=False)
        if have.code != 0:
            with git_env(repo) as (url, env, secrets):
                await _git(folder, "fetch", "-q", "--depth", "1", "--no-tags", "--", url, ref,
                           label=label, phase="clone", env=env, secrets=secrets)
            got = (await _git(folder, "rev-parse", "FETCH_HEAD^{commit}", label=label,
                              phase="clone")).stdout.strip()
            with contextlib.suppress(OSError):
                (checkout / ".git" / "FETCH_HEAD").unlink()  # it names the URL
            if got != commit:
                raise HostError(
                    label, "clone", f"{ref} moved while it was being fetched on {HERE}: "
                    f"resolved {commit[:12]}, fetched {got[:12]}; run again"
                )
        return folder


async def tree_listing(folder: Path, commit: str, *, label: str) -> list[str]:
    done = await _git(folder, "ls-tree", "-r", "--name-only", "--full-tree", commit,
                      label=label, phase="probe")
    return done.stdout.splitlines()


async def read_files(folder: Path, commit: str, paths: Sequence[str], *, label: str
                     ) -> dict[str, str]:
    """The text of each path that exists at `commit` (missing ones are left out)."""
    out: dict[str, str] = {}
    for path in paths:
        done = await _git(folder, "show", f"{commit}:{path}", label=label, phase="probe",
                          check=False)
        if done.code == 0:
            out[path] = done.stdout
    return out


async def checkout(folder: Path, commit: str, *, label: str) -> Path:
    """The checkout's work tree at `commit` (the caller holds the repository's lock)."""
    await _git(folder, "checkout", "-q", "--force", "--detach", commit, label=label,
               phase="clone")
    await _git(folder, "clean", "-q", "-f", "-d", "-x", "-e", "/target", label=label,
               phase="clone")
    return folder / "checkout"


async def probe(cargo: str, *, label: str) -> HostFacts:
    """This machine's facts as a host's preflight reads them (the same PROBE script, run here
    from the user's home): the tools, the Rust toolchain and its targets, Node.js and pnpm."""
    done = await run(["sh", "-c", scripts.PROBE, "rbee", cargo], label=label, phase="probe",
                     cwd=Path.home(), timeout=120)
    return parse_probe(done.stdout)
