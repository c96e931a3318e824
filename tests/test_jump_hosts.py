"""Hives behind a bastion, and hives named by an OpenSSH client config, on real sshd hosts.

The targets run in a network namespace the controller cannot reach; only the bastion is on
a link to it (tests/harness/netns.py). Everything goes config -> the real program -> the
provider server -> real SSH through the bastion.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rbee_infra.config.fleet import parse_fleet
from rbee_infra.status import collect as status
from rbee_infra.status.model import ConfigSource
from tests.harness import installs
from tests.harness.engine import Engine
from tests.harness.fixture_repo import RbeeRepo, expected_worker_about
from tests.harness.fleet import declare, make_fleet
from tests.harness.hosts import rotate_host_key
from tests.harness.netns import Behind, behind_bastion

pytestmark = pytest.mark.hosts


@pytest.fixture
def behind(rbee_repo: RbeeRepo) -> Iterator[Behind]:
    with behind_bastion(2, rbee_repo) as b:
        yield b


def through_bastion(b: Behind, repo: RbeeRepo, tag: str = "v0.1.0") -> dict[str, Any]:
    config = make_fleet(b.targets, repo, workers_per_hive=1, ref={"tag": tag})
    jump = f"{b.bastion.user}@{b.bastion.address}:{b.bastion.port}"
    for hive in config["rbee:hives"]:
        hive["proxyJump"] = jump
    config["rbee:knownHosts"] = str(b.known_hosts)
    return config


def unreachable_directly(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=2).close()
    except OSError:
        return True
    return False


def test_install_upgrade_and_destroy_through_a_bastion(
    behind: Behind, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    hosts = behind.targets.hosts
    assert all(unreachable_directly(h.address, h.port) for h in hosts)

    before = behind.bastion_accepted()
    installs.ok(engine.up(declare(through_bastion(behind, rbee_repo))))
    # one connection to the bastion carried both hives' installs (one provider process)
    assert behind.bastion_accepted() - before == 1
    for host in hosts:
        assert installs.version(host, installs.HIVE_STABLE) == "rbee-hive 0.1.0"
        assert installs.worker_about(host, installs.worker_stable("cpu")) == (
            expected_worker_about("0.1.0", ("cpu",))
        )

    result = installs.ok(engine.up(declare(through_bastion(behind, rbee_repo, "v0.2.0"))))
    assert {k: v for k, v in result.ops().items() if not k.startswith("build-")} == {
        "hive-host1": "update", "hive-host2": "update",
        "worker-host1-cpu": "update", "worker-host2-cpu": "update",
    }
    assert [installs.version(h, installs.HIVE_STABLE) for h in hosts] == ["rbee-hive 0.2.0"] * 2

    installs.ok(engine.destroy())
    assert [installs.leftovers(h) for h in hosts] == [[], []]


def test_a_bastion_with_a_changed_host_key_is_refused(
    behind: Behind, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    rotate_host_key(behind.bastion)
    result = engine.up(declare(through_bastion(behind, rbee_repo)))
    installs.failed(result, "hive-host1")
    error = result.error_summary("hive-host1")
    bastion = behind.bastion
    assert (
        f"hive host1: connect failed: jump host {bastion.user}@{bastion.address}:{bastion.port}: "
        f"host key for {bastion.address}:{bastion.port} (SHA256:"
    ) in error, error
    assert f"does not match known_hosts {behind.known_hosts}; refusing to connect" in error
    assert [installs.leftovers(h) for h in behind.targets.hosts] == [[], []]


def test_a_bastion_that_is_down_is_named(
    behind: Behind, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    behind.bastion.stop()
    result = engine.up(declare(through_bastion(behind, rbee_repo)))
    bastion = behind.bastion
    for alias in ("host1", "host2"):
        installs.failed(result, f"hive-{alias}")
        error = result.error_summary(f"hive-{alias}")
        assert (
            f"hive {alias}: connect failed: jump host "
            f"{bastion.user}@{bastion.address}:{bastion.port}: "
        ) in error, error
        assert f"({bastion.address}:{bastion.port})" in error
    assert [installs.leftovers(h) for h in behind.targets.hosts] == [[], []]


def ssh_config_for(behind: Behind, path: Path) -> Path:
    """An OpenSSH client config naming each target `gpu-N`, through the bastion's alias."""
    bastion = behind.bastion
    lines = [
        "Host edge",
        f"  HostName {bastion.address}",
        f"  Port {bastion.port}",
        f"  User {bastion.user}",
        "",
    ]
    for i, host in enumerate(behind.targets.hosts, start=1):
        lines += [
            f"Host gpu-{i}",
            f"  HostName {host.address}",
            f"  Port {host.port}",
            f"  User {host.user}",
            f"  IdentityFile {behind.targets.client_key_path}",
            f"  UserKnownHostsFile {behind.known_hosts}",
            "  ProxyJump edge",
            "",
        ]
    path.write_text("\n".join(lines))
    return path


def test_ssh_config_aliases_name_the_hives_for_up_and_status(
    behind: Behind, rbee_repo: RbeeRepo, engine: Engine, tmp_path: Path
) -> None:
    config = make_fleet(behind.targets, rbee_repo)
    for i, hive in enumerate(config["rbee:hives"], start=1):
        hive["hostname"] = f"gpu-{i}"
        del hive["sshUser"], hive["sshPort"]
    # the key, known_hosts, user, port and jump host all come from the file
    del config["rbee:sshPrivateKeyPath"], config["rbee:knownHosts"]
    config["rbee:sshConfig"] = str(ssh_config_for(behind, tmp_path / "ssh_config"))

    installs.ok(engine.up(declare(config)))
    for host in behind.targets.hosts:
        assert installs.version(host, installs.HIVE_STABLE) == "rbee-hive 0.1.0"

    fleet = parse_fleet(
        {"hives": config["rbee:hives"], "sshConfig": config["rbee:sshConfig"]}
    )
    source = ConfigSource(kind="stack", stack="test", file="Pulumi.test.yaml")
    report = asyncio.run(
        status.collect(fleet, source=source, creds=status.Credentials(), resolve=False)
    )
    assert [(h.alias, h.reachable, h.state) for h in report.hives] == [
        ("host1", True, "in-sync"), ("host2", True, "in-sync")
    ]
    installs.ok(engine.destroy())
