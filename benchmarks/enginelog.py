"""Where a CLI run's time goes, read from the engine's own log.

`pulumi ... -v=7 --logtostderr --logflow` makes the engine log every step with a timestamp.
v3.260.0 writes JSON lines (`{"time": "...Z", "msg": "Provider[...].Check(urn:...) executing
..."}`); older CLIs wrote glog lines (`I1206 14:23:01.210444 ...`), read too. The phases
below split a run end to end, from spawning the CLI to its exit, so they add up to the run:

| phase | from | to |
| --- | --- | --- |
| CLI start | spawning `pulumi` | its first log line |
| CLI set-up | its first log line (backend, stack, secrets, language host) | the program's Run |
| program start | the program's Run (a fresh Python importing the SDK) | the stack's registration |
| program, to its first resource | the stack's registration (the program's code) | provider load |
| provider start | the engine loading the provider plugin | the server answering |
| first Check | the first resource's Check sent | its answer |
| other Checks and Diffs | the first Check's answer | the last answer |
| program end | the last answer | the program's Run returning |
| shutdown | the Run returning (the provider's exit, the CLI's) | the CLI's exit |
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from datetime import datetime

_GLOG = re.compile(r"^I\d{4} (\d\d):(\d\d):(\d\d\.\d+) \S+ \S+\] (.*)$")
_ISO = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$")
_CALL = re.compile(r"^Provider\[[^\]]*\]\.(Check|Diff)\((urn:[^,)]*)[,)].*?(executing|success)")

PHASES = (
    "CLI start",
    "CLI set-up",
    "program start",
    "program, to its first resource",
    "provider start",
    "first Check",
    "other Checks and Diffs",
    "program end",
    "shutdown",
)


@dataclass(frozen=True)
class Line:
    at: float  # seconds since the epoch (JSON) or since midnight (glog)
    msg: str


def _iso_seconds(text: str) -> float:
    found = _ISO.match(text)
    if found is None:
        raise ValueError(f"not a timestamp: {text!r}")
    base, fraction, zone = found.groups()
    zone = "+00:00" if zone in (None, "Z") else zone
    return datetime.fromisoformat(base + zone).timestamp() + float(fraction or 0)


def lines(log: str) -> list[Line]:
    out: list[Line] = []
    for raw in log.splitlines():
        if raw.startswith("{"):
            try:
                entry = json.loads(raw)
                out.append(Line(_iso_seconds(entry["time"]), str(entry.get("msg", ""))))
            except (ValueError, KeyError, TypeError):
                continue
            continue
        found = _GLOG.match(raw)
        if found is not None:
            hours, minutes, seconds, msg = found.groups()
            out.append(Line(int(hours) * 3600 + int(minutes) * 60 + float(seconds), msg))
    return out


def longest_pause(log: str) -> dict[str, float | str]:
    """The longest silence in the engine's log: its seconds and the lines on either side. A
    run that waits on something (a timeout, a lock) shows it here, named by the last thing the
    engine did before it and the first after."""
    found = lines(log)
    if len(found) < 2:
        return {"seconds": 0.0, "after": "", "before": ""}
    gap, at = max((b.at - a.at, i) for i, (a, b) in enumerate(itertools.pairwise(found)))
    return {"seconds": round(gap, 3), "after": found[at].msg[:160],
            "before": found[at + 1].msg[:160]}  # fmt: skip


def calls(log: str) -> dict[str, float]:
    """The seconds spent in Check and in Diff calls (each from the engine sending it to the
    answer), summed over the resources; the engine makes them one at a time."""
    started: dict[tuple[str, str], float] = {}
    spent = {"Check": 0.0, "Diff": 0.0}
    count = 0
    for line in lines(log):
        found = _CALL.match(line.msg)
        if found is None:
            continue
        method, urn, what = found.groups()
        if what == "executing":
            started[(method, urn)] = line.at
        elif (method, urn) in started:
            spent[method] += line.at - started.pop((method, urn))
            count += method == "Check"
    return {"check_s": round(spent["Check"], 3), "diff_s": round(spent["Diff"], 3),
            "resources": count}  # fmt: skip


def _first(found: list[Line], test: str | re.Pattern[str], after: float = float("-inf")
           ) -> float | None:  # fmt: skip
    for line in found:
        if line.at < after:
            continue
        if (test.search(line.msg) if isinstance(test, re.Pattern) else test in line.msg):
            return line.at
    return None


_RUN = re.compile(r"^langhost\[\w+\]\.Run\(.*executing")
_RUN_DONE = re.compile(r"^langhost\[\w+\]\.Run\(.*(success|failed)")
_STACK = re.compile(r"^registering resource: ty=pulumi:pulumi:Stack")
_PROVIDER_LOAD = re.compile(r"^ProviderRegistry\.Check\(urn:[^)]*::pulumi:providers:")
_PROVIDER_UP = re.compile(r"^Provider\[[^\]]*\]\.GetPluginInfo\(\) executing")


def phases(log: str, *, spawned: float, exited: float) -> dict[str, float]:
    """Seconds per phase (see the module docstring) of one run whose log is `log`, spawned and
    exited at these wall-clock times (`time.time()`). A phase the run did not have (a program
    without resources loads no provider) is left out; the phases add up to the run."""
    found = lines(log)
    if not found:
        raise ValueError("no engine log lines (was the run started with -v=7 --logtostderr?)")
    marks: list[tuple[str, float | None]] = [("CLI start", found[0].at)]
    run = _first(found, _RUN)
    marks.append(("CLI set-up", run))
    stack = _first(found, _STACK, run or 0)
    marks.append(("program start", stack))
    load = _first(found, _PROVIDER_LOAD, stack or 0)
    marks.append(("program, to its first resource", load))
    up = _first(found, _PROVIDER_UP, load) if load is not None else None
    marks.append(("provider start", up))
    answers = [(line.at, found_call.groups()) for line in found
               if (found_call := _CALL.match(line.msg)) is not None]  # fmt: skip
    first_answer = next((at for at, (m, _, w) in answers if m == "Check" and w == "success"), None)
    marks.append(("first Check", first_answer))
    last_answer = max((at for at, (_, _, w) in answers if w == "success"), default=None)
    marks.append(("other Checks and Diffs", last_answer))
    marks.append(("program end", _first(found, _RUN_DONE, run or 0)))
    marks.append(("shutdown", exited))
    out: dict[str, float] = {}
    previous = spawned
    for name, at in marks:
        if at is None:
            continue
        out[name] = round(at - previous, 3)
        previous = at
    return out


_SAVED = re.compile(r"^Saved stack \S+ checkpoint to: ")
_CREATED = re.compile(r"^Provider\[[^\]]*\]\.Create\((urn:[^)]*)\) success")
_RETIRED = re.compile(r"^StepExecutor worker\(-?\d+\): step create on (urn:\S+) retired")


def saves(log: str) -> list[float]:
    """When the engine saved the stack's checkpoint (the file backend logs each save)."""
    return [line.at for line in lines(log) if _SAVED.match(line.msg)]


def checkpoint_waits(log: str) -> list[float]:
    """For each resource created, the seconds from its provider's answer to its step's end:
    the step ends once the checkpoint that records it is saved (behind any saves queued
    before it)."""
    answered: dict[str, float] = {}
    waits: list[float] = []
    for line in lines(log):
        if (found := _CREATED.match(line.msg)) is not None:
            answered[found.group(1)] = line.at
        elif (found := _RETIRED.match(line.msg)) is not None and found.group(1) in answered:
            waits.append(line.at - answered.pop(found.group(1)))
    return waits


def save_times(log: str) -> list[tuple[int, float]]:
    """(which save, counted from 0; its seconds) for the saves that can be timed alone: the
    first save after a resource's create answered, when it is the one that ended that
    resource's step (the step retires before the next save). Another save under way then
    (another step's, begun or ended) comes first and is followed by no such retirement: not
    timed. The time is the save's: serializing the state, backing up the previous file and
    writing the new one."""
    out: list[tuple[int, float]] = []
    count = 0
    answered: tuple[str, float] | None = None  # the first create answered since the last save
    timed: tuple[str, int, float] | None = None  # a save waiting for its step's retirement
    for line in lines(log):
        if (found := _CREATED.match(line.msg)) is not None:
            answered = answered or (found.group(1), line.at)
        elif _SAVED.match(line.msg):
            timed = None
            if answered is not None:
                timed = (answered[0], count, line.at - answered[1])
            answered, count = None, count + 1
        elif (found := _RETIRED.match(line.msg)) is not None and timed is not None:
            if found.group(1) == timed[0]:
                out.append((timed[1], timed[2]))
            timed = None
    return out
