"""What an operator sees when an update fails, at the engine boundary on a real host: the
failed build is reported at once, as its message alone, with the lines cargo and the build
script printed, while another build holds the host's cores; the build left running is named
when the provider exits, listed by `rbee-infra status`, and stopped by `rbee-infra builds
--stop`. (Through the real Pulumi CLI: tests/e2e/test_failure_e2e.py.)
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from rbee_infra import cli
from rbee_infra.status.model import SCHEMA_FILE
from tests.harness._selfcheck_provider import FileProvider
from tests.harness.engine import Decl, Engine
from tests.harness.fixture_repo import (
    BUILD_SCRIPT_PANIC,
    RbeeRepo,
    build_processes,
    build_script_events,
)
from tests.harness.fleet import declare, make_fleet
from tests.harness.hosts import Host, HostSet, wait_until

pytestmark = pytest.mark.hosts

ROOT = Path(__file__).resolve().parents[1]

BURN = 60.0  # the worker's build script keeps both cores busy this long
HEADLINE = "hive host1: build failed (exit 101): cargo build --release --bin rbee-hive"


@contextmanager
def cores_busy(host: Host) -> Iterator[None]:
    """Two busy loops as the host's user: its cores are taken while the block runs."""
    pids = host.run(
        "for i in 1 2; do sh -c 'while :; do :; done' >/dev/null 2>&1 </dev/null & "
        "echo $!; done"
    ).stdout.split()
    try:
        yield
    finally:
        host.run(f"kill {' '.join(pids)}", check=False)


def assert_build_failure_message(error: str) -> None:
    """The README's message alone, then what cargo and the build script said."""
    assert error.startswith(HEADLINE + "\n"), error
    assert "Traceback" not in error and "File \"" not in error, error
    assert "cargo:rerun-if" not in error, error
    assert "error: failed to run custom build command for `rbee-hive v0.2.0" in error
    assert "panicked at bin/rbee-hive/build.rs:" in error
    assert error.splitlines()[-1].strip() == BUILD_SCRIPT_PANIC


def write_stack(base: Path, config: dict[str, Any], stack: str) -> Path:
    """A project dir for the operator CLI with `config` as stack `stack`."""
    (base / "stacks").mkdir(parents=True)
    shutil.copy(ROOT / "Pulumi.yaml", base / "Pulumi.yaml")
    (base / "stacks" / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}))
    return base


def test_a_failed_build_is_reported_at_once_and_the_build_left_running_is_shown_and_stopped(
    hosts1: HostSet, rbee_repo: RbeeRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (host,) = hosts1.hosts
    rbee_repo.build_script_branch("build-script-engine", worker_seconds=BURN)
    config = make_fleet(
        hosts1, rbee_repo, workers_per_hive=1, ref={"branch": "build-script-engine"}
    )
    # as `pulumi up` without --continue-on-error: the run stops at the hive's failure
    with Engine(tmp_path / "state" / "stack.json", continue_on_error=False) as engine:
        with cores_busy(host):
            result = engine.up(declare(config))
            returned = time.time()
        events = build_script_events(host)
        assert_build_failure_message(result.errors["hive-host1"])
        # at once, on a busy host: the worker's build, started ahead, took the build lock when
        # the hive's failed; the report does not wait for it (it waited out that whole build)
        late = returned - events["hive-build-script-panics"]
        assert late < 5.0, f"reported {late:.1f}s after the build script panicked"
        assert set(engine.state()) == {"build-kickoff"}
        # meanwhile the worker's build runs on, burning both cores
        wait_until(lambda: "worker-build-script-starts" in build_script_events(host), timeout=60)
        assert "worker-build-script-ends" not in build_script_events(host)
    # the provider, stopped by the engine at the end of the run, named the build left running
    said = engine.provider_log_path.read_text()
    assert (
        f"warning: worker host1/cpu: build of llm-worker-rbee-cpu still running on "
        f"{host.user}@{host.address}:{host.port} (for "
    ) in said, said[-3000:]
    assert "no install took it up, it goes on and the next `up` adopts it; " in said
    assert "`rbee-infra builds --stop` stops it" in said
    assert build_processes(host)

    project = write_stack(tmp_path / "project", config, "test")
    common = ["--project-dir", str(project), "--stack", "test"]
    # status lists it, running, with its age and phase
    capsys.readouterr()
    assert cli.main(["status", *common, "--json"]) == 1  # nothing installed: drift
    doc = json.loads(capsys.readouterr().out)
    jsonschema.validate(doc, json.loads(SCHEMA_FILE.read_text()))
    (build,) = doc["hives"][0]["builds"]
    assert {k: build[k] for k in ("resource", "stack", "binary", "state")} == {
        "resource": "worker host1/cpu", "stack": "test", "binary": "llm-worker-rbee-cpu",
        "state": "running",
    }
    assert build["phase"] in ("clone", "build") and 0 <= build["ageSeconds"] < BURN
    cli.main(["status", *common])
    assert "hive host1: build worker host1/cpu: llm-worker-rbee-cpu running (for " in (
        capsys.readouterr().out
    )

    # `rbee-infra builds` lists it; `--stop` stops it (its processes are gone)
    assert cli.main(["builds", *common]) == 0
    listed = capsys.readouterr().out
    assert f"hive host1 ({host.user}@{host.address}:{host.port}): worker host1/cpu: " in listed
    assert "llm-worker-rbee-cpu running (for " in listed
    assert cli.main(["builds", *common, "--stop"]) == 0
    stopped = capsys.readouterr().out
    assert "stopped worker host1/cpu: llm-worker-rbee-cpu (it was running for " in stopped, stopped
    assert "worker host1/cpu: llm-worker-rbee-cpu stopped (exit 124) in phase " in stopped
    assert build_processes(host) == []
    assert "worker-build-script-ends" not in build_script_events(host)


def test_in_the_provider_server_an_expected_error_is_its_message_and_a_bug_its_traceback(
    hosts1: HostSet, rbee_repo: RbeeRepo, tmp_path: Path
) -> None:
    """One provider process (the SDK's server as a subprocess) serving rbee-infra's providers
    and, beside them, a provider with a bug: the host that refuses connections is reported as
    the message alone, the bug with its whole traceback."""
    (host,) = hosts1.hosts
    host.stop()
    files = tmp_path / "files"
    files.mkdir()
    decls = declare(make_fleet(hosts1, rbee_repo, **{"rbee:connectTimeout": 3}))
    # after the kick-off: rbee-infra's providers are loaded in the server by then
    bug = {"dir": str(files), "name": "bug.txt", "content": "x", "fail_create": True}
    decls.append(Decl("bug", FileProvider(), bug, depends_on=("build-kickoff",)))
    with Engine(tmp_path / "state" / "stack.json") as engine:
        result = engine.up(decls)
    assert result.errors["hive-host1"] == (
        f"hive host1: connect failed: Connection refused ({host.address}:{host.port})"
    )
    assert result.errors["bug"].startswith("Traceback (most recent call last):")
    assert result.errors["bug"].endswith("RuntimeError: create refused for bug.txt\n")
