"""What the real Pulumi engine does with rbee-infra, beyond the lifecycle: a moved branch,
secrets in the exported state, `--parallel` on 8 hosts, a dead host among live ones, and an
`up` interrupted mid-build. Each test has its own hosts, stack and file backend.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.project import (
    Project,
    exists,
    failure,
    hosts_and_repo,
    interrupt,
    needs_cli,
    on_host,
    project_on,
    version_of,
)
from tests.harness import standin_cargo
from tests.harness.fixture_repo import expected_version_line
from tests.harness.fleet import hive_config, make_fleet
from tests.harness.git_http import GitHttpServer
from tests.harness.hosts import wait_until

pytestmark = needs_cli

HIVE_PATH = ".local/bin/rbee-hive"
TOKEN = "ghp_E2eT0kenValue0123456789abcdef"


@pytest.fixture
def base(tmp_path: Path) -> Path:
    tmp_path.chmod(0o755)
    return tmp_path


@pytest.fixture
def one(base: Path) -> Iterator[Project]:
    with hosts_and_repo(1, base) as (hosts, repo), project_on(hosts, repo, base) as project:
        yield project


def test_a_moved_branch_previews_as_an_update_and_up_applies_it(one: Project) -> None:
    (host,) = one.hosts
    one.write_config(make_fleet(one.hosts, one.repo, ref={"branch": "moving"}))
    one.pulumi("up", "--yes", "--skip-preview")
    assert version_of(host, HIVE_PATH) == expected_version_line("rbee-hive", "0.2.0")
    assert one.preview_ops("--expect-no-changes") == {}

    moved = one.repo.advance_branch("moving", "0.3.0")
    assert one.preview_ops() == {"build-kickoff": "update", "hive-host1": "update"}
    assert version_of(host, HIVE_PATH) == expected_version_line("rbee-hive", "0.2.0")
    one.pulumi("up", "--yes", "--skip-preview")
    assert version_of(host, HIVE_PATH) == expected_version_line("rbee-hive", "0.3.0")
    assert one.outputs()["host1"]["hive"]["commit"] == moved
    assert one.preview_ops("--expect-no-changes") == {}


def test_preview_and_up_print_no_library_warnings(one: Project) -> None:
    """asyncssh's import makes cryptography warn that DSA is deprecated; the provider server's
    stderr is the stack's diagnostics, so without the filter every run printed ten such lines."""
    one.write_config(make_fleet(one.hosts, one.repo, workers_per_hive=1))
    one.env["PYTHONWARNINGS"] = "default"  # whatever the operator's default filter is
    runs = [one.run("preview"), one.run("up", "--yes", "--skip-preview")]
    for result in runs:
        text = result.stdout + result.stderr
        assert result.returncode == 0, text[-4000:]
        assert "hive-host1" in text  # the provider did connect (and so imported asyncssh)
        assert "Warning" not in text and "deprecated" not in text, text[-4000:]


def test_stack_export_holds_the_key_and_the_token_only_encrypted(one: Project) -> None:
    (host,) = one.hosts
    server = GitHttpServer(one.repo.path.parent, TOKEN)
    try:
        config = make_fleet(one.hosts, one.repo, workers_per_hive=1)
        del config["rbee:sshPrivateKeyPath"]
        one.write_config(config)
        # a token-bearing URL in plain config is refused before any host is touched
        repo_path = "rbee:hives[0].installMethod.git.repo"
        one.pulumi("config", "set", "--path", repo_path, server.url(one.repo.path.name))
        refused = one.run("preview")
        assert refused.returncode != 0
        assert "hives[0].installMethod.git.repo: this URL carries a credential" in (
            refused.stdout + refused.stderr), failure(("preview",), refused)
        assert TOKEN not in refused.stdout + refused.stderr
        assert server.requests == 0
        # as secrets: the URL by its path (the value on stdin), the key as a whole
        one.pulumi("config", "set", "--secret", "--path", repo_path,
                   stdin=server.url(one.repo.path.name))
        one.set_secret("rbee:sshPrivateKey", one.hosts.client_key_pem)
        key_body = one.hosts.client_key_pem.strip().splitlines()[1]
        up = one.pulumi("up", "--yes", "--skip-preview")
        assert version_of(host, HIVE_PATH) == expected_version_line("rbee-hive", "0.1.0")
        assert server.requests > server.unauthorized > 0  # the token was really used

        exported = json.dumps(one.export())
        assert TOKEN not in exported and key_body not in exported
        assert '"ciphertext"' in exported
        assert TOKEN not in up.stdout + up.stderr and key_body not in up.stdout + up.stderr
        # encrypted, not dropped: the passphrase opens both
        revealed = json.dumps(one.export("--show-secrets"))
        assert TOKEN in revealed and key_body in revealed
    finally:
        server.close()


def test_up_with_parallel_8_installs_8_hosts(base: Path) -> None:
    with hosts_and_repo(8, base) as (hosts, repo), project_on(hosts, repo, base) as project:
        project.write_config(make_fleet(hosts, repo))
        result = project.pulumi("up", "--yes", "--skip-preview", "--parallel", "8")
        # the stack, the build kick-off and 8 hives
        assert re.search(r"\+ 10 created\b", result.stdout), result.stdout[-3000:]
        for host in hosts:
            assert version_of(host, HIVE_PATH) == expected_version_line("rbee-hive", "0.1.0")
        assert project.preview_ops("--expect-no-changes") == {}


def test_a_dead_host_does_not_stop_the_others(base: Path) -> None:
    with hosts_and_repo(2, base) as (hosts, repo), project_on(hosts, repo, base) as project:
        live, dead = hosts.hosts
        config = make_fleet(hosts, repo, workers_per_hive=1, **{"rbee:connectTimeout": 3})
        project.write_config(config)
        dead.stop()
        plan = project.preview_ops()
        assert plan["hive-host2"] == "create" and plan["worker-host1-cpu"] == "create"

        result = project.run("up", "--yes", "--skip-preview", "--continue-on-error")
        assert result.returncode != 0, failure(("up",), result)
        out = result.stdout + result.stderr
        assert "hive host2: connect failed" in out, out[-4000:]
        # every failure as its message; none of the SDK's exceptions for what depends on it
        assert "Traceback" not in out and "unhandled exception" not in out, out[-4000:]
        assert version_of(live, HIVE_PATH) == expected_version_line("rbee-hive", "0.1.0")
        assert exists(live, ".local/share/rbee/workers/rbee-worker-cpu")
        names = {r["urn"].rsplit("::", 1)[1] for r in project.export()["deployment"]["resources"]}
        assert {"hive-host1", "worker-host1-cpu"} <= names
        assert not {"hive-host2", "worker-host2-cpu"} & names

        # the host comes back: the next `up` installs just what is missing there
        dead.start()
        assert project.preview_ops() == {
            "build-kickoff": "update", "hive-host2": "create", "worker-host2-cpu": "create",
        }
        project.pulumi("up", "--yes", "--skip-preview")
        assert version_of(dead, HIVE_PATH) == expected_version_line("rbee-hive", "0.1.0")


def test_an_interrupted_up_converges_with_one_build(one: Project) -> None:
    (host,) = one.hosts
    config = make_fleet(one.hosts, one.repo)
    hive_config(config, "host1")["cargo"] = standin_cargo.install([host], 6)
    one.write_config(config)

    running = one.start("up", "--yes", "--skip-preview")
    wait_until(lambda: bool(standin_cargo.builds(host)) or "start" in on_host(
        host, "cat bench/cargo.log 2>/dev/null"), timeout=120)
    # Ctrl-C twice: Pulumi's first one waits for the running steps to finish; the second
    # stops at once and leaves the create it had started pending in the state
    out = interrupt(running, times=2)
    assert running.returncode != 0, out
    pending = one.export()["deployment"].get("pending_operations") or []
    assert [p["type"] for p in pending] == ["creating"], pending
    assert not exists(host, HIVE_PATH)

    # The next `up` warns about the pending create and goes on: the create runs again, and
    # rbee-infra joins the build the interrupted run had started on the host
    again = one.pulumi("up", "--yes", "--skip-preview")
    assert "with 1 pending operations from previous deployment" in again.stdout, again.stdout
    assert "hive-host1, interrupted while creating" in again.stdout
    assert version_of(host, HIVE_PATH) == expected_version_line("rbee-hive", "0.1.0")
    assert [b[2] for b in standin_cargo.builds(host)] == ["rbee-hive"]
    # the pending entry stays in the state (and the warning on every run) until a refresh
    # clears it; the resource itself is recorded
    assert one.export()["deployment"].get("pending_operations")
    one.pulumi("refresh", "--yes", "--skip-preview", "--clear-pending-creates")
    assert not one.export()["deployment"].get("pending_operations")
    clean = one.pulumi("up", "--yes", "--skip-preview")
    assert "pending operations" not in clean.stdout
    assert one.preview_ops("--expect-no-changes") == {}
    assert [b[2] for b in standin_cargo.builds(host)] == ["rbee-hive"]
