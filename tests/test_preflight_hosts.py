"""Preflight on real sshd hosts, through the engine boundary: a host that cannot satisfy a
resource fails before anything on it changes, with one error naming what is missing and how to
fix it, and the preview already lists the problem. `ensureToolchain` is taken up to the point
the network is needed (a closed port on 127.0.0.1 stands in for a host without internet)."""

from __future__ import annotations

import pytest

from tests.harness import installs
from tests.harness.engine import Engine
from tests.harness.fixture_repo import RbeeRepo
from tests.harness.hosts import HostSet, free_port, mount_tmpfs, unmount_tmpfs
from tests.harness.snapshot import diff_snapshots, snapshot_home

pytestmark = pytest.mark.hosts

INSTALL_RUST = "install Rust (rustup), set `cargo` on the hive, or set `ensureToolchain: true` to install it with rustup"
SKIP_PLATFORM = "or set `checkPlatform: false` on the hive to install it anyway"


def git(repo: RbeeRepo, **ref: str) -> dict[str, str]:
    return {"method": "git", "repo": repo.url, **ref}


def test_missing_cargo_is_named_in_preview_and_stops_up_before_any_change(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    problem = f"cargo not found on PATH for user {host.user}; {INSTALL_RUST}"
    before = snapshot_home(host)
    decl = installs.hive(hosts1, host, git(rbee_repo, tag="v0.1.0"), cargo="cargo-missing")

    assert engine.preview([decl]).ops() == {"hive-h1": "create"}
    assert f"hive h1: preflight: {problem}" in engine.provider_log_path.read_text()
    # the message alone (the provider server shows no traceback for it)
    error = installs.without_prebuilt_hint(installs.failed(engine.up([decl]), "hive-h1"))
    assert error == f"hive h1: preflight failed: {problem}"
    assert diff_snapshots(before, snapshot_home(host)) == [] and engine.state() == {}

    # installed with a working cargo, an upgrade that would build is refused the same way
    installs.ok(engine.up([installs.hive(hosts1, host, git(rbee_repo, tag="v0.1.0"))]))
    upgrade = installs.hive(hosts1, host, git(rbee_repo, tag="v0.2.0"), cargo="cargo-missing")
    step = engine.preview([upgrade]).steps[0]
    assert step.op == "update" and step.detailed_changes["preflight"] == (None, [problem])
    error = installs.without_prebuilt_hint(installs.failed(engine.up([upgrade]), "hive-h1"))
    assert error == f"hive h1: preflight failed: {problem}"
    assert installs.version(host, installs.HIVE_STABLE) == "rbee-hive 0.1.0"
    assert installs.release_ids(host, "rbee-hive") == [
        engine.state()["hive-h1"].outputs["releaseId"]
    ]


def test_cuda_worker_on_a_host_without_the_nvidia_driver(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    if host.run("command -v nvidia-smi", check=False).returncode == 0:
        pytest.skip("this machine has nvidia-smi: the host is not missing CUDA")
    cuda = installs.worker(
        hosts1, host, "cuda", git(rbee_repo, tag="v0.2.0"), depends_on=(), checkPlatform=True
    )
    error = installs.failed(engine.up([cuda]), "worker-h1-cuda")
    assert "worker h1/cuda: preflight failed: " in error
    assert (
        f"feature cuda needs an NVIDIA driver, but nvidia-smi is not on PATH for user "
        f"{host.user}; install the NVIDIA driver, {SKIP_PLATFORM}"
    ) in error
    has_nvcc = (
        host.run("command -v nvcc || test -x /usr/local/cuda/bin/nvcc", check=False).returncode == 0
    )
    assert ("nvcc is neither on PATH" in error) == (not has_nvcc)
    assert installs.leftovers(host) == [] and engine.state() == {}


def test_too_little_disk_for_a_build(hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine) -> None:
    (host,) = hosts1.hosts
    mount_tmpfs(host, ".local/share/rbee", size="16m")
    try:
        error = installs.failed(
            engine.up([installs.hive(hosts1, host, git(rbee_repo, tag="v0.1.0"))]), "hive-h1"
        )
        assert installs.without_prebuilt_hint(error) == (
            "hive h1: preflight failed: only 16 MB free on the filesystem holding "
            "~/.local/share/rbee; a git install needs at least 3072 MB (free some space, or set "
            "`minFreeDiskMb` on the hive)"
        )
        assert list((host.home / ".local/share/rbee").iterdir()) == []
    finally:
        unmount_tmpfs(host, ".local/share/rbee")


def test_ensure_toolchain_without_internet_is_one_clear_error(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    if host.run("command -v curl", check=False).returncode != 0:
        pytest.skip("the host has no curl")
    closed = free_port()  # nothing listens there: the download fails like one with no route
    url = f"https://127.0.0.1:{closed}/rustup-init.sh"
    decl = installs.hive(
        hosts1,
        host,
        git(rbee_repo, tag="v0.1.0"),
        cargo="cargo-missing",
        ensureToolchain=True,
        rustupUrl=url,
    )
    assert engine.preview([decl]).ops() == {"hive-h1": "create"}
    assert "preflight:" not in engine.provider_log_path.read_text()  # rustup will fix it

    error = installs.failed(engine.up([decl]), "hive-h1")
    assert f"hive h1: toolchain failed: could not reach {url} to install Rust: curl: (7) " in error
    assert f"127.0.0.1 port {closed}" in error
    assert error.endswith("; install Rust manually (https://rustup.rs) or give the host internet access")
    assert not (host.home / ".cargo").exists() and not (host.home / ".rustup").exists()
    assert installs.leftovers(host) == [] and engine.state() == {}


def test_a_cargo_given_by_path_builds_with_the_rustc_beside_it(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    """A host whose PATH finds another toolchain's rustc first (rustup's, say) and a hive whose
    `cargo` is a path: the build uses the rustc beside that cargo, the one preflight asked (mixed
    toolchains refuse each other's crates: "compiled by an incompatible version of rustc")."""
    from tests.harness.host_tools import host_without

    (host,) = hosts1.hosts
    cargo = host.run("command -v cargo").stdout.strip()
    with host_without(host, "rustc") as tools:
        other = tools / "rustc"
        other.write_text("#!/bin/sh\necho 'not the rustc beside cargo' >&2\nexit 1\n")
        other.chmod(0o755)
        decl = installs.hive(hosts1, host, git(rbee_repo, tag="v0.1.0"), cargo=cargo)
        installs.ok(engine.up([decl]))
    assert installs.version(host, installs.HIVE_STABLE) == "rbee-hive 0.1.0"
