"""End to end with the real Pulumi CLI: preview, up, update, drop, refresh, destroy.

The `localhost` stack of a temporary copy of the project points at one harness host (a real
sshd on 127.0.0.x) and the fixture rbee repository; state lives in a local file backend.
Every step is checked on the host itself (files, the hive's `--version` and the workers'
`--help` output), not only in Pulumi's report.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.project import (
    Project,
    exists,
    hosts_and_repo,
    needs_cli,
    on_host,
    project_on,
    worker_about_of,
)
from tests.e2e.project import version_of as _version_of
from tests.harness.fixture_repo import expected_version_line, expected_worker_about
from tests.harness.fleet import make_fleet

pytestmark = needs_cli

ALIAS = "host1"
HIVE = f"hive-{ALIAS}"
CPU = f"worker-{ALIAS}-cpu"
CUDA = f"worker-{ALIAS}-cuda"
BUILD = "build-kickoff"  # the stack's BuildKickoff: "update" whenever something is to build
HIVE_PATH = ".local/bin/rbee-hive"
WORKER_PATH = ".local/share/rbee/workers/rbee-worker-{}"


def write_stack(project: Project, *, tag: str, workers: list[str]) -> None:
    config = make_fleet(project.hosts, project.repo, workers_per_hive=0, ref={"tag": tag})
    config["rbee:hives"][0]["workers"] = [{"type": worker} for worker in workers]
    project.write_config(config)


def version_of(project: Project, path: str) -> str:
    return _version_of(project.hosts[0], path)


def leftovers(project: Project) -> list[str]:
    """Files rbee-infra may have written under the host user's home."""
    out = on_host(project.hosts[0], 'find "$HOME/.local" -mindepth 1 ! -type d 2>/dev/null')
    return sorted(line for line in out.splitlines() if line)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    base = tmp_path_factory.mktemp("e2e")
    with hosts_and_repo(1, base) as (hosts, repo), project_on(hosts, repo, base) as project:
        write_stack(project, tag="v0.1.0", workers=["cpu", "cuda"])
        yield project


def expect_installed(project: Project, version: str, workers: list[str]) -> None:
    assert version_of(project, HIVE_PATH) == expected_version_line("rbee-hive", version)
    for worker in workers:
        about = worker_about_of(project.hosts[0], WORKER_PATH.format(worker))
        assert about == expected_worker_about(version, (worker,)), worker


def test_lifecycle_with_the_real_cli(project: Project) -> None:
    repo = project.repo

    # preview: lists the three creates, touches nothing on the host
    assert project.preview_ops() == {
        BUILD: "create",
        HIVE: "create",
        CPU: "create",
        CUDA: "create",
    }
    assert not exists(project.hosts[0], ".local/share/rbee")
    assert not exists(project.hosts[0], HIVE_PATH)

    # up: installs the hive and both workers from v0.1.0
    project.pulumi("up", "--yes", "--skip-preview")
    expect_installed(project, "0.1.0", ["cpu", "cuda"])
    hive_out = project.outputs()[ALIAS]["hive"]
    assert hive_out["commit"] == repo.commit_of("v0.1.0")
    assert hive_out["path"].endswith(HIVE_PATH)
    assert set(project.outputs()[ALIAS]["workers"]) == {"cpu", "cuda"}
    # converged: the next preview has nothing to do
    assert project.preview_ops("--expect-no-changes") == {}

    # a changed tag previews as updates (nothing touched), then `up` applies it
    write_stack(project, tag="v0.2.0", workers=["cpu", "cuda"])
    assert project.preview_ops() == {
        BUILD: "update",
        HIVE: "update",
        CPU: "update",
        CUDA: "update",
    }
    expect_installed(project, "0.1.0", ["cpu", "cuda"])
    project.pulumi("up", "--yes", "--skip-preview")
    expect_installed(project, "0.2.0", ["cpu", "cuda"])
    assert project.outputs()[ALIAS]["hive"]["commit"] == repo.commit_of("v0.2.0")
    assert project.preview_ops("--expect-no-changes") == {}

    # a dropped worker is deleted from the host; the rest stays as it is (the hive's list
    # of managed workers changes, an in-place update that reinstalls nothing)
    write_stack(project, tag="v0.2.0", workers=["cpu"])
    planned = project.preview_ops()
    assert planned.pop(CUDA) == "delete"
    assert planned in ({}, {HIVE: "update"})
    hive_release = on_host(project.hosts[0], f'readlink "$HOME/{HIVE_PATH}"')
    cpu_release = on_host(project.hosts[0], f'readlink "$HOME/{WORKER_PATH.format("cpu")}"')
    assert hive_release and cpu_release
    project.pulumi("up", "--yes", "--skip-preview")
    assert not exists(project.hosts[0], WORKER_PATH.format("cuda"))
    expect_installed(project, "0.2.0", ["cpu"])
    assert on_host(project.hosts[0], f'readlink "$HOME/{HIVE_PATH}"') == hive_release
    assert on_host(project.hosts[0], f'readlink "$HOME/{WORKER_PATH.format("cpu")}"') == cpu_release
    assert set(project.outputs()[ALIAS]["workers"]) == {"cpu"}

    # refresh of a host in step changes nothing
    project.pulumi("refresh", "--yes", "--skip-preview")
    assert project.preview_ops("--expect-no-changes") == {}

    # refresh after the worker binary vanished: the plan puts it back, `up` does so
    on_host(project.hosts[0], f'rm -f "$HOME/{WORKER_PATH.format("cpu")}"')
    project.pulumi("refresh", "--yes", "--skip-preview")
    planned = project.preview_ops()
    assert set(planned) == {BUILD, CPU}
    assert planned[CPU] in ("create", "update", "replace")
    project.pulumi("up", "--yes", "--skip-preview")
    expect_installed(project, "0.2.0", ["cpu"])
    assert project.preview_ops("--expect-no-changes") == {}

    # destroy: nothing of rbee-infra is left on the host
    project.pulumi("destroy", "--yes", "--skip-preview")
    assert not exists(project.hosts[0], HIVE_PATH)
    assert not exists(project.hosts[0], ".local/share/rbee")
    assert leftovers(project) == []
    assert project.outputs() == {}
