"""The release method through the engine driver on real SSH hosts, downloading from a loopback
server laid out like GitHub releases: install, upgrade, downgrade, rollback of a failed
upgrade, checksum mismatch, 404, truncated download, and the three ways to download (curl,
wget, neither: this machine downloads and uploads over SFTP)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.engine import Decl, Engine
from tests.harness.fixtures import running_hosts_or_skip
from tests.harness.host_tools import host_without
from tests.harness.hosts import Host, HostSet
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
from tests.harness.release_server import ReleaseServer, script_binary, tar_gz

pytestmark = pytest.mark.hosts

REPO = "rbee/rbee"
HIVE = "rbee-hive"


@pytest.fixture(scope="module")
def release_hosts() -> Iterator[HostSet]:
    """Two hosts the module's cases share on purpose (each case checks its own effects)."""
    with running_hosts_or_skip(2) as hs:
        yield hs


@pytest.fixture
def server() -> Iterator[ReleaseServer]:
    with ReleaseServer() as srv:
        yield srv


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with Engine(tmp_path / "state.json") as eng:
        yield eng


def source(server: ReleaseServer, tag: str, **extra: object) -> dict[str, object]:
    return {"method": "release", "repo": REPO, "tag": tag, "baseUrl": server.base_url, **extra}


def stays_at(host: Host, line: str) -> None:
    assert version(host, HIVE_STABLE) == line
    assert not [p for p in release_ids(host, HIVE) if p.endswith(".incoming")]


def test_release_install_upgrade_downgrade_and_every_failure(
    release_hosts: HostSet, server: ReleaseServer, engine: Engine
) -> None:
    hosts = release_hosts
    host = hosts[0]
    v1 = server.publish(REPO, "v0.1.0", HIVE, script_binary("rbee-hive 0.1.0"), checksum="file")
    packed = tar_gz(
        {"rbee-0.2.0/README": b"docs", "rbee-0.2.0/rbee-hive": script_binary("rbee-hive 0.2.0")}
    )
    v2 = server.publish(REPO, "v0.2.0", "rbee-hive.tar.gz", packed, checksum="sums")

    # install: raw binary, checksum from <asset>.sha256, downloaded with curl on the host
    decl = hive(hosts, host, source(server, "v0.1.0"))
    assert engine.preview([decl]).ops() == {"hive-h1": "create"}
    ok(engine.up([decl]))
    assert version(host, HIVE_STABLE) == "rbee-hive 0.1.0"
    assert link(host, HIVE_STABLE) == f"../share/rbee/releases/rbee-hive/{v1[:12]}/rbee-hive"
    rec = receipt(host, HIVE)
    assert (rec["commit"], rec["releaseId"]) == (v1, v1[:12])
    assert rec["source"] == {
        "method": "release",
        "repo": REPO,
        "tag": "v0.1.0",
        "baseUrl": server.base_url,
    }
    assert engine.state()["hive-h1"].outputs["version"] == "rbee-hive 0.1.0"
    assert engine.preview([decl]).ops() == {"hive-h1": "same"}

    # upgrade: a .tar.gz asset, checksum from SHA256SUMS, the binary found inside by name
    up2 = hive(hosts, host, source(server, "v0.2.0", asset="rbee-hive.tar.gz"))
    assert engine.preview([up2]).ops() == {"hive-h1": "update"}
    ok(engine.up([up2]))
    assert version(host, HIVE_STABLE) == "rbee-hive 0.2.0"
    assert receipt(host, HIVE)["commit"] == v2
    assert release_ids(host, HIVE) == sorted([v1[:12], v2[:12]])  # previous release kept

    # downgrade back to v0.1.0
    ok(engine.up([decl]))
    assert version(host, HIVE_STABLE) == "rbee-hive 0.1.0"
    assert link(host, HIVE_STABLE).endswith(f"/{v1[:12]}/rbee-hive")

    # failed upgrade: the new binary does not answer --version; the old one stays active
    bad = server.publish(REPO, "v0.3.0", HIVE, script_binary("oops", exit_code=3), checksum="file")
    error = failed(engine.up([hive(hosts, host, source(server, "v0.3.0"))]), "hive-h1")
    assert "hive h1: verify failed: rbee-hive --version exited 3" in error
    stays_at(host, "rbee-hive 0.1.0")
    assert bad[:12] not in release_ids(host, HIVE)
    assert engine.state()["hive-h1"].outputs["version"] == "rbee-hive 0.1.0"

    # 404: a pinned sha256 for an asset that was never published
    missing = hive(hosts, host, source(server, "v9.9.9", sha256="c" * 64))
    error = failed(engine.up([missing]), "hive-h1")
    url = f"{server.base_url}/{REPO}/releases/download/v9.9.9/rbee-hive"
    assert f"hive h1: download failed: GET {url} returned HTTP 404 (curl exit 22)" in error
    stays_at(host, "rbee-hive 0.1.0")

    # the published checksum does not match the asset
    server.publish(
        REPO, "v0.4.0", HIVE, script_binary("rbee-hive 0.4.0"), checksum="sums", sha="d" * 64
    )
    error = failed(engine.up([hive(hosts, host, source(server, "v0.4.0"))]), "hive-h1")
    assert "download failed: sha256 of rbee-hive is " in error
    assert f"expected {'d' * 64} (from SHA256SUMS); nothing was installed" in error
    stays_at(host, "rbee-hive 0.1.0")

    # truncated: the connection closes halfway through the promised Content-Length
    v5 = server.publish(REPO, "v0.5.0", HIVE, script_binary("rbee-hive 0.5.0"), checksum="file")
    server.fail(REPO, "v0.5.0", HIVE, "cut")
    error = failed(engine.up([hive(hosts, host, source(server, "v0.5.0"))]), "hive-h1")
    assert "was cut short: the connection closed mid-download (curl exit 18)" in error
    stays_at(host, "rbee-hive 0.1.0")
    assert v5[:12] not in release_ids(host, HIVE)

    # no checksum anywhere: refused, never installed unverified
    server.publish(REPO, "v0.6.0", HIVE, script_binary("rbee-hive 0.6.0"))
    error = failed(engine.up([hive(hosts, host, source(server, "v0.6.0"))]), "hive-h1")
    assert "refusing to install rbee-hive unverified: no sha256 in the config" in error
    assert server.hits(HIVE) == 6  # the unverified asset itself was never fetched
    stays_at(host, "rbee-hive 0.1.0")

    # the next up after all that is a plain reinstall of what is configured
    server.heal()
    v5_decl = hive(hosts, host, source(server, "v0.5.0"))
    ok(engine.up([v5_decl]))
    assert version(host, HIVE_STABLE) == "rbee-hive 0.5.0"

    # drift: the active binary is overwritten by hand; preview says so, up downloads it again
    host.run(f"echo 'echo rbee-hive tampered' > '.local/bin/{link(host, HIVE_STABLE)}'")
    plan = engine.preview([v5_decl])
    assert plan.steps[0].op == "update"
    assert plan.steps[0].detailed_changes["hostState"][1] == (
        "binary changed (sha256 differs from the receipt)"
    )
    ok(engine.up([v5_decl]))
    assert version(host, HIVE_STABLE) == "rbee-hive 0.5.0"
    assert receipt(host, HIVE)["sha256"] == v5

    ok(engine.destroy())
    assert leftovers(host) == []
    assert engine.state() == {}


def test_release_failed_create_leaves_nothing(
    release_hosts: HostSet, server: ReleaseServer, engine: Engine
) -> None:
    hosts = release_hosts
    host = hosts[1]
    server.publish(REPO, "v0.1.0", HIVE, script_binary("rbee-hive 0.1.0"), checksum="file")
    server.fail(REPO, "v0.1.0", HIVE, "cut")
    decl = hive(hosts, host, source(server, "v0.1.0"))
    assert "was cut short" in failed(engine.up([decl]), "hive-h1")
    assert leftovers(host) == []
    assert engine.state() == {}

    server.fail(REPO, "v0.1.0", HIVE, "404")
    assert "returned HTTP 404" in failed(engine.up([decl]), "hive-h1")
    assert leftovers(host) == []
    assert engine.state() == {}


def test_release_with_wget_and_with_neither(
    release_hosts: HostSet, server: ReleaseServer, engine: Engine
) -> None:
    hosts = release_hosts
    """Workers from a private mirror: the token in baseUrl authenticates every download and
    is never shown in errors, the receipt or the state file."""
    host = hosts[1]
    token = "tok3nAbCdEf123456"
    server.required_auth = "Basic " + base64.b64encode(f"{token}:".encode()).decode()
    base = f"http://{token}@127.0.0.1:{server.port}"
    cpu1 = script_binary("llm-worker-rbee-cpu 0.1.0 features=cpu")
    sha1 = server.publish(REPO, "v0.1.0", "llm-worker-rbee-cpu", cpu1, checksum="file")
    cpu2 = script_binary("llm-worker-rbee-cpu 0.2.0 features=cpu")
    sha2 = server.publish(
        REPO, "v0.2.0", "cpu.tar.gz", tar_gz({"llm-worker-rbee-cpu": cpu2}), checksum="sums"
    )
    src1 = {"method": "release", "repo": REPO, "tag": "v0.1.0", "baseUrl": base}
    src2 = {**src1, "tag": "v0.2.0", "asset": "cpu.tar.gz"}

    def decl(src: dict[str, object]) -> Decl:
        return worker(hosts, host, "cpu", src, depends_on=(), secret_source=True)

    stable = worker_stable("cpu")
    cpu1_line = "llm-worker-rbee-cpu 0.1.0 features=cpu"
    ok(engine.up([decl(src1)]))  # curl on the host
    assert version(host, stable) == cpu1_line
    assert receipt(host, "rbee-worker-cpu")["commit"] == sha1
    assert receipt(host, "rbee-worker-cpu")["source"]["baseUrl"] == (
        f"http://***@127.0.0.1:{server.port}"
    )

    with host_without(host, "curl"):
        ok(engine.up([decl(src2)]))  # wget is never given the token: this machine downloads
        assert version(host, stable) == "llm-worker-rbee-cpu 0.2.0 features=cpu"
        assert receipt(host, "rbee-worker-cpu")["commit"] == sha2

    with host_without(host, "curl", "wget"):
        server.fail(REPO, "v0.1.0", "llm-worker-rbee-cpu", "cut")
        error = failed(engine.up([decl(src1)]), "worker-h1-cpu")
        assert "was cut short: the connection closed mid-download (this machine)" in error
        server.fail(REPO, "v0.1.0", "llm-worker-rbee-cpu", "404")
        error = failed(engine.up([decl(src1)]), "worker-h1-cpu")
        assert (
            f"GET http://***@127.0.0.1:{server.port}/{REPO}/releases/download/v0.1.0/"
            "llm-worker-rbee-cpu returned HTTP 404 (this machine): Not Found"
        ) in error
        assert token not in error
        server.heal()
        server.publish(REPO, "v0.3.0", "llm-worker-rbee-cpu", cpu1, checksum="file", sha="f" * 64)
        error = failed(engine.up([decl({**src1, "tag": "v0.3.0"})]), "worker-h1-cpu")
        assert f"expected {'f' * 64} (from llm-worker-rbee-cpu.sha256); nothing was" in error
        assert version(host, stable) == "llm-worker-rbee-cpu 0.2.0 features=cpu"
        ok(engine.up([decl(src1)]))  # downloaded here, uploaded over SFTP
        assert version(host, stable) == cpu1_line
        assert receipt(host, "rbee-worker-cpu")["commit"] == sha1

    log = engine.provider_log_path.read_text()
    assert "llm-worker-rbee-cpu with curl on the host" in log
    assert "cpu.tar.gz on this machine (the host has no curl; wget is never given a credential)" in log
    assert "llm-worker-rbee-cpu on this machine (the host has no curl or wget)" in log
    authed = [r for r in server.requests if r.authorization == server.required_auth]
    assert len(authed) == len(server.requests)
    assert token not in engine.state_path.read_text()
    assert token not in engine.provider_log_path.read_text()
    ok(engine.destroy())
    assert leftovers(host) == []
