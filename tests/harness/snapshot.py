"""Fingerprint a host user's home so a test can prove that an operation changed nothing."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Protocol

HASH_LIMIT = 1 << 20  # files up to 1 MiB are hashed; bigger ones are compared by size/mtime


class _HasHome(Protocol):
    @property
    def home(self) -> Path: ...


def _entry(path: Path, st: os.stat_result) -> str:
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return f"l:{st.st_size}:{st.st_mtime_ns}:{os.readlink(path)}:{mode:o}"
    if stat.S_ISDIR(st.st_mode):
        return f"d:0:{st.st_mtime_ns}::{mode:o}"
    if stat.S_ISREG(st.st_mode):
        digest = ""
        if st.st_size <= HASH_LIMIT:
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                digest = "unreadable"
        return f"f:{st.st_size}:{st.st_mtime_ns}:{digest}:{mode:o}"
    return f"o:{st.st_size}:{st.st_mtime_ns}::{mode:o}"


def snapshot_dir(root: Path, exclude: tuple[str, ...] = (".ssh",)) -> dict[str, str]:
    """relative path -> "kind:size:mtime_ns:sha256-or-link-target:mode" for everything
    under `root` ("." is root itself); top-level names in `exclude` are skipped."""
    out: dict[str, str] = {".": _entry(root, root.lstat())}
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        if base == root:
            dirnames[:] = [d for d in dirnames if d not in exclude]
            filenames = [f for f in filenames if f not in exclude]
        for name in sorted(dirnames) + sorted(filenames):
            p = base / name
            try:
                out[str(p.relative_to(root))] = _entry(p, p.lstat())
            except FileNotFoundError:
                continue
    return out


def snapshot_home(host: _HasHome, exclude: tuple[str, ...] = (".ssh",)) -> dict[str, str]:
    return snapshot_dir(host.home, exclude)


def diff_snapshots(a: dict[str, str], b: dict[str, str]) -> list[str]:
    """Human-readable differences: "+ path" (new), "- path" (gone), "~ path: old -> new"."""
    lines: list[str] = []
    for k in sorted(a.keys() | b.keys()):
        if k not in a:
            lines.append(f"+ {k}")
        elif k not in b:
            lines.append(f"- {k}")
        elif a[k] != b[k]:
            lines.append(f"~ {k}: {a[k]} -> {b[k]}")
    return lines
