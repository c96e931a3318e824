"""What an operator sees, through the real Pulumi CLI, when an install fails or is cancelled:
one clear error at once, and no build left running unseen.

- a build that fails in its build script (the fixture's `build-script` branch: rbee's hive
  without pnpm) while the worker's build, started ahead, takes both cores: `pulumi up` reports
  it within seconds of the panic as the README's message and cargo's error lines, no Python
  traceback; the worker's build left running is named with where it runs; `rbee-infra status`
  shows the build with its age and phase, and `rbee-infra builds --stop` stops it;
  `rbee-infra up` (continuing on errors) reads the same and installs the worker;
- an expected error of the program (`pulumi preview` of a token in plain config) reads as its
  message alone;
- Ctrl-C on `rbee-infra up` and on `pulumi up`: the run ends after the running install, and
  the builds started ahead that no install took up are named; `builds --stop` stops them.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.project import (
    exists,
    hosts_and_repo,
    interrupt,
    needs_cli,
    on_host,
    project_on,
)
from tests.harness import standin_cargo
from tests.harness.fixture_repo import (
    BUILD_SCRIPT_PANIC,
    build_processes,
    build_script_events,
    expected_worker_about,
)
from tests.harness.fleet import hive_config, make_fleet
from tests.harness.hosts import Host, wait_until

pytestmark = needs_cli

BURN = 90.0  # the worker's build script keeps both cores busy this long
HEADLINE = "hive host1: build failed (exit 101): cargo build --release --bin rbee-hive"


@pytest.fixture
def base(tmp_path: Path) -> Path:
    tmp_path.chmod(0o755)
    return tmp_path


def assert_clean_build_failure(out: str) -> None:
    """The message alone, with what cargo and the build script said, and no Python."""
    assert f"error: {HEADLINE}" in out, out[-5000:]
    assert "Traceback" not in out and 'File "' not in out, out[-5000:]
    assert "cargo:rerun-if" not in out
    assert "error: failed to run custom build command for `rbee-hive v0.2.0" in out
    assert "panicked at bin/rbee-hive/build.rs:" in out and BUILD_SCRIPT_PANIC in out


def left_running(host: Host, worker: str) -> str:
    """What the provider says, at the end of the run, of a worker's build left running."""
    return (f"warning: worker host1/{worker}: build of llm-worker-rbee-{worker} still running "
            f"on {host.user}@{host.address}:{host.port} (for ")


def test_a_failed_build_reads_as_its_message_at_once_and_the_build_left_running_is_named(
    base: Path,
) -> None:
    with hosts_and_repo(1, base) as (hosts, repo), project_on(hosts, repo, base) as project:
        (host,) = hosts
        # an expected error of the program, in `pulumi preview`: its message alone
        plain = make_fleet(hosts, repo, workers_per_hive=1)
        plain["rbee:hives"][0]["installMethod"]["git"]["repo"] = (
            "https://x-access-token:ghp_e2eToken@127.0.0.1:9/rbee.git"
        )
        project.write_config(plain)
        refused = project.run("preview")
        out = refused.stdout + refused.stderr
        assert refused.returncode != 0, out[-3000:]
        assert "error: invalid configuration:" in out
        assert "hives[0].installMethod.git.repo: this URL carries a credential" in out
        assert "Traceback" not in out and "unhandled exception" not in out, out[-3000:]
        assert "ghp_e2eToken" not in out

        repo.build_script_branch("build-script", worker_seconds=BURN)
        config = make_fleet(hosts, repo, workers_per_hive=1, ref={"branch": "build-script"})
        project.write_config(config)

        # `pulumi up`, stopping at the first failure as it does by default
        up = project.run("up", "--yes", "--skip-preview")
        returned = time.time()
        out = up.stdout + up.stderr
        assert up.returncode != 0, out[-3000:]
        assert_clean_build_failure(out)
        # within seconds of the panic, while the worker's build (started ahead) holds the
        # build lock and both cores; it goes on, and the run names it, where it runs and how
        # to stop it
        late = returned - build_script_events(host)["hive-build-script-panics"]
        assert late < 10.0, f"`pulumi up` ended {late:.1f}s after the build script panicked"
        assert left_running(host, "cpu") in out, out[-4000:]
        assert "no install took it up, it goes on and the next `up` adopts it; " \
               "`rbee-infra builds --stop` stops it" in out
        wait_until(lambda: "worker-build-script-starts" in build_script_events(host), timeout=60)
        assert "worker-build-script-ends" not in build_script_events(host)

        # status shows it with its age and phase; `builds --stop` stops it
        status = project.rbee_infra("status")
        assert "hive host1: build worker host1/cpu: llm-worker-rbee-cpu running (for " in (
            status.stdout
        ), status.stdout + status.stderr
        stop = project.rbee_infra("builds", "--stop")
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert (f"hive host1 ({host.user}@{host.address}:{host.port}): stopped worker "
                "host1/cpu: llm-worker-rbee-cpu (it was running for ") in stop.stdout
        assert build_processes(host) == []
        assert "worker-build-script-ends" not in build_script_events(host)

        # `rbee-infra up` goes on past the failure: the same message, and the SDK's own
        # exceptions for what depends on the failed hive (its workers, the stack's outputs)
        # never show; the worker, which does not need its hive, is installed
        repo.build_script_branch("build-script-short", worker_seconds=2)
        project.write_config(
            make_fleet(hosts, repo, workers_per_hive=1, ref={"branch": "build-script-short"})
        )
        again = project.rbee_infra("up")
        out = again.stdout + again.stderr
        assert again.returncode == 1, out[-4000:]
        assert_clean_build_failure(out)
        assert "unhandled exception" not in out and "ResourceRegistrationFailed" not in out
        about = on_host(host, ".local/share/rbee/workers/rbee-worker-cpu --help")
        assert about.splitlines()[0] == expected_worker_about("0.2.0", ("cpu",))
        assert not exists(host, ".local/bin/rbee-hive")
        assert project.outputs()["host1"]["hive"]["path"] is None  # it failed: null


def test_ctrl_c_names_the_builds_no_install_took_up(base: Path) -> None:
    with hosts_and_repo(1, base) as (hosts, repo), project_on(hosts, repo, base) as project:
        (host,) = hosts
        config = make_fleet(hosts, repo, workers_per_hive=2)
        hive_config(config, "host1")["cargo"] = standin_cargo.install([host], 8)
        project.write_config(config)

        def hive_building() -> bool:
            return any(b == "rbee-hive" for _, _, b in standin_cargo.builds(host)) or (
                "start" in on_host(host, "grep rbee-hive bench/cargo.log"))

        # Ctrl-C on `rbee-infra up` while the hive builds: Pulumi lets the hive's install
        # finish; rbee-infra keeps streaming, so the provider's last words reach the operator
        running = project.start_rbee_infra("up")
        wait_until(hive_building, timeout=120)
        out = interrupt(running)
        assert running.returncode == 130, out[-4000:]
        assert "rbee-infra: interrupted: Pulumi is cancelling" in out
        assert "update canceled" in out
        for worker in ("cpu", "cuda"):
            assert left_running(host, worker) in out, out[-4000:]
        stop = project.rbee_infra("builds", "--stop")
        assert stop.stdout.count(": stopped worker host1/") == 2, stop.stdout

        # Ctrl-C on `pulumi up` (a new tag: all three build again)
        config["rbee:hives"][0]["installMethod"]["git"]["tag"] = "v0.2.0"
        project.write_config(config)
        on_host(host, "rm -f bench/cargo.log")
        running = project.start("up", "--yes", "--skip-preview")
        wait_until(hive_building, timeout=120)
        out = interrupt(running)
        assert running.returncode != 0 and "update canceled" in out, out[-4000:]
        for worker in ("cpu", "cuda"):
            assert left_running(host, worker) in out, out[-4000:]
        listed = project.rbee_infra("builds")
        assert listed.stdout.count("running (for ") == 2, listed.stdout
        stop = project.rbee_infra("builds", "--stop")
        assert stop.stdout.count(": stopped worker host1/") == 2, stop.stdout
        assert "running (for " not in project.rbee_infra("builds").stdout
        assert build_processes(host) == []
