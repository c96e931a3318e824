"""rbee's real source tree, served by `git daemon` on 127.0.0.1 like a remote.

The tree is the `git archive` of rbee's public repository at a fixed commit, kept beside the
project as test data (`../shared/real-rbee/llama-orch-<commit>.tar.gz`, with its SHA256SUMS);
a clone of the project elsewhere has none, and `find_tarball` says so. It is unpacked, committed
on `main` (the commit id differs from upstream's; the tree is the same) and served read-only.
Crates still come from crates.io.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .fixture_repo import _git_env, _wait_port
from .hosts import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "real-rbee"
UPSTREAM_COMMIT = "6ca910077f40c9d43a2ec6a5e8b2749e32965c56"


def find_tarball(folder: Path = SHARED) -> tuple[Path | None, str]:
    """The tarball of rbee's tree, checked against its SHA256SUMS, or None and why not."""
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        return None, f"rbee's real tree is not here ({folder} has no SHA256SUMS)"
    for line in sums.read_text().splitlines():
        digest, _, name = line.partition("  ")
        path = folder / name.strip()
        if name.startswith("llama-orch-") and path.is_file():
            got = hashlib.sha256(path.read_bytes()).hexdigest()
            if got != digest:
                return None, f"{path.name} has sha256 {got}, not {digest} (SHA256SUMS)"
            return path, ""
    return None, f"no llama-orch tarball listed in {sums}"


@dataclass
class RealTree:
    base_dir: Path
    bare: Path
    commit: str
    port: int
    daemon: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"git://127.0.0.1:{self.port}/{self.bare.name}"

    def close(self) -> None:
        stop_process(self.daemon)
        shutil.rmtree(self.base_dir, ignore_errors=True)


def serve(tarball: Path, base_dir: Path | None = None) -> RealTree:
    """Unpack the tree, commit it on `main` in a bare repository, serve it by `git daemon`."""
    root = Path(tempfile.mkdtemp(prefix="rbee-real-", dir=base_dir))
    root.chmod(0o755)
    work = root / "work"
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            tar.extractall(root, filter="data")
        (root / "llama-orch").rename(work)
        env = _git_env(0)

        def git(*args: str, cwd: Path = work) -> str:
            done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True,
                                  text=True, check=True)
            return done.stdout.strip()

        git("init", "-q", "-b", "main")
        git("add", "-A", "-f")
        git("commit", "-q", "-m", f"rbee at upstream {UPSTREAM_COMMIT}")
        commit = git("rev-parse", "HEAD")
        bare = root / "srv" / "llama-orch.git"
        bare.parent.mkdir()
        git("clone", "-q", "--bare", str(work), str(bare), cwd=root)
        shutil.rmtree(work)
        subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
        port = free_port()
        log = open(root / "git-daemon.log", "ab")  # noqa: SIM115 - lives with the daemon
        daemon = subprocess.Popen(
            ["git", "daemon", "--export-all", f"--base-path={bare.parent}", "--reuseaddr",
             "--listen=127.0.0.1", f"--port={port}", "--enable=upload-pack",
             "--informative-errors", str(bare.parent)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env={**os.environ},
        )
        log.close()
        _wait_port("127.0.0.1", port, daemon)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return RealTree(root, bare, commit, port, daemon)
