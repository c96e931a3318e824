"""End to end with the real Pulumi CLI: preview, up, update, drop, refresh, destroy.

The `localhost` stack of a temporary copy of the project points at one harness host (a real
sshd on 127.0.0.x) and the fixture rbee repository; state lives in a local file backend.
Every step is checked on the host itself (files, `--version` output), not only in Pulumi's
report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness.fixture_repo import RbeeRepo, expected_version_line, make_rbee_repo
from tests.harness.hosts import HarnessUnavailable, Host, HostSet, start_hosts

# CI sets RBEE_REQUIRE_E2E=1: there a missing CLI or harness fails instead of skipping.
REQUIRED = os.environ.get("RBEE_REQUIRE_E2E") == "1"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("pulumi") is None and not REQUIRED,
        reason="the Pulumi CLI is not on PATH; install it from "
        "https://www.pulumi.com/docs/install/ to run the e2e tests",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
STACK = "localhost"
ALIAS = "localhost"
HIVE = f"hive-{ALIAS}"
CPU = f"worker-{ALIAS}-cpu"
CUDA = f"worker-{ALIAS}-cuda"
BUILD = "build-kickoff"  # the stack's BuildKickoff: "update" whenever something is to build
HIVE_PATH = ".local/bin/rbee-hive"
WORKER_PATH = ".local/share/rbee/workers/rbee-worker-{}"
STEP_TIMEOUT = 600


@dataclass
class Project:
    """A temporary copy of the project wired to a harness host and a file backend."""

    path: Path
    env: dict[str, str]
    host: Host
    hosts: HostSet
    repo: RbeeRepo

    def pulumi(self, *args: str, stack: bool = True) -> subprocess.CompletedProcess[str]:
        command = ["pulumi", *args, "--non-interactive", *(["--stack", STACK] if stack else [])]
        result = subprocess.run(
            command,
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
        )
        if result.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} exited {result.returncode}\n"
                f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
            )
        return result

    def write_stack(self, *, tag: str, workers: list[str]) -> None:
        """Pulumi.localhost.yaml for the harness host; keeps the salt `stack init` added."""
        path = self.path / "stacks" / f"Pulumi.{STACK}.yaml"
        data: dict[str, Any] = yaml.safe_load(path.read_text()) if path.exists() else {}
        data = data or {}
        data["config"] = {
            "rbee:hives": [
                {
                    "alias": ALIAS,
                    "hostname": self.host.address,
                    "sshPort": self.host.port,
                    "sshUser": self.host.user,
                    "installMethod": {"git": {"repo": self.repo.url, "tag": tag}},
                    "workers": [{"type": worker} for worker in workers],
                    # no hive service here (tests/test_service.py covers it); the fixture's
                    # cuda worker builds without a GPU
                    "autoStart": False,
                    "checkPlatform": False,
                }
            ],
            "rbee:sshPrivateKeyPath": str(self.hosts.client_key_path),
            "rbee:knownHosts": str(self.hosts.known_hosts_path),
            "rbee:buildTimeout": 600,
        }
        path.write_text(yaml.safe_dump(data, sort_keys=False))

    def preview_ops(self, *extra: str) -> dict[str, str]:
        """Resource name -> planned operation, for everything that is not `same`."""
        report = json.loads(self.pulumi("preview", "--json", *extra).stdout)
        ops: dict[str, str] = {}
        for step in report.get("steps", []):
            urn: str = step["urn"]
            if "::pulumi:pulumi:Stack::" in urn or step["op"] == "same":
                continue
            ops[urn.rsplit("::", 1)[1]] = step["op"]
        return ops

    def outputs(self) -> dict[str, Any]:
        return json.loads(self.pulumi("stack", "output", "--json", "--show-secrets").stdout)

    def on_host(self, command: str) -> str:
        return self.host.run(command, check=False).stdout.strip()

    def version_of(self, path: str) -> str:
        result = self.host.run(f'"$HOME/{path}" --version', check=False)
        return result.stdout.strip() if result.returncode == 0 else f"<exit {result.returncode}>"

    def exists(self, path: str) -> bool:
        return self.host.run(f'test -e "$HOME/{path}"', check=False).returncode == 0

    def leftovers(self) -> list[str]:
        """Files rbee-infra may have written under the host user's home."""
        out = self.on_host('find "$HOME/.local" -mindepth 1 ! -type d 2>/dev/null')
        return sorted(line for line in out.splitlines() if line)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    if shutil.which("pulumi") is None:
        pytest.fail("RBEE_REQUIRE_E2E=1 but the Pulumi CLI is not on PATH")
    try:
        hosts = start_hosts(1)
    except HarnessUnavailable as error:
        if REQUIRED:
            pytest.fail(f"RBEE_REQUIRE_E2E=1 but the SSH host harness cannot run: {error}")
        pytest.skip(f"the SSH host harness cannot run here: {error}")
    base = tmp_path_factory.mktemp("e2e")
    repo = make_rbee_repo(hosts.base_dir)
    try:
        path = base / "project"
        (path / "stacks").mkdir(parents=True)
        shutil.copy(ROOT / "__main__.py", path / "__main__.py")
        settings = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
        # run with this interpreter (it has the dependencies), not a fresh virtualenv
        settings["runtime"] = {"name": "python", "options": {"toolchain": "pip"}}
        (path / "Pulumi.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
        state = base / "state"
        state.mkdir()
        env = {
            **os.environ,
            "PULUMI_BACKEND_URL": state.as_uri(),
            "PULUMI_CONFIG_PASSPHRASE": "",
            "PULUMI_PYTHON_CMD": sys.executable,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
        env.pop("PULUMI_ACCESS_TOKEN", None)
        project = Project(path=path, env=env, host=hosts[0], hosts=hosts, repo=repo)
        project.write_stack(tag="v0.1.0", workers=["cpu", "cuda"])
        project.pulumi("stack", "init", STACK, "--secrets-provider", "passphrase", stack=False)
        yield project
    finally:
        repo.remove()
        hosts.close()


def expect_installed(project: Project, version: str, workers: list[str]) -> None:
    assert project.version_of(HIVE_PATH) == expected_version_line("rbee-hive", version)
    for worker in workers:
        binary = f"llm-worker-rbee-{worker}"
        assert project.version_of(WORKER_PATH.format(worker)) == expected_version_line(
            binary, version, (worker,)
        ), worker


def test_lifecycle_with_the_real_cli(project: Project) -> None:
    repo = project.repo

    # preview: lists the three creates, touches nothing on the host
    assert project.preview_ops() == {
        BUILD: "create",
        HIVE: "create",
        CPU: "create",
        CUDA: "create",
    }
    assert not project.exists(".local/share/rbee")
    assert not project.exists(HIVE_PATH)

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
    project.write_stack(tag="v0.2.0", workers=["cpu", "cuda"])
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
    project.write_stack(tag="v0.2.0", workers=["cpu"])
    planned = project.preview_ops()
    assert planned.pop(CUDA) == "delete"
    assert planned in ({}, {HIVE: "update"})
    hive_release = project.on_host(f'readlink "$HOME/{HIVE_PATH}"')
    cpu_release = project.on_host(f'readlink "$HOME/{WORKER_PATH.format("cpu")}"')
    assert hive_release and cpu_release
    project.pulumi("up", "--yes", "--skip-preview")
    assert not project.exists(WORKER_PATH.format("cuda"))
    expect_installed(project, "0.2.0", ["cpu"])
    assert project.on_host(f'readlink "$HOME/{HIVE_PATH}"') == hive_release
    assert project.on_host(f'readlink "$HOME/{WORKER_PATH.format("cpu")}"') == cpu_release
    assert set(project.outputs()[ALIAS]["workers"]) == {"cpu"}

    # refresh of a host in step changes nothing
    project.pulumi("refresh", "--yes", "--skip-preview")
    assert project.preview_ops("--expect-no-changes") == {}

    # refresh after the worker binary vanished: the plan puts it back, `up` does so
    project.on_host(f'rm -f "$HOME/{WORKER_PATH.format("cpu")}"')
    project.pulumi("refresh", "--yes", "--skip-preview")
    planned = project.preview_ops()
    assert set(planned) == {BUILD, CPU}
    assert planned[CPU] in ("create", "update", "replace")
    project.pulumi("up", "--yes", "--skip-preview")
    expect_installed(project, "0.2.0", ["cpu"])
    assert project.preview_ops("--expect-no-changes") == {}

    # destroy: nothing of rbee-infra is left on the host
    project.pulumi("destroy", "--yes", "--skip-preview")
    assert not project.exists(HIVE_PATH)
    assert not project.exists(".local/share/rbee")
    assert project.leftovers() == []
    assert project.outputs() == {}
