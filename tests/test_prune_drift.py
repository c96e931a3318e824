"""Through the engine driver on real SSH hosts: the git method's downgrade and rolled-back
upgrade, drift repaired, and a hive's unmanaged installs listed, and pruned only when asked."""

from __future__ import annotations

import pytest

from tests.harness.engine import Decl, Engine
from tests.harness.fixture_repo import RbeeRepo
from tests.harness.fleet import declare
from tests.harness.host_tools import host_with_scripts
from tests.harness.hosts import HostSet
from tests.harness.installs import (
    HIVE_STABLE,
    RBEE_ROOT,
    failed,
    hive,
    leftovers,
    link,
    ok,
    receipt,
    release_ids,
    version,
    worker_stable,
)
from tests.harness.release_server import ReleaseServer, script_binary

pytestmark = pytest.mark.hosts

REPO = "rbee/rbee"





def test_git_downgrade_failed_upgrade_rolled_back_and_drift_repaired(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    host = hosts1[0]

    def at(**ref: str) -> dict[str, str]:
        return {"method": "git", "repo": rbee_repo.url, **ref}

    ok(engine.up([hive(hosts1, host, at(tag="v0.2.0"))]))
    assert version(host, HIVE_STABLE) == "rbee-hive 0.2.0"
    v2 = rbee_repo.commit_of("v0.2.0")

    # downgrade
    v1 = rbee_repo.commit_of("v0.1.0")
    down = hive(hosts1, host, at(tag="v0.1.0"))
    assert engine.preview([down]).ops() == {"hive-h1": "update"}
    ok(engine.up([down]))
    assert version(host, HIVE_STABLE) == "rbee-hive 0.1.0"
    assert receipt(host, "rbee-hive")["commit"] == v1
    assert release_ids(host, "rbee-hive") == sorted([v1[:12], v2[:12]])

    # failed upgrade: bad-version builds, but its --version fails; 0.1.0 keeps answering
    error = failed(engine.up([hive(hosts1, host, at(branch="bad-version"))]), "hive-h1")
    assert "hive h1: verify failed: rbee-hive --version exited 3" in error
    assert "version check failed" in error
    assert version(host, HIVE_STABLE) == "rbee-hive 0.1.0"
    assert rbee_repo.commit_of("bad-version")[:12] not in release_ids(host, "rbee-hive")
    assert engine.state()["hive-h1"].outputs["commit"] == v1

    # drift: the binary in the active release dir is deleted by hand
    host.run(f"rm -f '.local/bin/{link(host, HIVE_STABLE)}'")
    plan = engine.preview([down])
    assert plan.ops() == {"hive-h1": "update"}
    assert plan.steps[0].detailed_changes["hostState"][1] == "binary missing"
    ok(engine.up([down]))
    assert version(host, HIVE_STABLE) == "rbee-hive 0.1.0"
    assert engine.preview([down]).ops() == {"hive-h1": "same"}

    ok(engine.destroy())
    assert leftovers(host) == []


def test_a_no_op_reuses_the_checksum_taken_at_activation_until_the_file_changes(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    """A no-op would hash every installed binary on every read (rbee's are tens of MB). The
    checksum taken when the release was activated is reused while the file's device, inode,
    size, mtime and ctime are what they were; a write changes the ctime, even one that keeps
    the size and puts the mtime back."""
    host = hosts1[0]
    decl = hive(hosts1, host, {"method": "git", "repo": rbee_repo.url, "tag": "v0.1.0"})
    ok(engine.up([decl]))
    target = f".local/bin/{link(host, HIVE_STABLE)}"
    recorded = host.run(f"cat '{target}.rbee-stat'").stdout.split()
    assert recorded[-1] == receipt(host, "rbee-hive")["sha256"]
    calls = host.home / "sha256sum-calls"
    counted = f'#!/bin/sh\necho "$$" >> {calls}\nexec /usr/bin/sha256sum "$@"\n'
    with host_with_scripts(host, {"sha256sum": counted}):
        assert engine.preview([decl]).ops() == {"hive-h1": "same"}
        assert not calls.exists()  # no binary hashed
        # one byte written in place: the same inode and size, the mtime put back
        host.run(f"touch -r '{target}' ref && printf X | dd of='{target}' bs=1 seek=100 "
                 f"conv=notrunc 2>/dev/null && touch -r ref '{target}' && rm ref")
        assert host.run(f"stat -c %s '{target}'").stdout.split()[0] == recorded[2]
        plan = engine.preview([decl])
        assert plan.ops() == {"hive-h1": "update"}
        assert plan.steps[0].detailed_changes["hostState"][1] == (
            "binary changed (sha256 differs from the receipt)"
        )
        assert calls.exists()
    ok(engine.up([decl]))
    assert version(host, HIVE_STABLE) == "rbee-hive 0.1.0"
    assert engine.preview([decl]).ops() == {"hive-h1": "same"}


def test_unmanaged_installs_listed_and_pruned_only_when_asked(
    hosts1: HostSet, engine: Engine
) -> None:
    host = hosts1[0]
    with ReleaseServer() as server:
        server.publish(
            REPO, "v0.1.0", "rbee-hive", script_binary("rbee-hive 0.1.0"), checksum="sums"
        )
        server.publish(
            REPO,
            "v0.1.0",
            "llm-worker-rbee-cpu",
            script_binary("llm-worker-rbee-cpu 0.1.0 features=cpu"),
            checksum="sums",
        )
        src = {"repo": REPO, "tag": "v0.1.0", "baseUrl": server.base_url}

        # left by hand or an old tool: a hive binary, two workers, a release dir with no
        # receipt; and a hand-made binary where the configured cpu worker goes
        host.run(
            "mkdir -p .local/bin .local/share/rbee/workers"
            " .local/share/rbee/releases/rbee-worker-gone/0ld"
            " && printf '#!/bin/sh\\necho rbee-hive 0.0.1\\n' > .local/bin/rbee-hive"
            " && chmod +x .local/bin/rbee-hive"
            " && echo rocm > .local/share/rbee/workers/rbee-worker-rocm"
            " && echo old > .local/share/rbee/workers/llm-worker-rbee-old"
            " && echo gone > .local/share/rbee/releases/rbee-worker-gone/0ld/llm-worker-rbee-gone"
            " && echo mine > .local/share/rbee/workers/rbee-worker-cpu"
        )
        extras = [
            "~/.local/bin/rbee-hive.pre-rbee-infra",
            "~/.local/share/rbee/releases/rbee-worker-gone",
            "~/.local/share/rbee/workers/llm-worker-rbee-old",
            "~/.local/share/rbee/workers/rbee-worker-rocm",
        ]

        def fleet(prune: bool) -> list[Decl]:
            """The stack config an operator writes, declared by the real program."""
            config = {
                "rbee:hives": [
                    {
                        "alias": "h1",
                        "hostname": host.address,
                        "sshUser": host.user,
                        "sshPort": host.port,
                        "installMethod": {"release": src},
                        "workers": [{"type": "cpu"}],
                        "pruneUnmanaged": prune,
                        "autoStart": False,  # the fake release hive does not serve
                    }
                ],
                "rbee:sshPrivateKeyPath": str(hosts1.client_key_path),
                "rbee:knownHosts": str(hosts1.known_hosts_path),
            }
            return declare(config)

        # listed, not removed
        ok(engine.up(fleet(False)))
        assert version(host, HIVE_STABLE) == "rbee-hive 0.1.0"
        assert version(host, worker_stable("cpu")) == "llm-worker-rbee-cpu 0.1.0 features=cpu"
        assert engine.state()["hive-h1"].outputs["extras"] == extras
        unchanged = {"build-kickoff": "same", "hive-h1": "same", "worker-h1-cpu": "same"}
        assert engine.preview(fleet(False)).ops() == unchanged
        for path in extras:
            assert (host.home / path.removeprefix("~/")).exists(), path

        # asked: preview lists what will go and removes nothing; up removes exactly that
        plan = engine.preview(fleet(True))
        assert plan.ops() == {**unchanged, "hive-h1": "update"}
        hive_step = next(s for s in plan.steps if s.name == "hive-h1")
        assert hive_step.detailed_changes["pruneExtras"] == (None, extras)
        for path in extras:
            assert (host.home / path.removeprefix("~/")).exists(), path
        ok(engine.up(fleet(True)))
        for path in extras:
            assert not (host.home / path.removeprefix("~/")).exists(), path
        assert engine.state()["hive-h1"].outputs["extras"] == []
        # the configured worker and its moved-aside hand-made binary were not touched
        assert version(host, worker_stable("cpu")) == "llm-worker-rbee-cpu 0.1.0 features=cpu"
        assert receipt(host, "rbee-worker-cpu")["resource"] == "worker-h1-cpu"
        assert (host.home / RBEE_ROOT / "workers/rbee-worker-cpu.pre-rbee-infra").exists()
        assert version(host, HIVE_STABLE) == "rbee-hive 0.1.0"
        assert engine.preview(fleet(True)).ops() == unchanged

        # a new stray install shows up in the next preview, and goes on the next up
        host.run("echo new > .local/share/rbee/workers/rbee-worker-new")
        plan = engine.preview(fleet(True))
        hive_step = next(s for s in plan.steps if s.name == "hive-h1")
        assert hive_step.op == "update"
        assert hive_step.detailed_changes["pruneExtras"][1] == [
            "~/.local/share/rbee/workers/rbee-worker-new"
        ]
        ok(engine.up(fleet(True)))
        assert not (host.home / RBEE_ROOT / "workers/rbee-worker-new").exists()

        # destroy leaves only what was there before rbee-infra, put back where it was
        ok(engine.destroy())
        left = [p for p in leftovers(host) if not p.startswith(f"{RBEE_ROOT}/.lock")]
        assert left == [RBEE_ROOT, f"{RBEE_ROOT}/workers/rbee-worker-cpu"]
        assert host.run(f"cat {RBEE_ROOT}/workers/rbee-worker-cpu").stdout == "mine\n"
