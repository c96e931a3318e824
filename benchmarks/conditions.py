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

import ctypes
import mmap
import os
import resource
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
    # CPU seconds (user + system) the run's own processes took, and the lab's (its hosts' sshd
    # and what they ran, its git server) meanwhile; None where not measured
    cpu_s: float | None = None
    lab_cpu_s: float | None = None


def now(read: Callable[[str], str] | None = None) -> tuple[float, float]:
    """(1-minute load average, seconds since boot)."""
    read = read or _read
    return float(read("/proc/loadavg").split()[0]), float(read("/proc/uptime").split()[0])


def _read(path: str) -> str:
    with open(path, encoding="ascii") as f:
        return f.read()


def measure(fn: Callable[[], T], lab: Sequence[int] = ()) -> tuple[Sample, T]:
    """Time `fn`; with `lab` (the pids of the lab's sshd listeners and git server), also the
    CPU its processes and the lab's took (see `adopt_orphans`)."""
    load, uptime = now()
    before, cpu, lab_cpu = (_children(), own_cpu(), cpu_of(lab)) if lab else (set(), 0.0, 0.0)
    start = time.monotonic()
    value = fn()
    seconds = time.monotonic() - start
    if not lab:
        return Sample(seconds, load, uptime), value
    _reap_adopted(_children() - before)
    return Sample(seconds, load, uptime, own_cpu() - cpu, cpu_of(lab) - lab_cpu), value


PR_SET_CHILD_SUBREAPER = 36


def adopt_orphans() -> None:
    """Become the reaper of this process's descendants' orphans (Linux). A run's process that
    outlives its parent (a provider server the language host started) is then reaped here,
    and its CPU counts in this process's children's usage instead of being lost to init."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def own_cpu() -> float:
    """CPU seconds of this process's children that have been waited for (and theirs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_of(pids: Sequence[int]) -> float:
    """CPU seconds of the waited-for children of `pids` (cutime + cstime): for a listener
    such as sshd, every session it served and what that session ran."""
    total = 0
    for pid in pids:
        try:
            fields = _read(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[13]) + int(fields[14])  # cutime, cstime (fields 16 and 17)
    return total / os.sysconf("SC_CLK_TCK")


def _children() -> set[int]:
    pid, found = os.getpid(), set()
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            found |= {int(c) for c in _read(f"/proc/{pid}/task/{task}/children").split()}
        except OSError:
            continue
    return found


def _reap_adopted(pids: set[int], timeout: float = 10.0) -> None:
    """Wait for the orphans a run left to this process (they end with it)."""
    deadline = time.monotonic() + timeout
    waiting = set(pids)
    while waiting and time.monotonic() < deadline:
        for pid in list(waiting):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                waiting.discard(pid)
        if waiting:
            time.sleep(0.01)


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

    def cpu_text(self) -> str:
        """`2.41 + 0.67`: the median CPU seconds of the run's processes and of the lab's."""
        own = [s.cpu_s for s in self.samples if s.cpu_s is not None]
        lab = [s.lab_cpu_s for s in self.samples if s.lab_cpu_s is not None]
        if not own or not lab:
            return "-"
        return f"{statistics.median(own):.2f} + {statistics.median(lab):.2f}"

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
            "cpu_s": [s.cpu_s for s in self.samples],
            "lab_cpu_s": [s.lab_cpu_s for s in self.samples],
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
