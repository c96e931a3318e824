"""Benchmark 11: what a no-op's read costs a host for binaries of rbee's real size. The
inventory (`scripts.INVENTORY`, the part of every check's batched read that looks at the
installed binaries) of three 16 MB binaries (rbee's cpu worker, built from its real tree, is
15.9 MB), run as a host runs it (`sh -c`, in a home of its own), two ways side by side and
interleaved: each binary hashed, and the checksum recorded at activation (`rbee_sign`) reused
while the file's stat is unchanged. Both must report the same checksums. The host's side only:
no SSH session, no engine (benchmarks 2 and 5 have those). Target: reused at least 5x faster."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import conditions
from benchmarks.common import Lab, table
from rbee_infra.base import layout
from rbee_infra.host import scripts

NAME = "a host's read of its installed binaries, rbee's size: hashed against checksums reused"
SIZE_MB = 16
BINARIES = ("rbee-hive", "rbee-worker-cpu", "rbee-worker-cuda")
TARGET_RATIO = 5.0
SIGN = 'rbee_sign "$1"'
RID = "0123456789ab"  # one release of each binary


def _install(home: Path) -> list[str]:
    """Three binaries as an activation leaves them (stable link, release file, receipt); the
    INVENTORY's arguments."""
    args: list[str] = []
    for name in BINARIES:
        stable = home / layout.stable_path(name)
        release = home / layout.release_dir(name, RID) / name
        release.parent.mkdir(parents=True)
        release.write_bytes(os.urandom(SIZE_MB << 20))
        release.chmod(0o755)
        stable.parent.mkdir(parents=True, exist_ok=True)
        stable.symlink_to(layout.link_target(name, RID, name))
        receipt = home / layout.receipt_path(name)
        receipt.parent.mkdir(parents=True, exist_ok=True)
        receipt.write_text("{}\n")
        args += [name, layout.stable_path(name), layout.receipt_path(name)]
    return args


def _signatures(home: Path) -> list[Path]:
    return [home / layout.release_dir(n, RID) / f"{n}.rbee-stat" for n in BINARIES]


def _sign(home: Path) -> None:
    lib = Path(scripts.__file__).parent / "host_scripts" / "lib" / "sha.sh"
    for signature in _signatures(home):
        release = signature.with_name(signature.name.removesuffix(".rbee-stat"))
        subprocess.run(["sh", "-c", f". '{lib}'; {SIGN}", "sign", str(release)], check=True)


def _read(home: Path, args: list[str]) -> tuple[conditions.Sample, list[str]]:
    env = {**os.environ, "HOME": str(home)}
    sample, done = conditions.measure(lambda: subprocess.run(
        ["sh", "-c", scripts.INVENTORY, "inventory", *args], env=env, capture_output=True,
        text=True, check=True, timeout=120))  # fmt: skip
    sums = [line.split("\t")[4] for line in done.stdout.splitlines() if line.startswith("item")]
    return sample, sums


def run(lab: Lab, *, quick: bool) -> dict[str, Any]:
    del lab  # the host's side, run here
    repeats = 5 if quick else 15
    hashed: list[conditions.Sample] = []
    reused: list[conditions.Sample] = []
    with tempfile.TemporaryDirectory(prefix="rbee-bench-inventory-") as tmp:
        home = Path(tmp)
        args = _install(home)
        for _ in range(repeats):
            for signature in _signatures(home):
                signature.unlink(missing_ok=True)
            sample, by_hash = _read(home, args)
            hashed.append(sample)
            _sign(home)
            sample, by_signature = _read(home, args)
            reused.append(sample)
            if by_hash != by_signature or len(by_hash) != len(BINARIES):
                raise AssertionError(f"the two reads disagree: {by_hash} != {by_signature}")
    a, b = conditions.series(hashed), conditions.series(reused)
    ratio = a.median / b.median

    def row(label: str, s: conditions.Series) -> list[str]:
        low, high = s.spread
        return [label, f"{s.median:.3f} ({low:.3f}-{high:.3f})", s.conditions()]

    text = table(
        ["read of 3 x 16 MB binaries", "seconds, median (spread)", "conditions"],
        [row("each hashed (sha256sum)", a), row("checksums reused (stat unchanged)", b)],
    )  # fmt: skip
    text += f"\n\nreused {ratio:.1f}x faster, {repeats} repeats interleaved"
    return {"name": NAME, "table": text, "repeats": repeats, "ratio": round(ratio, 2),
            "hashed": a.as_dict(), "reused": b.as_dict(),
            "target": f"checksums reused >= {TARGET_RATIO:.0f}x faster",
            "met": ratio >= TARGET_RATIO}  # fmt: skip
