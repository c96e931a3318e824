"""Installs on a host that no resource of this hive manages, pure: what `EXTRAS_SCAN` saw ->
the paths a hive lists in its `extras` output (and removes with `pruneUnmanaged: true`).

A name is managed when it is `rbee-hive` or `rbee-worker-<type>` for a worker type configured
on the hive. Everything rbee-infra keeps for any other name (the stable path under workers/,
its receipt, its release dirs) is extra, whoever made it: a hand-made binary, an old tool, a
worker of another stack on the same account. The hive's own moved-aside hand-made binary
(`~/.local/bin/rbee-hive.pre-rbee-infra`) is extra too. A worker that is in the config is
never extra, installed or not, so pruning cannot race its own resource.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from rbee_infra.base import layout
from rbee_infra.config.fleet import HIVE_BINARY

HAND_MADE_HIVE = f"{layout.BIN_DIR}/{HIVE_BINARY}{layout.HAND_MADE_SUFFIX}"
# a later hand-made hive, set aside beside the first one (see scripts.ACTIVATE)
_NUMBERED_HAND_MADE = re.compile(re.escape(HAND_MADE_HIVE) + r"\.[0-9]{1,6}")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$")
SHOWN_PREFIX = "~/"


@dataclass(frozen=True)
class Scan:
    workers: tuple[str, ...] = ()
    releases: tuple[str, ...] = ()
    receipts: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()


def parse_scan(output: str) -> Scan:
    found: dict[str, list[str]] = {"worker": [], "release": [], "receipt": [], "path": []}
    for line in output.splitlines():
        kind, sep, value = line.partition("\t")
        if sep and kind in found and value:
            found[kind].append(value)
    return Scan(
        workers=tuple(found["worker"]),
        releases=tuple(found["release"]),
        receipts=tuple(found["receipt"]),
        paths=tuple(found["path"]),
    )


def managed_names(managed_workers: Iterable[str]) -> set[str]:
    return {HIVE_BINARY} | {f"rbee-worker-{t}" for t in managed_workers}


def find_extras(scan: Scan, managed_workers: Iterable[str]) -> list[str]:
    """Home-relative paths of everything extra, sorted. Odd names (spaces, newlines) are left
    alone rather than guessed at."""
    managed = managed_names(managed_workers)

    def mine(name: str) -> bool:
        # `rbee-worker-cpu.pre-rbee-infra`, `...rbee-tmp.<pid>` belong to the managed worker
        return name in managed or any(name.startswith(m + ".") for m in managed)

    out: set[str] = set()
    out.update(
        f"{layout.WORKERS_DIR}/{n}" for n in scan.workers if _SAFE_NAME.match(n) and not mine(n)
    )
    out.update(
        f"{layout.RELEASES_DIR}/{n}"
        for n in scan.releases
        if _SAFE_NAME.match(n) and n not in managed
    )
    out.update(
        layout.receipt_path(n) for n in scan.receipts if _SAFE_NAME.match(n) and n not in managed
    )
    out.update(p for p in scan.paths if p == HAND_MADE_HIVE or _NUMBERED_HAND_MADE.fullmatch(p))
    return sorted(out)


def shown(paths: Iterable[str]) -> list[str]:
    """As listed in outputs and previews: `~/.local/share/rbee/workers/rbee-worker-rocm`."""
    return [SHOWN_PREFIX + p for p in paths]


def to_remove(planned: Iterable[str], current: Iterable[str]) -> list[str]:
    """What `up` removes: what preview showed (`planned`, as shown) that is still extra now."""
    still = set(current)
    wanted = {s.removeprefix(SHOWN_PREFIX) for s in planned if isinstance(s, str)}
    return sorted(wanted & still)
