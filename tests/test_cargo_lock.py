"""The same commit builds the same code everywhere (docs/build.md): a tree without a Cargo.lock
(rbee's has none) gets one generated on this machine, kept in the stack's state (the build
kick-off's), and every host builds that commit with it, --locked, now and in a later `up`;
rbee:cargoLockRefresh generates it again; a tree with its own Cargo.lock is built --locked."""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from pathlib import Path

import pytest

from rbee_infra.base import layout
from rbee_infra.install.build_once import unpack_lock
from tests.harness.assertions import ssh
from tests.harness.engine import Engine
from tests.harness.fixture_repo import RbeeRepo, workspace_files
from tests.harness.fleet import declare, hive_config, make_fleet, up_ok
from tests.harness.hosts import HostSet

pytestmark = pytest.mark.hosts


def lock_shas(engine: Engine) -> dict[str, str]:
    return {name: res.outputs.get("cargoLockSha256", "")
            for name, res in engine.state().items() if name.startswith(("hive-", "worker-"))}


def test_every_host_builds_the_commit_with_the_lock_kept_in_state(
    hosts: HostSet, fresh_rbee_repo: RbeeRepo, tmp_path: Path
) -> None:
    config = make_fleet(hosts, fresh_rbee_repo, hives=2, workers_per_hive=1)
    commit = fresh_rbee_repo.commit_of("v0.1.0")
    env = {"RBEE_INFRA_CACHE": str(tmp_path / "cache")}
    with Engine(tmp_path / "state.json", env=env) as engine:
        up_ok(engine, config)
        kept = engine.state()["build-kickoff"].outputs["cargoLocks"]
        key = f"{layout.short_hash(fresh_rbee_repo.url)}@{commit}"
        assert list(kept) == [key]  # one lock for the commit, for every host
        lock = unpack_lock(kept[key])
        assert "[[package]]" in lock and 'name = "llm-worker-rbee"' in lock
        sha = hashlib.sha256(lock.encode()).hexdigest()
        assert set(lock_shas(engine).values()) == {sha}  # 2 hosts x (hive + worker)
        for host in hosts.hosts[:2]:
            src = layout.source_dir(fresh_rbee_repo.url)
            on_host = ssh(hosts, host, f"sha256sum {src}/checkout/Cargo.lock").stdout.split()
            assert on_host[0] == sha, host.name
        log = engine.provider_log_path.read_text()
        assert f"generated the Cargo.lock for {commit[:12]} on this machine" in log

        # a later rebuild of the commit (a reinstall) builds the same graph, from the state
        hive_config(config, "host1")["reinstallTrigger"] = "again"
        up_ok(engine, config)
        assert engine.state()["build-kickoff"].outputs["cargoLocks"] == kept
        assert lock_shas(engine)["hive-host1"] == sha
        assert engine.provider_log_path.read_text().count("generated the Cargo.lock") == 1

        # rbee:cargoLockRefresh generates it again, on purpose (the preview's check shows the
        # new one; the `up` keeps the one its own check generated)
        config["rbee:cargoLockRefresh"] = "2026-12"
        assert engine.preview(declare(config)).ops()["build-kickoff"] == "update"
        up_ok(engine, config)
        assert engine.provider_log_path.read_text().count("generated the Cargo.lock") == 3
        assert engine.preview(declare(config)).ops()["build-kickoff"] == "same"


def test_a_tree_with_its_own_lock_is_built_locked(
    hosts1: HostSet, fresh_rbee_repo: RbeeRepo, tmp_path: Path
) -> None:
    """A committed Cargo.lock that no longer matches the manifests (it pins the workspace at
    0.1.0, the branch is at 0.2.0): --locked refuses to build it instead of rewriting it."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["git", "clone", "-q", "--branch", "v0.1.0", fresh_rbee_repo.file_url,
                        tmp], check=True)
        subprocess.run(["cargo", "generate-lockfile", "--offline"], cwd=tmp, check=True,
                       capture_output=True)
        stale = Path(tmp, "Cargo.lock").read_text()
    files = workspace_files("0.2.0")
    files.update({"Cargo.lock": stale, ".gitignore": "/target\n"})
    fresh_rbee_repo.commit("own-lock", files, "own-lock: a Cargo.lock of 0.1.0")
    config = make_fleet(hosts1, fresh_rbee_repo, ref={"branch": "own-lock"})
    env = {"RBEE_INFRA_CACHE": str(tmp_path / "cache")}
    with Engine(tmp_path / "state.json", env=env) as engine:
        result = engine.up(declare(config))
        error = result.errors["hive-host1"]
        assert error.startswith(
            "hive host1: build failed (exit 101): cargo build --release --bin rbee-hive"
        ), error
        assert "--locked" in error, error
        # the tree has its own: the stack keeps none for it
        assert engine.state()["build-kickoff"].outputs.get("cargoLocks") == {}


def test_the_lock_is_generated_from_beside_the_tree_so_its_toolchain_file_installs_nothing(
    tmp_path: Path,
) -> None:
    """rustup picks the toolchain by the working directory: run inside rbee's tree, its
    rust-toolchain.toml (channel stable, two wasm targets) makes rustup install those targets
    on the operator's machine just to resolve dependencies. The lock is generated from the
    tree's parent with --manifest-path; a cargo that records where it ran shows it."""
    import asyncio

    from rbee_infra.install import source

    tree = tmp_path / "checkout"
    tree.mkdir()
    (tree / "rust-toolchain.toml").write_text(
        '[toolchain]\nchannel = "stable"\ntargets = ["wasm32-wasip1"]\n')
    (tree / "Cargo.toml").write_text('[package]\nname = "t"\nversion = "0.1.0"\nedition = "2021"\n')
    (tree / "src").mkdir()
    (tree / "src" / "main.rs").write_text("fn main() {}\n")
    seen = tmp_path / "seen"
    cargo = tmp_path / "cargo"
    cargo.write_text(f'#!/bin/sh\npwd > {seen}\nexec cargo "$@"\n')
    cargo.chmod(0o755)
    asyncio.run(source.run_generate_lockfile(str(cargo), tree, label="t", timeout=120))
    assert seen.read_text().strip() == str(tmp_path)
    assert (tree / "Cargo.lock").read_text().count('name = "t"') == 1
