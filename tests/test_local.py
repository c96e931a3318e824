"""The local method through the engine driver on a real SSH host: a file on this machine is
uploaded over SFTP; its sha256 is an input, so changing the file previews as an update."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.harness.engine import Engine
from tests.harness.hosts import HostSet
from tests.harness.installs import (
    HIVE_STABLE,
    failed,
    hive,
    leftovers,
    link,
    ok,
    receipt,
    release_ids,
    version,
    worker,
    worker_stable,
)
from tests.harness.release_server import script_binary, sha256, tar_gz

pytestmark = pytest.mark.hosts




def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    os.chmod(path, 0o755)
    return sha256(data)


def test_local_file_install_change_rollback_drift_and_destroy(
    hosts1: HostSet, engine: Engine, tmp_path: Path
) -> None:
    host = hosts1[0]
    binary = tmp_path / "build" / "rbee-hive"
    binary.parent.mkdir()
    sha1 = write(binary, script_binary("rbee-hive 0.3.0"))
    decl = hive(hosts1, host, {"method": "local", "path": str(binary)})

    assert engine.preview([decl]).ops() == {"hive-h1": "create"}
    ok(engine.up([decl]))
    assert version(host, HIVE_STABLE) == "rbee-hive 0.3.0"
    assert link(host, HIVE_STABLE) == f"../share/rbee/releases/rbee-hive/{sha1[:12]}/rbee-hive"
    assert receipt(host, "rbee-hive")["commit"] == sha1
    assert engine.state()["hive-h1"].outputs["resolvedCommit"] == sha1
    assert engine.preview([decl]).ops() == {"hive-h1": "same"}

    # the file changes: preview shows an update because its sha256 changed
    sha2 = write(binary, script_binary("rbee-hive 0.3.1"))
    plan = engine.preview([decl])
    assert plan.ops() == {"hive-h1": "update"}
    step = plan.steps[0]
    assert step.detailed_changes["resolvedCommit"] == (sha1, sha2)
    assert version(host, HIVE_STABLE) == "rbee-hive 0.3.0"  # preview changed nothing
    ok(engine.up([decl]))
    assert version(host, HIVE_STABLE) == "rbee-hive 0.3.1"
    assert receipt(host, "rbee-hive")["commit"] == sha2
    assert release_ids(host, "rbee-hive") == sorted([sha1[:12], sha2[:12]])

    # a file that does not answer --version: the upload happens, verify fails, 0.3.1 stays
    bad = write(binary, script_binary("broken", exit_code=2))
    error = failed(engine.up([decl]), "hive-h1")
    assert "hive h1: verify failed: rbee-hive --version exited 2" in error
    assert version(host, HIVE_STABLE) == "rbee-hive 0.3.1"
    assert bad[:12] not in release_ids(host, "rbee-hive")

    # drift: the binary at the release path is overwritten by hand; preview says so, up repairs
    write(binary, script_binary("rbee-hive 0.3.1"))
    target = f".local/bin/{link(host, HIVE_STABLE)}"  # the file inside the release dir
    host.run(f"printf '#!/bin/sh\\necho rbee-hive tampered\\n' > '{target}'")
    assert version(host, HIVE_STABLE) == "rbee-hive tampered"
    plan = engine.preview([decl])
    assert plan.ops() == {"hive-h1": "update"}
    assert plan.steps[0].detailed_changes["hostState"][1] == (
        "binary changed (sha256 differs from the receipt)"
    )
    ok(engine.up([decl]))
    assert version(host, HIVE_STABLE) == "rbee-hive 0.3.1"
    assert engine.preview([decl]).ops() == {"hive-h1": "same"}

    # a worker from a local .tar.gz: unpacked here, the binary found by name and uploaded
    archive = tmp_path / "cpu.tar.gz"
    cpu = script_binary("llm-worker-rbee-cpu 0.3.0 features=cpu")
    archive.write_bytes(tar_gz({"dist/bin/llm-worker-rbee-cpu": cpu}))
    wdecl = worker(hosts1, host, "cpu", {"method": "local", "path": str(archive)})
    ok(engine.up([decl, wdecl]))
    assert version(host, worker_stable("cpu")) == "llm-worker-rbee-cpu 0.3.0 features=cpu"
    assert receipt(host, "rbee-worker-cpu")["commit"] == sha256(archive.read_bytes())

    ok(engine.destroy())
    assert leftovers(host) == []
    assert engine.state() == {}


def test_local_file_problems_fail_check_before_the_host_is_touched(
    hosts1: HostSet, engine: Engine, tmp_path: Path
) -> None:
    host = hosts1[0]
    missing = hive(hosts1, host, {"method": "local", "path": str(tmp_path / "nope")})
    plan = engine.preview([missing])
    assert plan.errors["hive-h1"] == (
        f"check failed: source.path: {tmp_path / 'nope'} cannot be read: No such file or directory"
    )
    binary = tmp_path / "rbee-hive"
    real = write(binary, script_binary("rbee-hive 0.3.0"))
    pinned = hive(hosts1, host, {"method": "local", "path": str(binary), "sha256": "e" * 64})
    error = failed(engine.up([pinned]), "hive-h1")
    assert error == f"check failed: source.sha256: {binary} has sha256 {real}, not {'e' * 64}"
    assert leftovers(host) == []
