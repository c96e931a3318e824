"""Build once, install everywhere (docs/build.md), on real sshd hosts through the engine
boundary: `build: controller` builds each binary once on this machine and ships it; hosts need
no toolchain and build nothing; a host of another platform is refused; a second `up` rebuilds
nothing; a shipped binary that is not the recorded one is refused with nothing switched."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from rbee_infra import cli
from rbee_infra.base import layout
from tests.harness.assertions import assert_hive_installed, ssh
from tests.harness.engine import Engine
from tests.harness.fixture_repo import RbeeRepo
from tests.harness.fleet import declare, hive_config, make_fleet
from tests.harness.host_tools import host_without
from tests.harness.hosts import HostSet

pytestmark = pytest.mark.hosts

ROOT = Path(__file__).resolve().parents[1]
HIVE_BUILD = "build-controller-rbee-hive"
CPU_BUILD = "build-controller-llm-worker-rbee-cpu-cpu"


@pytest.fixture
def counted(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """This machine's cargo, wrapped to count its builds; a cache of the test's own."""
    log = tmp_path / "cargo-calls"
    wrapper = tmp_path / "cargo"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = build ] && echo "$*" >> {log}\n'
        'exec cargo "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    env = {"RBEE_INFRA_CARGO": str(wrapper), "RBEE_INFRA_CACHE": str(tmp_path / "cache")}
    return env, log


def builds(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def by_prefix(result: Any, prefix: str) -> dict[str, str]:
    return {k: v for k, v in result.ops().items() if k.startswith(prefix)}


def receipt(hosts: HostSet, host: Any, name: str) -> dict[str, Any]:
    done = ssh(hosts, host, f"cat {layout.receipt_path(name)}")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def status_json(tmp_path: Path, config: dict[str, Any], capsys: Any) -> dict[str, Any]:
    project = tmp_path / "project"
    (project / "stacks").mkdir(parents=True, exist_ok=True)
    (project / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (project / "stacks" / "Pulumi.test.yaml").write_text(yaml.safe_dump({"config": config}))
    capsys.readouterr()
    code = cli.main(["status", "--project-dir", str(project), "--stack", "test", "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def test_controller_builds_once_and_every_host_receives_the_binary(
    hosts: HostSet, rbee_repo: RbeeRepo, tmp_path: Path, counted: tuple[dict[str, str], Path],
    capsys: Any,
) -> None:
    env, log = counted
    first, second, third = hosts.hosts
    config = make_fleet(hosts, rbee_repo, hives=2, workers_per_hive=1, **{"rbee:build": "controller"})
    with Engine(tmp_path / "state.json", env=env) as engine:
        plan = engine.preview(declare(config))
        assert plan.ok, plan.errors
        planned = {k: v for k, v in plan.ops().items() if k.startswith("build-controller")}
        assert sorted(planned.values()) == ["create", "create"], planned
        assert builds(log) == []  # a preview builds nothing

        result = engine.up(declare(config))
        assert result.ok, result.errors
        calls = builds(log)
        assert len(calls) == 2, calls  # the hive once, the worker once, for both hosts
        for host in (first, second):
            assert_hive_installed(hosts, host, version="0.1.0",
                                  commit=rbee_repo.commit_of("v0.1.0"))
            # nothing was built on the host: no checkout, no cargo target dir, no job
            gone = ssh(hosts, host, f"test -e {layout.BUILD_DIR} || test -e {layout.JOBS_DIR}")
            assert gone.returncode == 1, f"{host.name} built something"
            hive, worker = receipt(hosts, host, "rbee-hive"), receipt(hosts, host, "rbee-worker-cpu")
            assert hive["builtOn"] == worker["builtOn"] == "this machine"
            # the version read from the source where it was built, and the check it passed
            assert worker["version"] == "llm-worker-rbee 0.1.0" and worker["verifiedBy"] == "--help"
            assert len(hive["buildKey"]) == 16 and hive["buildKey"] != worker["buildKey"]
        state = engine.state()
        (hive_build,) = [v for k, v in state.items() if k.startswith(HIVE_BUILD)]
        (cpu_build,) = [v for k, v in state.items() if k.startswith(CPU_BUILD)]
        assert hive_build.outputs["artifact"]["commit"] == rbee_repo.commit_of("v0.1.0")
        # the fixture has no Cargo.lock: one was generated, and both builds of the commit used it
        assert hive_build.outputs["lockOrigin"] == cpu_build.outputs["lockOrigin"] == "generated"
        lock = _lock(hive_build.outputs["cargoLock"])
        assert "[[package]]" in lock and lock == _lock(cpu_build.outputs["cargoLock"])

        # status shows where each install was built and from which build
        report = status_json(tmp_path, config, capsys)
        for hive in report["hives"]:
            for component in hive["components"]:
                assert component["state"] == "in-sync", component
                built = component["installed"]
                assert built["builtOn"] == "this machine" and len(built["buildKey"]) == 16

        # a second `up` changes nothing and builds nothing
        again = engine.preview(declare(config))
        assert {k: v for k, v in again.ops().items() if v != "same"} == {}, [
            (s.name, s.diffs, s.detailed_changes) for s in again.steps if s.op != "same"]
        assert engine.up(declare(config)).ok
        assert len(builds(log)) == 2

        # a third host that reports an older glibc than the build's is refused, alone
        config3 = make_fleet(hosts, rbee_repo, workers_per_hive=1, **{"rbee:build": "controller"})
        with host_without(third, "getconf") as tools:
            fake = tools / "getconf"
            fake.write_text("#!/bin/sh\necho 'glibc 2.17'\n")
            fake.chmod(0o755)
            refused = engine.up(declare(config3))
        assert set(refused.errors) == {"hive-host3", "worker-host3-cpu"}, refused.errors
        assert refused.errors["worker-host3-cpu"] == "skipped: dependency hive-host3 failed"
        message = refused.errors["hive-host3"]
        assert "hive host3: preflight failed: the binary built on this machine needs glibc" in message
        assert "this host has glibc 2.17" in message
        assert ssh(hosts, third, f"test -e {layout.ROOT}").returncode == 1  # nothing there
        assert len(builds(log)) == 2  # and nothing was rebuilt for it


def test_a_shipped_binary_that_is_not_the_recorded_build_is_refused(
    hosts1: HostSet, rbee_repo: RbeeRepo, tmp_path: Path, counted: tuple[dict[str, str], Path]
) -> None:
    env, _ = counted
    (host,) = hosts1.hosts
    config = make_fleet(hosts1, rbee_repo, **{"rbee:build": "controller"})
    with Engine(tmp_path / "state.json", env=env) as engine:
        assert engine.up(declare(config)).ok
        before = receipt(hosts1, host, "rbee-hive")
        # the build in this machine's cache is changed behind the stack's back, and the host
        # is asked to reinstall: the recorded sha256 no longer matches what would be shipped
        (built,) = (Path(env["RBEE_INFRA_CACHE"]) / "artifacts").glob("*/rbee-hive")
        built.write_bytes(built.read_bytes() + b"tampered")
        hive_config(config, host.name)["reinstallTrigger"] = "again"
        result = engine.up(declare(config))
        assert not result.ok
        errors = " ".join(result.errors.values())
        assert "is not on this machine as recorded" in errors or "sha256" in errors, errors
        # the previous release is still the active one, unchanged
        assert receipt(hosts1, host, "rbee-hive") == before
        assert_hive_installed(hosts1, host, version="0.1.0")


def _lock(packed: str) -> str:
    from rbee_infra.install.build_once import unpack_lock

    return unpack_lock(packed)


def test_the_cache_key_names_commit_binary_features_triple_and_lock() -> None:
    from rbee_infra.install.build_once import cache_key

    base = cache_key("a" * 40, "rbee-hive", [], "x86_64-unknown-linux-gnu", "lock")
    assert len(base) == 16
    others = {
        cache_key("b" * 40, "rbee-hive", [], "x86_64-unknown-linux-gnu", "lock"),
        cache_key("a" * 40, "llm-worker-rbee-cpu", [], "x86_64-unknown-linux-gnu", "lock"),
        cache_key("a" * 40, "rbee-hive", ["cpu"], "x86_64-unknown-linux-gnu", "lock"),
        cache_key("a" * 40, "rbee-hive", [], "aarch64-unknown-linux-gnu", "lock"),
        cache_key("a" * 40, "rbee-hive", [], "x86_64-unknown-linux-gnu", "other lock"),
    }
    assert base not in others and len(others) == 5
    assert os.path.basename(base) == base


def test_destroy_keeps_the_build_cache_and_prune_builds_removes_it(
    hosts1: HostSet, rbee_repo: RbeeRepo, tmp_path: Path, counted: tuple[dict[str, str], Path],
    monkeypatch: pytest.MonkeyPatch, capsys: Any,
) -> None:
    env, log = counted
    (host,) = hosts1.hosts
    config = make_fleet(hosts1, rbee_repo, workers_per_hive=1, **{"rbee:build": "controller"})
    cache = Path(env["RBEE_INFRA_CACHE"])
    with Engine(tmp_path / "state.json", env=env) as engine:
        assert engine.up(declare(config)).ok
        assert engine.destroy().ok
        assert ssh(hosts1, host, f"test -e {layout.ROOT}").returncode == 1  # the host is clean
        kept = sorted(p.parent.name for p in (cache / "artifacts").glob("*/build.json"))
        assert len(kept) == 2  # destroy left both builds in the cache
        # a new stack on the same machine reuses them: nothing is compiled again
        assert engine.up(declare(config)).ok
        assert len(builds(log)) == 2
        assert engine.destroy().ok

    monkeypatch.setenv("RBEE_INFRA_CACHE", str(cache))
    assert cli.main(["prune-builds", "--older-than", "1", "--dry-run"]) == 0
    assert "would remove 0 cached item(s)" in capsys.readouterr().out
    assert cli.main(["prune-builds"]) == 0
    out = capsys.readouterr().out
    for key in kept:
        assert f"removed build {key}" in out
    assert "removed checkout and target dir" in out
    assert list((cache / "artifacts").iterdir()) == [] and list((cache / "src").iterdir()) == []


def test_a_controller_build_is_refused_before_compiling_when_this_machine_lacks_its_tools(
    hosts1: HostSet, fresh_rbee_repo: RbeeRepo, tmp_path: Path,
    counted: tuple[dict[str, str], Path], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The tree's build needs are this machine's to meet when it builds (here: a hive build
    script that runs pnpm and wasm-pack, and a PATH without them): the preview lists them on
    the Build resource, `up` refuses it in phase preflight, and cargo never runs."""
    from tests.harness.fixture_repo import add_web_ui_branch

    env, log = counted
    add_web_ui_branch(fresh_rbee_repo)
    config = make_fleet(hosts1, fresh_rbee_repo, ref={"branch": "web-ui"},
                        **{"rbee:build": "controller"})
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("git", "sh", "getconf", "rustc", "cargo", "id", "uname", "sed", "df", "awk",
                 "head", "cat", "tr", "dirname", "sha256sum", "mktemp", "rm", "ls", "flock"):
        found = shutil.which(tool)
        if found:
            (bare / tool).symlink_to(found)
    env = {**env, "PATH": str(bare)}  # no node, pnpm or wasm-pack on this machine
    with Engine(tmp_path / "state.json", env=env) as engine:
        plan = engine.preview(declare(config))
        assert plan.ok, plan.errors
        log_text = engine.provider_log_path.read_text()
        assert "preflight: on this machine: pnpm" in log_text, log_text[-3000:]
        result = engine.up(declare(config))
        (name,) = [k for k in result.errors if k.startswith(HIVE_BUILD)]
        assert "preflight failed" in result.errors[name] and "on this machine: pnpm" in (
            result.errors[name])
    assert builds(log) == []  # nothing was compiled


def test_a_builder_hive_builds_once_for_the_fleet(
    hosts: HostSet, rbee_repo: RbeeRepo, tmp_path: Path, counted: tuple[dict[str, str], Path],
) -> None:
    """`build: {builder: host1}`: host1 builds each binary once (in its cache, with the
    Cargo.lock this machine decided), the others receive it and build nothing; when the builder
    cannot be reached, only the installs that need its build stop, naming it and the phase."""
    env, _ = counted
    builder, second, third = hosts.hosts
    config = make_fleet(hosts, rbee_repo, workers_per_hive=1,
                        **{"rbee:build": {"builder": builder.name}})
    with Engine(tmp_path / "state.json", env=env) as engine:
        result = engine.up(declare(config))
        assert result.ok, "\n".join(result.errors.values())
        for host in hosts.hosts:
            assert_hive_installed(hosts, host, version="0.1.0")
            assert receipt(hosts, host, "rbee-worker-cpu")["builtOn"] == f"builder {builder.name}"
        kept = ssh(hosts, builder, f"ls {layout.ARTIFACTS_DIR}").stdout.split()
        assert len(kept) == 2  # the hive's build and the worker's, once for the fleet
        for host in (second, third):  # no checkout, no target dir, no job there
            built = ssh(hosts, host, f"test -e {layout.BUILD_DIR} || test -e {layout.JOBS_DIR}")
            assert built.returncode == 1, f"{host.name} built something"
        again = engine.preview(declare(config))
        assert {k: v for k, v in again.ops().items() if v != "same"} == {}, again.ops()

        # a new commit to build while the builder is down: its Builds fail naming the builder
        # and the phase; what needs them is not installed; the rest goes on
        moved = make_fleet(hosts, rbee_repo, workers_per_hive=1, ref={"tag": "v0.2.0"},
                           **{"rbee:build": {"builder": builder.name}})
        for hive in moved["rbee:hives"]:
            hive["workers"][0]["build"] = "host"  # the workers build on their own hosts
        builder.stop()
        try:
            down = engine.up(declare(moved))
        finally:
            builder.start()
        (name,) = [k for k in down.errors if k.startswith("build-on-host1-rbee-hive")]
        assert f"on builder {builder.name}: " in down.errors[name], down.errors[name]
        assert "connect" in down.errors[name] or "probe" in down.errors[name]
        for host in (second, third):
            assert f"hive-{host.name}" in down.errors  # needs the builder's build: not installed
            # the worker builds on its own host: nothing of the builder's stops it (the engine
            # driver declares it after the hive; the real program then installs it anyway,
            # tests/e2e/test_failure_e2e.py)
            assert down.errors.get(f"worker-{host.name}-cpu", "") in (
                "", f"skipped: dependency hive-{host.name} failed"), down.errors
            assert_hive_installed(hosts, host, version="0.1.0")  # the previous one still runs


def test_an_interrupted_ship_leaves_the_previous_release_active(
    hosts1: HostSet, fresh_rbee_repo: RbeeRepo, tmp_path: Path,
    counted: tuple[dict[str, str], Path],
) -> None:
    """The link to the host drops while the new binary is on its way (a slow link, cut
    mid-upload): nothing is switched, the previous release stays active and runs; the next
    `up` ships it whole."""
    from tests.harness.hosts import wait_until
    from tests.harness.proxy import TcpProxy

    env, _ = counted
    (host,) = hosts1.hosts
    with TcpProxy(host.address, host.port, bandwidth=150_000) as proxy:
        known = tmp_path / "known_hosts_proxy"
        known.write_text(host.known_hosts_line("127.0.0.1", proxy.port) + "\n")
        settings = {"rbee:build": "controller", "rbee:knownHosts": str(known)}
        config = make_fleet(hosts1, fresh_rbee_repo, **settings)
        hive_config(config, host.name).update(hostname="127.0.0.1", sshPort=proxy.port)
        with Engine(tmp_path / "state.json", env=env) as engine:
            assert engine.up(declare(config)).ok
            before = receipt(hosts1, host, "rbee-hive")
            moved = make_fleet(hosts1, fresh_rbee_repo, ref={"tag": "v0.2.0"}, **settings)
            hive_config(moved, host.name).update(hostname="127.0.0.1", sshPort=proxy.port)
            running = engine.up_async(declare(moved))
            incoming = f"{layout.RELEASES_DIR}/rbee-hive/*.incoming/rbee-hive"
            wait_until(lambda: ssh(hosts1, host, f"test -s {incoming}").returncode == 0,
                       timeout=120)
            proxy.cut_now()  # mid-upload
            result = running.result(timeout=300)
            proxy.restore()
            assert not result.ok, result.ops()
            assert receipt(hosts1, host, "rbee-hive") == before
            assert_hive_installed(hosts1, host, version="0.1.0")
            again = engine.up(declare(moved))
            assert again.ok, again.errors
            assert_hive_installed(hosts1, host, version="0.2.0")


def test_a_cargo_given_by_path_builds_with_the_rustc_beside_it(tmp_path: Path) -> None:
    """As the build job on a host: cargo by path brings its own rustc (RUSTC); a bare `cargo`
    leaves the choice to PATH (rustup's proxy sets RUSTUP_TOOLCHAIN for what it runs)."""
    from rbee_infra.install.build_once import rustc_beside

    for name in ("cargo", "rustc"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    assert rustc_beside(str(tmp_path / "cargo")) == {"RUSTC": str(tmp_path / "rustc")}
    assert rustc_beside("cargo") == {}
    (tmp_path / "rustc").unlink()
    assert rustc_beside(str(tmp_path / "cargo")) == {}
