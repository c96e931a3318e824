"""The providers exactly as the engine calls them: the SDK's dynamic-provider gRPC server in a
subprocess, Check/Diff/Create/Update/Read/Delete over gRPC with the serialized provider and state
kept between calls, against a real sshd host, a real git repo and real cargo builds."""

from __future__ import annotations

import dataclasses
import json

import pytest

from rbee_infra.stack.resources import nest_settings
from tests.harness import installs
from tests.harness.engine import Engine
from tests.harness.engine_types import Secret
from tests.harness.fixture_repo import RbeeRepo, expected_worker_about
from tests.harness.fleet import declare, make_fleet
from tests.harness.hosts import HostSet
from tests.harness.snapshot import diff_snapshots, snapshot_home

pytestmark = pytest.mark.hosts


def git(repo: RbeeRepo, **ref: str) -> dict[str, str]:
    return {"method": "git", "repo": repo.url, **ref}


def test_hive_create_update_to_another_tag_then_delete(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    before = snapshot_home(host)

    plan = engine.preview([installs.hive(hosts1, host, git(rbee_repo, tag="v0.1.0"))])
    assert plan.ops() == {"hive-h1": "create"}
    assert {m for m, _ in engine.calls} <= {"Configure", "GetPluginInfo", "Check", "Diff"}
    assert diff_snapshots(before, snapshot_home(host)) == []

    installs.ok(engine.up([installs.hive(hosts1, host, git(rbee_repo, tag="v0.1.0"))]))
    stable = installs.HIVE_STABLE
    assert installs.version(host, f"{host.home}/{stable}") == "rbee-hive 0.1.0"
    outputs = engine.state()["hive-h1"].outputs
    assert outputs["commit"] == rbee_repo.commit_of("v0.1.0")
    assert outputs["version"] == "rbee-hive 0.1.0"
    assert outputs["installPath"] == f"{host.home}/{stable}"
    assert installs.receipt(host, "rbee-hive")["commit"] == rbee_repo.commit_of("v0.1.0")
    sha = host.run(f"sha256sum < {stable}").stdout.split()[0]
    assert outputs["sha256"] == sha

    # nothing changed: preview and up are no-ops
    decl = installs.hive(hosts1, host, git(rbee_repo, tag="v0.2.0"))
    assert engine.preview([installs.hive(hosts1, host, git(rbee_repo, tag="v0.1.0"))]).ops() == {
        "hive-h1": "same"
    }
    plan = engine.preview([decl])
    assert plan.ops() == {"hive-h1": "update"}
    assert installs.version(host, f"{host.home}/{stable}") == "rbee-hive 0.1.0"

    installs.ok(engine.up([decl]))
    assert installs.version(host, f"{host.home}/{stable}") == "rbee-hive 0.2.0"
    assert engine.state()["hive-h1"].outputs["commit"] == rbee_repo.commit_of("v0.2.0")
    # the previous release is kept for rollback
    assert len(installs.release_ids(host, "rbee-hive")) == 2

    refreshed = installs.ok(engine.refresh())
    assert refreshed.ops() == {"hive-h1": "refresh"} or "hive-h1" in engine.state()
    assert engine.state()["hive-h1"].outputs["hostState"] == "in-sync"

    installs.ok(engine.destroy())
    assert engine.state() == {}
    assert installs.leftovers(host) == []


def test_worker_features_show_in_version_and_changing_them_updates_in_place(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    source = git(rbee_repo, tag="v0.2.0")
    decls = [
        installs.hive(hosts1, host, source),
        installs.worker(hosts1, host, "cuda", source),
    ]
    installs.ok(engine.up(decls))
    path = f"{host.home}/{installs.worker_stable('cuda')}"
    assert installs.worker_about(host, path) == expected_worker_about("0.2.0", ("cuda",))
    first_id = engine.state()["worker-h1-cuda"].id

    decls[1] = installs.worker(hosts1, host, "cuda", source, features=["cpu", "cuda"])
    assert engine.preview(decls).ops() == {"hive-h1": "same", "worker-h1-cuda": "update"}
    installs.ok(engine.up(decls))
    assert installs.worker_about(host, path) == expected_worker_about("0.2.0", ("cpu", "cuda"))
    assert engine.state()["worker-h1-cuda"].id == first_id


def test_refresh_of_a_removed_install_drops_it_from_state(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    installs.ok(engine.up([installs.hive(hosts1, host, git(rbee_repo, tag="v0.1.0"))]))
    host.run("rm -f .local/share/rbee/receipts/rbee-hive.json .local/bin/rbee-hive")
    installs.ok(engine.refresh())
    assert "hive-h1" not in engine.state()


def test_a_hive_registered_with_nested_settings_reads_as_the_flat_state_it_wrote_before(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    """The program registers a resource's plain inputs as one property (`settings`); state
    written before that (flat inputs) previews as the same resource, and an `up` records
    the same flat inputs again."""
    (host,) = hosts1.hosts
    flat = installs.hive(hosts1, host, git(rbee_repo, tag="v0.1.0"))
    installs.ok(engine.up([flat]))
    before = engine.state()["hive-h1"]
    nested = dataclasses.replace(flat, inputs=nest_settings(flat.inputs))
    assert set(nested.inputs) == {"source", "connection", "settings"}
    assert engine.preview([nested]).ops() == {"hive-h1": "same"}
    installs.ok(engine.up([nested]))
    after = engine.state()["hive-h1"]
    assert "settings" not in after.inputs and "settings" not in after.outputs
    assert after.inputs == before.inputs
    assert after.outputs == before.outputs
    # and a changed setting inside `settings` is a change like any other
    changed = dataclasses.replace(flat, inputs={**flat.inputs, "features": ["cpu"]})
    assert engine.preview([dataclasses.replace(
        changed, inputs=nest_settings(changed.inputs))]).ops() == {"hive-h1": "update"}


def test_a_kickoff_whose_state_holds_its_hosts_as_a_list_reads_as_the_text_sent_now(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    """The program sends the kick-off's hosts as one JSON text; state written before holds
    them as a list. The fleet previews as it is, and the pin the kick-off recorded for a
    host (hostKeyPolicy "tofu", read from its state's hosts) is kept."""
    config = make_fleet(hosts1, rbee_repo, **{"rbee:hostKeyPolicy": "tofu"})
    del config["rbee:knownHosts"]
    sent = declare(config)
    kickoff = next(d for d in sent if d.name == "build-kickoff")
    assert isinstance(kickoff.inputs["hosts"], Secret)
    text = kickoff.inputs["hosts"].value
    assert isinstance(text, str)
    as_list = dataclasses.replace(
        kickoff, inputs={**kickoff.inputs, "hosts": Secret(json.loads(text))}
    )
    installs.ok(engine.up([as_list if d is kickoff else d for d in sent]))
    before = engine.state()["build-kickoff"]
    assert isinstance(before.outputs["hosts"], list)
    assert set(before.outputs["trustedHostKeys"]) == {"host1"}
    assert set(engine.preview(sent).ops().values()) == {"same"}
    installs.ok(engine.up(sent))
    after = engine.state()["build-kickoff"]
    assert after.outputs["trustedHostKeys"] == before.outputs["trustedHostKeys"]
    assert after.inputs["hosts"] == text
