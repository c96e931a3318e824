"""The build jobs on a host as JOBS lists them (pure): what each says, and which ones
`rbee-infra builds --stop` stops. On real hosts: tests/test_failure_report.py."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from rbee_infra.base.errors import HostError
from rbee_infra.config.spec import InstallSpec, parse_spec
from rbee_infra.decide.facts import BuildJob, duration, parse_jobs
from rbee_infra.host import hostview, jobs
from rbee_infra.host import scripts as host_scripts
from rbee_infra.install import git
from rbee_infra.stack import kickoff
from rbee_infra.status.assess import builds_of
from rbee_infra.status.collect import stoppable

pytestmark = pytest.mark.unit

HOLDER = "prod/worker-gpu-host-cpu (worker gpu-host/cpu) since 2026-01-02T03:04:05+00:00"
LISTING = "\n".join([
    f"job\tJ/a/1\trunning\tbuild\t1700000000\t1700000125\t{HOLDER}\tllm-worker-rbee-cpu",
    "job\tJ/b/2\texit 0\tinstall\t1700000000\t1700004000\t"
    "prod/hive-gpu-host (hive gpu-host) since x\trbee-hive",
    f"job\tJ/a/3\texit 124\tbuild\t1700000000\t1700000001\t{HOLDER}\tllm-worker-rbee-cpu",
    "job\tJ/c/4\texit 101\tclone\t1700000000\t1700000001\t"
    "dev/worker-gpu-host-cuda (worker gpu-host/cuda) since x\tllm-worker-rbee-cuda",
    "job\tJ/d/5\tlost\t\t\t1700000001\t",  # a job from before jobs recorded whose they are
    "not a job line",
])


def test_each_job_says_whose_it_is_what_it_does_and_for_how_long() -> None:
    found = parse_jobs(LISTING)
    assert [j.summary() for j in found] == [
        "worker gpu-host/cpu: llm-worker-rbee-cpu running (for 2m 05s, phase build)",
        "hive gpu-host: rbee-hive built, not installed yet (the next `up` installs it)",
        "worker gpu-host/cpu: llm-worker-rbee-cpu stopped (exit 124) in phase build; "
        "the next `up` builds it again",
        "worker gpu-host/cuda: llm-worker-rbee-cuda failed (exit 101) in phase clone; "
        "the next `up` builds it again",
        "a build: a binary lost (it neither runs nor ended: killed, or a reboot)",
    ]
    running = found[0]
    assert (running.stack, running.label, running.age, running.exit_status) == (
        "prod", "worker gpu-host/cpu", 125, None
    )
    assert found[4].age is None and found[4].stack == "" and found[4].phase == ""
    assert [duration(s) for s in (0, 59, 60, 3599, 3600, 7322)] == [
        "0s", "59s", "1m 00s", "59m 59s", "1h 00m", "2h 02m"
    ]


def test_stop_takes_the_running_builds_of_the_stack() -> None:
    running = parse_jobs(LISTING)[0]  # prod's
    other = BuildJob("J/x", "running", None, "build", 1, "dev/hive-h (hive h) since x", "b")
    legacy = BuildJob("J/y", "running", None, "lock", None, "", "")
    done = parse_jobs(LISTING)[1]
    assert stoppable(running, "prod") and not stoppable(other, "prod")
    assert stoppable(legacy, "prod")  # says no stack: taken as this one's
    assert not stoppable(done, "prod") and not stoppable(done, None)
    assert all(stoppable(j, None) for j in (running, other, legacy))  # --config: any stack's


def test_status_lists_them_running_first_and_reads_them_in_its_batch() -> None:
    shown = builds_of(parse_jobs(LISTING))
    assert [(b.state, b.job) for b in shown] == [
        ("running", "~/J/a/1"), ("built", "~/J/b/2"), ("failed", "~/J/a/3"),
        ("failed", "~/J/c/4"), ("lost", "~/J/d/5"),
    ]
    assert shown[0].model_dump(by_alias=True) == {
        "resource": "worker gpu-host/cpu", "stack": "prod", "binary": "llm-worker-rbee-cpu",
        "state": "running", "phase": "build", "ageSeconds": 125, "exitStatus": None,
        "job": "~/J/a/1",
        "summary": "worker gpu-host/cpu: llm-worker-rbee-cpu running (for 2m 05s, phase build)",
    }
    need = hostview.Need(cargo="cargo", jobs=True)
    assert hostview.batch_parts(need)[-1] == (host_scripts.JOBS, jobs.listing_args())
    assert jobs.listing_args(["J/a/1"]) == [".local/share/rbee/jobs", "J/a/1"]
    assert not hostview.Need(cargo="cargo").covers(need) and need.covers(hostview.Need("cargo"))


def _spec(worker: str) -> InstallSpec:
    return parse_spec({
        "alias": "gpu-host", "component": "worker", "workerType": worker,
        "binary": f"llm-worker-rbee-{worker}", "features": [worker],
        "source": {"method": "git", "repo": "https://example.org/r.git", "tag": "v0.2.0"},
        "connection": {"host": "10.0.0.5", "port": 22, "user": "vince", "knownHosts": "/k"},
        "stack": "prod", "resourceName": f"worker-gpu-host-{worker}",
    })


def test_at_exit_the_provider_names_what_each_unclaimed_build_became(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kickoff.report_left_running, with what the hosts answered given: a build still
    running is a warning with where, age and phase; one that finished is said; one whose host
    could not be asked may still run; one taken up by its install, gone, failed or never
    started is not mentioned."""
    specs = {job: _spec(worker) for job, worker in (
        ("J/run", "cpu"), ("J/built", "cuda"), ("J/unasked", "metal"), ("J/gone", "rocm"),
        ("J/failed", "vulkan"), ("J/taken", "npu"), ("J/unstarted", "tpu"),
    )}
    loop = asyncio.new_event_loop()
    started = {}
    for job in specs:
        started[job] = loop.create_future()
        started[job].set_result("not started" if job == "J/unstarted" else "started")
    monkeypatch.setattr(kickoff, "LAUNCHED", specs)
    monkeypatch.setattr(git, "KICKED", {j: f for j, f in started.items() if j != "J/taken"})
    listed = {j.job: j for j in parse_jobs(LISTING)}

    async def find(left: dict[str, InstallSpec], **_: object) -> dict[str, object]:
        assert set(left) == set(specs) - {"J/taken", "J/unstarted"}
        return {
            "J/run": dataclasses.replace(listed["J/a/1"], job="J/run"),
            "J/built": dataclasses.replace(listed["J/b/2"], job="J/built"),
            "J/unasked": HostError("worker gpu-host/metal", "connect", "timed out"),
            "J/gone": None,
            "J/failed": dataclasses.replace(listed["J/c/4"], job="J/failed"),
        }

    said: list[tuple[str, str, str]] = []
    monkeypatch.setattr(jobs, "find", find)
    monkeypatch.setattr(kickoff, "warn", lambda label, text: said.append(("warn", label, text)))
    monkeypatch.setattr(kickoff, "report", lambda label, text: said.append(("info", label, text)))
    kickoff.report_left_running()
    loop.close()
    stop = "`rbee-infra builds --stop` stops it"
    assert said == [
        ("warn", "worker gpu-host/cpu", "build of llm-worker-rbee-cpu still running on "
         "vince@10.0.0.5:22 (for 2m 05s, phase build): no install took it up, it goes on and "
         f"the next `up` adopts it; {stop}"),
        ("info", "worker gpu-host/cuda", "build of llm-worker-rbee-cuda on vince@10.0.0.5:22 "
         "finished; the next `up` installs it"),
        ("warn", "worker gpu-host/metal", "the build of llm-worker-rbee-metal started ahead on "
         f"vince@10.0.0.5:22 may still be running (no install took it up; job J/unasked); {stop}"),
    ]
