"""The scenario matrix on real sshd hosts, through the engine boundary, from stack config.

Every test goes config -> the real program (under mocks, to get the declared resources) ->
the SDK's provider server over gRPC -> real SSH, git and cargo on the harness hosts, and
asserts the effect on the hosts (over SSH) and the exact error text.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest

from rbee_infra.base import layout
from tests.harness.assertions import (
    assert_hive_installed,
    assert_nothing_installed,
    assert_worker_installed,
    ssh,
)
from tests.harness.engine import Engine
from tests.harness.fixture_repo import RbeeRepo, worker_usage
from tests.harness.fleet import declare, hive_config, make_fleet, up_ok
from tests.harness.hosts import HostSet, mount_tmpfs, unmount_tmpfs
from tests.harness.release_server import script_binary
from tests.harness.snapshot import diff_snapshots, snapshot_home
from tests.metrics import record

pytestmark = pytest.mark.hosts


def ops(result: Any) -> dict[str, str]:
    """The plan for the hives and workers (each host's BuildKickoff is checked on its own)."""
    return {k: v for k, v in result.ops().items() if not k.startswith("build-")}


def recorded(engine: Engine) -> list[str]:
    """Hives and workers in state."""
    return sorted(k for k in engine.state() if not k.startswith("build-"))


def summary(result: Any, name: str) -> str:
    assert not result.ok and name in result.errors, (result.ops(), result.errors)
    return result.error_summary(name)


# ---------------------------------------------------------------- happy path


def test_install_a_hive_and_a_worker(hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine) -> None:
    (host,) = hosts1.hosts
    config = make_fleet(hosts1, rbee_repo, workers_per_hive=1)
    result = up_ok(engine, config)
    assert ops(result) == {"hive-host1": "create", "worker-host1-cpu": "create"}
    assert_hive_installed(hosts1, host, version="0.1.0", commit=rbee_repo.commit_of("v0.1.0"))
    assert_worker_installed(hosts1, host, "cpu", features=["cpu"], version="0.1.0")
    timings = engine.state()["hive-host1"].outputs["phaseSeconds"]
    record("install", host=host.name, clone=timings.get("clone"), build=timings.get("build"),
           total=result.durations["hive-host1"])


def test_several_hives_install_concurrently(
    hosts: HostSet, rbee_repo: RbeeRepo, engine: Engine, tmp_path: Any
) -> None:
    config = make_fleet(hosts, rbee_repo)
    # the same three installs one host at a time first (each its own stack), then undone
    started = time.monotonic()
    for index, hive in enumerate(config["rbee:hives"]):
        with Engine(tmp_path / f"seq{index}" / "state.json") as one:
            up_ok(one, {**config, "rbee:hives": [hive]})
            assert one.destroy().ok
    sequential = time.monotonic() - started

    started = time.monotonic()
    result = up_ok(engine, config)
    concurrent = time.monotonic() - started
    for host in hosts.hosts:
        assert_hive_installed(hosts, host, version="0.1.0")
        timings = engine.state()[f"hive-{host.name}"].outputs["phaseSeconds"]
        record("install", host=host.name, clone=timings.get("clone"), build=timings.get("build"),
               total=result.durations[f"hive-{host.name}"])
    record("speedup", hosts=3, concurrent=concurrent, sequential=sequential,
           ratio=sequential / concurrent)
    assert concurrent < sequential


def test_several_workers_on_one_host_build_concurrently_without_corruption(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    config = make_fleet(hosts1, rbee_repo, workers_per_hive=3)
    hive_config(config, "host1")["workers"][2]["features"] = ["cpu", "metal"]
    up_ok(engine, config)
    assert_worker_installed(hosts1, host, "cpu", features=["cpu"])
    assert_worker_installed(hosts1, host, "cuda", features=["cuda"])
    assert_worker_installed(hosts1, host, "metal", features=["cpu", "metal"])
    assert_hive_installed(hosts1, host, version="0.1.0")


# ---------------------------------------------------------------- errors


def test_clone_fails_when_the_repo_does_not_exist(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    config = make_fleet(hosts1, rbee_repo)
    missing = rbee_repo.url.rsplit("/", 1)[0] + "/no-such-repo.git"
    hive_config(config, "host1")["installMethod"] = {"git": {"repo": missing, "tag": "v0.1.0"}}
    result = engine.up(declare(config))
    error = result.errors["hive-host1"]
    assert "hive host1: resolve failed (exit 128): git ls-remote of tag 'v0.1.0'" in error
    assert "no-such-repo.git" in error
    assert recorded(engine) == []
    assert_nothing_installed(hosts1, host)


def test_unknown_ref_is_named(hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine) -> None:
    (host,) = hosts1.hosts
    config = make_fleet(hosts1, rbee_repo, ref={"tag": "v9.9.9"})
    result = engine.up(declare(config))
    assert summary(result, "hive-host1").endswith(
        f"hive host1: resolve failed: tag 'v9.9.9' not found in {rbee_repo.url}"
    )
    assert recorded(engine) == []
    assert_nothing_installed(hosts1, host)


def test_compile_error_is_reported_and_nothing_but_the_build_cache_is_left(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    config = make_fleet(hosts1, rbee_repo, ref={"branch": "broken"})
    result = engine.up(declare(config))
    error = result.errors["hive-host1"]
    assert "hive host1: build failed (exit 101): cargo build --release --bin rbee-hive" in error
    assert "error" in error and "could not compile" in error
    assert recorded(engine) == []
    assert_nothing_installed(hosts1, host, but_the_build_cache=True)
    # the next `up` retries: fixed config converges
    up_ok(engine, make_fleet(hosts1, rbee_repo))
    assert_hive_installed(hosts1, host, version="0.1.0")


def test_unreachable_host(hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine) -> None:
    (host,) = hosts1.hosts
    host.stop()
    result = engine.up(declare(make_fleet(hosts1, rbee_repo)))
    assert summary(result, "hive-host1").endswith(
        f"hive host1: connect failed: Connection refused ({host.address}:{host.port})"
    )
    assert recorded(engine) == []
    host.start()
    up_ok(engine, make_fleet(hosts1, rbee_repo))
    assert_hive_installed(hosts1, host, version="0.1.0")
    record("fault", fault="unreachable host", survived=True, data_lost=0)


def test_authentication_refused(hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine) -> None:
    (host,) = hosts1.hosts
    config = make_fleet(hosts1, rbee_repo, **{"rbee:sshPrivateKeyPath": str(hosts1.unauthorized_key_path)})
    result = engine.up(declare(config))
    assert summary(result, "hive-host1").endswith(
        f"hive host1: connect failed: authentication refused for user {host.user}"
    )
    assert recorded(engine) == []
    assert_nothing_installed(hosts1, host)
    record("fault", fault="authentication refused", survived=True, data_lost=0)


def test_install_dir_not_writable(hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine) -> None:
    (host,) = hosts1.hosts
    host.run("mkdir -p .local/share")
    bin_dir = host.home / ".local" / "bin"
    bin_dir.mkdir()
    bin_dir.chmod(0o755)  # owned by root: the host user cannot write it
    result = engine.up(declare(make_fleet(hosts1, rbee_repo)))
    error = result.errors["hive-host1"]
    assert "hive host1: activate failed (exit 1)" in error
    assert "Permission denied" in error
    assert recorded(engine) == []
    assert_nothing_installed(hosts1, host, but_the_build_cache=True)
    record("fault", fault="permission denied (install dir)", survived=True, data_lost=0)


def test_verification_failure(hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine) -> None:
    (host,) = hosts1.hosts
    result = engine.up(declare(make_fleet(hosts1, rbee_repo, ref={"branch": "bad-version"})))
    assert summary(result, "hive-host1")  # it failed
    # the message alone (no traceback)
    assert result.errors["hive-host1"] == (
        "hive host1: verify failed: rbee-hive --version exited 3 "
        "(expected 'rbee-hive' in the first line): version check failed\n"
        "rbee-hive --help exited 3 (expected a usage line): help check failed"
    )
    assert recorded(engine) == []
    # nothing installed; the build cache stays for the next build (see the test below)
    assert_nothing_installed(hosts1, host, but_the_build_cache=True)
    assert host.run("ls -d .local/share/rbee/build/*/target/release").returncode == 0


# a cargo that also writes what it prints (its build log) to ~/cargo.log, one section a run
LOGGING_CARGO = """#!/bin/sh
echo "== cargo $*" >> "$HOME/cargo.log"
cargo "$@" 2>> "$HOME/cargo.log"
"""


def cargo_builds(host: Any) -> list[list[str]]:
    """The `Compiling` lines of each `cargo build` the logging cargo ran, in order."""
    builds: list[list[str]] = []
    for line in host.run("cat cargo.log").stdout.splitlines():
        if line.startswith("== cargo "):
            if line.startswith("== cargo build "):
                builds.append([])
        elif builds and line.strip().startswith("Compiling "):
            builds[-1].append(line.strip())
    return builds


def local_hive_and(
    hosts1: HostSet, rbee_repo: RbeeRepo, tmp_path: Any, worker: dict[str, Any]
) -> dict[str, Any]:
    """Stack config: a hive uploaded as a local binary (a stand-in answering `--version`) and
    `worker`, so the worker is the host's only build from git."""
    hive_binary = tmp_path / "rbee-hive"
    hive_binary.write_bytes(script_binary("rbee-hive 0.2.0"))
    hive_binary.chmod(0o755)
    config = make_fleet(hosts1, rbee_repo)
    hive = hive_config(config, "host1")
    hive["installMethod"] = {"local": {"path": str(hive_binary)}}
    hive["workers"] = [worker]
    return config


def test_a_worker_that_fails_help_too_is_refused(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine, tmp_path: Any
) -> None:
    """A real-shaped worker has no --version; when its --help fails as well (the fixture's
    bad-version branch), nothing proves it runs."""
    (host,) = hosts1.hosts
    source = {"git": {"repo": rbee_repo.url, "branch": "bad-version"}}
    config = local_hive_and(hosts1, rbee_repo, tmp_path, {"type": "cpu", "installMethod": source})
    result = engine.up(declare(config))
    assert summary(result, "worker-host1-cpu")  # it failed
    assert result.errors["worker-host1-cpu"] == (
        "worker host1/cpu: verify failed: llm-worker-rbee-cpu --version exited 2 "
        "(expected 'llm-worker-rbee-cpu' in the first line): error: unexpected argument "
        "'--version' found\n"
        + worker_usage("llm-worker-rbee-cpu")
        + "\nFor more information, try '--help'.\n"
        "llm-worker-rbee-cpu --help exited 3 (expected a usage line): help check failed"
    )
    assert recorded(engine) == ["hive-host1"]
    assert ssh(hosts1, host, "test -e .local/share/rbee/workers/rbee-worker-cpu").returncode == 1


def test_a_failed_verification_keeps_the_build_cache_and_the_next_up_compiles_nothing(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine, tmp_path: Any
) -> None:
    """The real run of issue 28: a hive uploaded as a local binary, a cpu worker from git,
    its verification fails. The build dir survives; once the config is fixed, `up` builds
    again without compiling a crate."""
    (host,) = hosts1.hosts
    host.run("mkdir -p bin && cat > bin/cargo-logged && chmod 0755 bin/cargo-logged",
             input=LOGGING_CARGO)
    worker = {
        "type": "cpu",
        "installMethod": {"git": {"repo": rbee_repo.url, "tag": "v0.2.0"}},
        "verify": {"args": ["--help"], "expect": "Usage: nothing like this"},
    }
    config = local_hive_and(hosts1, rbee_repo, tmp_path, worker)
    hive_config(config, "host1")["cargo"] = "~/bin/cargo-logged"
    result = engine.up(declare(config))
    assert summary(result, "worker-host1-cpu")  # it failed
    error = result.errors["worker-host1-cpu"]
    assert (
        "worker host1/cpu: verify failed: llm-worker-rbee-cpu --help exited 0 "
        "(expected 'Usage: nothing like this' in the output): "
    ) in error, error
    assert recorded(engine) == ["hive-host1"]
    # the failed release went; the checkout and the cargo target dir did not
    assert host.run("ls .local/share/rbee/releases").stdout.split() == ["rbee-hive"]
    cache = ".local/share/rbee/build/*"
    assert host.run(f"ls -d {cache}/checkout/.git {cache}/target/release").returncode == 0
    (first,) = cargo_builds(host)
    assert first and all("llm-worker-rbee v0.2.0" in ln for ln in first), first

    del worker["verify"]  # fixed: the default check, which the worker passes by --help
    up_ok(engine, config)
    assert_worker_installed(hosts1, host, "cpu", features=["cpu"], version="0.2.0")
    builds = cargo_builds(host)
    assert len(builds) == 2 and builds[1] == [], builds  # no crate compiled again
    outputs = engine.state()["worker-host1-cpu"].outputs
    assert (outputs["version"], outputs["verifiedBy"]) == ("llm-worker-rbee 0.2.0", "--help")
    receipt = json.loads(host.run("cat .local/share/rbee/receipts/rbee-worker-cpu.json").stdout)
    assert (receipt["version"], receipt["verifiedBy"]) == ("llm-worker-rbee 0.2.0", "--help")
    assert receipt["commit"] == rbee_repo.commit_of("v0.2.0")

    assert engine.destroy().ok
    assert_nothing_installed(hosts1, host)
    record("fault", fault="verification failure keeps the build cache", survived=True,
           data_lost=0)


# ---------------------------------------------------------------- edge cases


def test_force_reinstall_rebuilds_from_a_fresh_checkout(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    config = make_fleet(hosts1, rbee_repo)
    up_ok(engine, config)
    marker = host.run("ls -d .local/share/rbee/build/*/checkout").stdout.strip() + "/STALE"
    host.run(f"touch {marker}")
    assert ops(engine.preview(declare(config))) == {"hive-host1": "same"}

    hive_config(config, "host1")["reinstallTrigger"] = "2026-11-25"
    assert ops(engine.preview(declare(config))) == {"hive-host1": "update"}
    up_ok(engine, config)
    assert host.run(f"test -e {marker}", check=False).returncode == 1
    assert engine.state()["hive-host1"].outputs["releaseId"].endswith(
        "-r" + layout.short_hash("2026-11-25", length=6)
    )
    assert_hive_installed(hosts1, host, version="0.1.0")


def test_upgrade_to_another_tag_and_back(hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine) -> None:
    (host,) = hosts1.hosts
    for tag, version in (("v0.1.0", "0.1.0"), ("v0.2.0", "0.2.0"), ("v0.1.0", "0.1.0")):
        up_ok(engine, make_fleet(hosts1, rbee_repo, workers_per_hive=1, ref={"tag": tag}))
        assert_hive_installed(hosts1, host, version=version, commit=rbee_repo.commit_of(tag))
        assert_worker_installed(hosts1, host, "cpu", version=version)


def test_moved_branch_previews_as_an_update(
    hosts1: HostSet, fresh_rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    config = make_fleet(hosts1, fresh_rbee_repo, ref={"branch": "moving"})
    up_ok(engine, config)
    assert ops(engine.preview(declare(config))) == {"hive-host1": "same"}
    new_commit = fresh_rbee_repo.advance_branch("moving", version="0.2.1")
    before = snapshot_home(host)
    plan = engine.preview(declare(config))
    assert ops(plan) == {"hive-host1": "update"}
    assert diff_snapshots(before, snapshot_home(host)) == []
    up_ok(engine, config)
    assert_hive_installed(hosts1, host, version="0.2.1", commit=new_commit)


def test_partial_failure_leaves_the_others_installed_and_retries_the_failed_one(
    hosts: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    down = hosts.hosts[2]
    down.stop()
    config = make_fleet(hosts, rbee_repo)
    result = engine.up(declare(config))
    assert set(result.errors) == {"hive-host3"}
    assert recorded(engine) == ["hive-host1", "hive-host2"]
    for host in hosts.hosts[:2]:
        assert_hive_installed(hosts, host, version="0.1.0")
    down.start()
    assert ops(engine.preview(declare(config))) == {
        "hive-host1": "same", "hive-host2": "same", "hive-host3": "create"
    }
    up_ok(engine, config)
    assert_hive_installed(hosts, down, version="0.1.0")


def test_disk_full_during_build_keeps_the_previous_install(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    up_ok(engine, make_fleet(hosts1, rbee_repo))
    host.run("rm -rf .local/share/rbee/build && mkdir -p .local/share/rbee/build")
    mount_tmpfs(host, ".local/share/rbee/build", size="600k")
    try:
        result = engine.up(declare(make_fleet(hosts1, rbee_repo, ref={"tag": "v0.2.0"})))
        error = result.errors["hive-host1"]
        assert "hive host1: " in error and "No space left on device" in error
        assert_hive_installed(hosts1, host, version="0.1.0")
        assert engine.state()["hive-host1"].outputs["version"] == "rbee-hive 0.1.0"
    finally:
        unmount_tmpfs(host, ".local/share/rbee/build")
    up_ok(engine, make_fleet(hosts1, rbee_repo, ref={"tag": "v0.2.0"}))
    assert_hive_installed(hosts1, host, version="0.2.0")
    record("fault", fault="disk full during build", survived=True, data_lost=0)


# ---------------------------------------------------------------- features, dry run, removal


def test_feature_sets_and_changing_them_in_place(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    config = make_fleet(hosts1, rbee_repo, workers_per_hive=1)
    worker = hive_config(config, "host1")["workers"][0]
    for features in (["cpu"], ["cuda"], ["metal"], ["cpu", "cuda", "metal"]):
        worker["features"] = features
        result = up_ok(engine, config)
        assert_worker_installed(hosts1, host, "cpu", features=features)
        assert ops(result)["worker-host1-cpu"] in ("create", "update")


def test_preview_lists_exactly_the_plan_and_touches_no_host(
    hosts: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    config = make_fleet(hosts, rbee_repo, hives=2, workers_per_hive=2)
    up_ok(engine, config)
    changed = copy.deepcopy(config)
    hive_config(changed, "host1")["installMethod"]["git"] = {"repo": rbee_repo.url, "tag": "v0.2.0"}
    hive_config(changed, "host2")["workers"] = [{"type": "cpu"}, {"type": "metal"}]
    changed["rbee:hives"].append(make_fleet(hosts, rbee_repo)["rbee:hives"][2])
    before = {h.name: snapshot_home(h) for h in hosts.hosts}
    calls_before = len(engine.calls)
    plan = engine.preview(declare(changed))
    assert ops(plan) == {
        "hive-host1": "update",
        "worker-host1-cpu": "update",
        "worker-host1-cuda": "update",
        "hive-host2": "same",
        "worker-host2-cpu": "same",
        "worker-host2-metal": "create",
        "worker-host2-cuda": "delete",
        "hive-host3": "create",
    }
    assert {m for m, _ in engine.calls[calls_before:]} <= {"Check", "Diff", "Configure"}
    for host in hosts.hosts:
        assert diff_snapshots(before[host.name], snapshot_home(host)) == []


def test_dropped_worker_is_removed_and_destroy_leaves_nothing(
    hosts: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    config = make_fleet(hosts, rbee_repo, hives=2, workers_per_hive=2)
    up_ok(engine, config)
    host1 = hosts.hosts[0]
    hive_config(config, "host1")["workers"] = [{"type": "cpu"}]
    result = up_ok(engine, config)
    assert ops(result)["worker-host1-cuda"] == "delete"
    assert ssh(hosts, host1, "test -e .local/share/rbee/workers/rbee-worker-cuda").returncode == 1
    assert_worker_installed(hosts, host1, "cpu")
    assert_hive_installed(hosts, host1)
    destroyed = engine.destroy()
    assert destroyed.ok, destroyed.errors
    assert recorded(engine) == []
    for host in hosts.hosts:
        assert_nothing_installed(hosts, host)
