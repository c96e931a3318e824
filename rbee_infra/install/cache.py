"""This machine's cache of built binaries: where each build is kept under its key, what the
cache holds and how old it is, and pruning it (`rbee-infra prune-builds`)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from rbee_infra.base import layout
from rbee_infra.config.spec import Artifact
from rbee_infra.host import controller

CARGO = os.environ.get("RBEE_INFRA_CARGO", "cargo")  # the controller's cargo


def cache_key(commit: str, binary: str, features: list[str], triple: str, lock: str) -> str:
    """One build per (commit, binary, features, target triple, Cargo.lock)."""
    lock_sha = layout.short_hash(lock, length=64) if lock else ""
    return layout.short_hash(commit, binary, ",".join(sorted(features)), triple, lock_sha)


def artifact_file(key: str, binary: str) -> Path:
    """Where this machine keeps a binary built (or downloaded from a builder) under `key`."""
    return controller.cache_root() / "artifacts" / key / binary


@dataclass(frozen=True)
class Built:
    artifact: Artifact
    lock: str  # the Cargo.lock it was built with ("" when the tree has none and cargo made none)
    lock_origin: str
    seconds: float


@dataclass(frozen=True)
class Cached:
    path: Path
    what: str  # "build <key> (<binary> <commit>)" or "checkout and target dir <hash>"
    age_days: float
    size: int


def _size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def cached_builds(now: float | None = None) -> list[Cached]:
    """What this machine's build cache holds: each build, and each repository's checkout and
    cargo target dir, with its age (since built, or since last used) and size."""
    now = time.time() if now is None else now
    root = controller.cache_root()
    found: list[Cached] = []
    for meta in sorted((root / "artifacts").glob("*/build.json")):
        try:
            data = json.loads(meta.read_text())
            built_at = float(data.get("builtAt", meta.stat().st_mtime))
            art = data["artifact"]
            what = f"build {art['key']} ({data.get('binary')} {art['commit'][:12]})"
        except (OSError, ValueError, KeyError, TypeError):
            built_at, what = meta.stat().st_mtime, f"build {meta.parent.name}"
        found.append(Cached(meta.parent, what, (now - built_at) / 86400, _size(meta.parent)))
    for lock in sorted((root / "src").glob("*/.lock")):
        used = lock.stat().st_mtime
        found.append(Cached(lock.parent, f"checkout and target dir {lock.parent.name}",
                            (now - used) / 86400, _size(lock.parent)))
    return found


def prune(older_than_days: float, *, dry_run: bool) -> list[Cached]:
    """Remove the cached builds and checkouts not built or used for `older_than_days`."""
    gone = [c for c in cached_builds() if c.age_days >= older_than_days]
    if not dry_run:
        for cached in gone:
            shutil.rmtree(cached.path, ignore_errors=True)
    return gone
