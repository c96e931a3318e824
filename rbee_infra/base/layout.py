"""Where things live on a host, relative to the SSH user's home (remote commands start there)."""

from __future__ import annotations

import hashlib
import posixpath
import re

ROOT = ".local/share/rbee"
BIN_DIR = ".local/bin"
WORKERS_DIR = f"{ROOT}/workers"
RELEASES_DIR = f"{ROOT}/releases"
RECEIPTS_DIR = f"{ROOT}/receipts"
BUILD_DIR = f"{ROOT}/build"
# binaries a builder hive built for others, by cache key (see `build_once`); `destroy` keeps them
ARTIFACTS_DIR = f"{ROOT}/artifacts"
JOBS_DIR = f"{ROOT}/jobs"
LOCK_FILE = f"{ROOT}/.lock"
HAND_MADE_SUFFIX = ".pre-rbee-infra"
# what `release_id` makes: 7-64 hex digits (a commit, a short `rev`, a sha256), then the
# features and the reinstall trigger's hash; never a path (no '/', no '.')
_RELEASE_ID = re.compile(r"[0-9a-f]{7,64}(?:-[A-Za-z0-9_+-]{1,400})?")


def short_hash(*parts: str, length: int = 16) -> str:
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()
    return digest[:length]


def stable_path(install_name: str) -> str:
    """`rbee-hive` -> ~/.local/bin/rbee-hive; a worker -> ~/.local/share/rbee/workers/<name>."""
    if install_name == "rbee-hive":
        return f"{BIN_DIR}/{install_name}"
    return f"{WORKERS_DIR}/{install_name}"


def receipt_path(install_name: str) -> str:
    return f"{RECEIPTS_DIR}/{install_name}.json"


def release_id(version_key: str, features: list[str]) -> str:
    """`<commit-or-sha, 12 chars>[-<features>]`, e.g. `3f2a9c1d0b7e-cpu+cuda`."""
    key = version_key[:12]
    return f"{key}-{'+'.join(features)}" if features else key


def is_release_id(value: object) -> bool:
    """Whether `value` is a release id, and so one safe path component under `releases/`.
    Every release id read from a host (its link, its receipt) or from state is checked here
    before it names a path."""
    return isinstance(value, str) and _RELEASE_ID.fullmatch(value) is not None


def release_dir(install_name: str, rid: str) -> str:
    if not is_release_id(rid):
        raise ValueError(f"not a release id: {rid!r}")
    return f"{RELEASES_DIR}/{install_name}/{rid}"


def link_target(install_name: str, rid: str, binary: str) -> str:
    """The symlink's relative target, so the link stays valid whatever $HOME is."""
    target = f"{release_dir(install_name, rid)}/{binary}"
    return posixpath.relpath(target, posixpath.dirname(stable_path(install_name)))


def source_dir(repo: str) -> str:
    """Build checkout + cargo target dir, shared by every resource on the host using that repo."""
    return f"{BUILD_DIR}/{short_hash(repo)}"


def job_dir(install_id: str, *parts: str) -> str:
    return f"{JOBS_DIR}/{install_id}/{short_hash(*parts)}"


def artifact_dir(key: str) -> str:
    """Where a builder keeps the binary it built under cache key `key` (16 hex digits)."""
    return f"{ARTIFACTS_DIR}/{key}"
