"""`rbee-infra status` and `pulumi preview` read a host through the same observe -> compare path
(hostview's batched probe, then plan.host_state): on the same hosts they must agree."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rbee_infra.config.fleet import parse_fleet
from rbee_infra.status import collect as status
from rbee_infra.status.model import ConfigSource
from tests.harness.engine import Engine
from tests.harness.fixture_repo import RbeeRepo
from tests.harness.fleet import declare, hive_config, make_fleet
from tests.harness.hosts import HostSet

pytestmark = pytest.mark.hosts



def status_of(config: dict[str, Any], hosts: HostSet) -> dict[str, Any]:
    fleet = parse_fleet({"hives": config["rbee:hives"]})
    creds = status.Credentials(
        private_key_path=str(hosts.client_key_path), known_hosts=str(hosts.known_hosts_path)
    )
    source = ConfigSource(kind="stack", stack="test", file="Pulumi.test.yaml")
    report = asyncio.run(status.collect(fleet, source=source, creds=creds))
    return {
        f"{'hive' if c.component == 'hive' else 'worker'}-{h.alias}"
        + (f"-{c.worker_type}" if c.worker_type else ""): c
        for h in report.hives
        for c in h.components
    }


def test_status_and_preview_agree_on_the_same_hosts(
    hosts: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    config = make_fleet(hosts, rbee_repo, hives=2, workers_per_hive=1)
    assert engine.up(declare(config)).ok
    # host1's worker binary goes missing; host2 gets a worker type that is not installed yet
    hosts.hosts[0].run("rm .local/share/rbee/workers/rbee-worker-cpu")
    hive_config(config, "host2")["workers"].append({"type": "cuda"})

    plan = engine.preview(declare(config))
    ops = {k: v for k, v in plan.ops().items() if not k.startswith("build-")}
    components = status_of(config, hosts)
    assert ops == {
        "hive-host1": "same",
        "worker-host1-cpu": "update",
        "hive-host2": "same",
        "worker-host2-cpu": "same",
        "worker-host2-cuda": "create",
    }
    # status has no stack state, so it cannot tell an update from a create; it agrees on
    # which components need `up`, and on why
    assert {name: c.state for name, c in components.items()} == {
        "hive-host1": "in-sync",
        "worker-host1-cpu": "missing",
        "hive-host2": "in-sync",
        "worker-host2-cpu": "in-sync",
        "worker-host2-cuda": "missing",
    }
    (step,) = [s for s in plan.steps if s.name == "worker-host1-cpu"]
    assert step.detailed_changes["hostState"][1] == "binary missing"
    assert components["worker-host1-cpu"].drift == ["binary missing"]
    assert components["worker-host2-cuda"].drift == ["not installed"]

    assert engine.up(declare(config)).ok
    assert {c.state for c in status_of(config, hosts).values()} == {"in-sync"}
    assert engine.destroy().ok
