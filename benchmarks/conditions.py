"""The machine's conditions beside every number: the load, the time since boot, and the spread
of the repeats. Two series are compared (a ratio, a target) only when they were taken under the
same conditions; otherwise the comparison is refused and says why.

Why the time since boot: on this project's machine (a microVM) the first runs after boot were
~5 s slower at every size with the same code (docs/performance.md, "The 5 s regime"); a number
taken then is not comparable with one taken later. The fresh-memory probe measures one cause
found for slow early runs: memory the guest has never touched (or gave back to the host through
its balloon's free page reporting) is faulted in by the host, several times slower than memory
it reuses.
"""

from __future__ import annotations

import mmap
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
# two series are comparable when their median 1-minute loads differ by at most this much, or
# by this fraction of the larger one, whichever is more
LOAD_SLACK = 1.0
LOAD_SLACK_FRACTION = 0.3
# runs this soon after boot are a regime of their own (see the module docstring)
BOOT_WINDOW_S = 15 * 60


@dataclass(frozen=True)
class Sample:
    """One timed run and the conditions it started under."""

    seconds: float
    load: float  # 1-minute load average
    uptime_s: float


def now(read: Callable[[str], str] | None = None) -> tuple[float, float]:
    """(1-minute load average, seconds since boot)."""
    read = read or _read
    return float(read("/proc/loadavg").split()[0]), float(read("/proc/uptime").split()[0])


def _read(path: str) -> str:
    with open(path, encoding="ascii") as f:
        return f.read()


def measure(fn: Callable[[], T]) -> tuple[Sample, T]:
    load, uptime = now()
    start = time.monotonic()
    value = fn()
    return Sample(time.monotonic() - start, load, uptime), value


@dataclass(frozen=True)
class Series:
    samples: tuple[Sample, ...]

    @property
    def median(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def spread(self) -> tuple[float, float]:
        values = [s.seconds for s in self.samples]
        return min(values), max(values)

    @property
    def load(self) -> float:
        return statistics.median(s.load for s in self.samples)

    @property
    def booted_recently(self) -> bool:
        return any(s.uptime_s < BOOT_WINDOW_S for s in self.samples)

    def text(self) -> str:
        """`2.14 s (2.01-2.30)`: the median and the spread of the repeats."""
        low, high = self.spread
        return f"{self.median:.2f} ({low:.2f}-{high:.2f})"

    def conditions(self) -> str:
        loads = [s.load for s in self.samples]
        up = min(s.uptime_s for s in self.samples)
        return f"load {min(loads):.1f}-{max(loads):.1f}, up {up / 60:.0f} min"

    def as_dict(self) -> dict[str, object]:
        low, high = self.spread
        return {
            "median_s": round(self.median, 3), "min_s": round(low, 3), "max_s": round(high, 3),
            "load": [s.load for s in self.samples],
            "uptime_s": [round(s.uptime_s) for s in self.samples],
        }  # fmt: skip


def series(samples: Sequence[Sample]) -> Series:
    if not samples:
        raise ValueError("a series needs at least one sample")
    return Series(tuple(samples))


def comparable(a: Series, b: Series) -> str:
    """Why `a` and `b` must not be compared, or "" when they may be."""
    if a.booted_recently != b.booted_recently:
        return (
            f"one series was taken within {BOOT_WINDOW_S // 60} min of boot and the other not"
        )
    slack = max(LOAD_SLACK, LOAD_SLACK_FRACTION * max(a.load, b.load))
    if abs(a.load - b.load) > slack:
        return f"the load differed ({a.load:.1f} against {b.load:.1f})"
    return ""


def fresh_memory_rate(mib: int = 256) -> float:
    """MiB/s at which this process can first touch `mib` MiB of new memory (one write per
    page). On a machine whose memory the host backs lazily, it is several times lower for
    memory the guest has not used yet than for memory it reuses."""
    size = mib << 20
    page = mmap.PAGESIZE
    area = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        start = time.monotonic()
        for offset in range(0, size, page):
            area[offset] = 1
        return mib / (time.monotonic() - start)
    finally:
        area.close()


def header() -> str:
    """One line: the conditions now, for the top of a report."""
    load, uptime = now()
    cores = os.cpu_count() or 1
    return (
        f"load {load:.2f} on {cores} cores, {uptime / 60:.0f} min since boot, "
        f"fresh memory first touched at {fresh_memory_rate():.0f} MiB/s"
    )
