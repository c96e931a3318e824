"""A temporary copy of the Pulumi project, run by the real Pulumi CLI against harness hosts.

State lives in a local file backend under the test's temporary directory; secrets use the
passphrase provider. Every helper runs `pulumi` as an operator would, from the project dir.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness.fixture_repo import RbeeRepo, make_rbee_repo
from tests.harness.hosts import HarnessUnavailable, Host, HostSet, start_hosts

# CI sets RBEE_REQUIRE_E2E=1: there a missing CLI or harness fails instead of skipping.
REQUIRED = os.environ.get("RBEE_REQUIRE_E2E") == "1"
ROOT = Path(__file__).resolve().parents[2]
STEP_TIMEOUT = 600
PASSPHRASE = "e2e-passphrase"

requires_cli = pytest.mark.skipif(
    shutil.which("pulumi") is None and not REQUIRED,
    reason="the Pulumi CLI is not on PATH; `bash scripts/install-pulumi.sh` installs it",
)
needs_cli = [pytest.mark.e2e, requires_cli]


def require_cli() -> None:
    if shutil.which("pulumi") is None:
        pytest.fail("RBEE_REQUIRE_E2E=1 but the Pulumi CLI is not on PATH")


def start_hosts_or_skip(n: int) -> HostSet:
    try:
        return start_hosts(n)
    except HarnessUnavailable as error:
        if REQUIRED:
            pytest.fail(f"RBEE_REQUIRE_E2E=1 but the SSH host harness cannot run: {error}")
        pytest.skip(f"the SSH host harness cannot run here: {error}")


@dataclass
class Project:
    path: Path
    env: dict[str, str]
    hosts: HostSet
    repo: RbeeRepo
    stack: str

    @property
    def stack_file(self) -> Path:
        return self.path / "stacks" / f"Pulumi.{self.stack}.yaml"

    def run(self, *args: str, stack: bool = True, timeout: float = STEP_TIMEOUT,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        command = ["pulumi", *args, "--non-interactive", *(["--stack", self.stack] if stack else [])]
        return subprocess.run(command, cwd=self.path, env=self.env, capture_output=True,
                              text=True, timeout=timeout, input=stdin)

    def pulumi(self, *args: str, stack: bool = True, stdin: str | None = None,
               ) -> subprocess.CompletedProcess[str]:
        """Run `pulumi ARGS` and require exit 0."""
        result = self.run(*args, stack=stack, stdin=stdin)
        if result.returncode != 0:
            raise AssertionError(failure(args, result))
        return result

    def start(self, *args: str) -> subprocess.Popen[str]:
        """`pulumi ARGS` in the background (its own process group, as from a terminal)."""
        return subprocess.Popen(
            ["pulumi", *args, "--non-interactive", "--stack", self.stack], cwd=self.path,
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )

    def rbee_infra(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The operator CLI on this project and stack, as its console script runs."""
        return subprocess.run(
            [*self._rbee_infra(args)], cwd=self.path, env=self.env, capture_output=True,
            text=True, timeout=STEP_TIMEOUT,
        )

    def start_rbee_infra(self, *args: str) -> subprocess.Popen[str]:
        """`rbee-infra ARGS` in the background, in its own process group as from a terminal."""
        return subprocess.Popen(
            self._rbee_infra(args), cwd=self.path, env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )

    def _rbee_infra(self, args: tuple[str, ...]) -> list[str]:
        return [sys.executable, "-m", "rbee_infra.cli", *args, "--project-dir", str(self.path),
                "--stack", self.stack]

    def write_config(self, config: dict[str, Any]) -> None:
        """The stack's config, keeping the salt and the secure values `pulumi config` set."""
        data: dict[str, Any] = {}
        if self.stack_file.exists():
            data = yaml.safe_load(self.stack_file.read_text()) or {}
        kept = {k: v for k, v in (data.get("config") or {}).items()
                if isinstance(v, dict) and "secure" in v and k not in config}
        data["config"] = {**kept, **config}
        self.stack_file.write_text(yaml.safe_dump(data, sort_keys=False))

    def set_secret(self, key: str, value: str) -> None:
        # the value on stdin, not in argv
        self.pulumi("config", "set", "--secret", key, stdin=value)

    def preview_ops(self, *extra: str) -> dict[str, str]:
        """Resource name -> planned operation, for everything that is not `same`."""
        return ops_of(json.loads(self.pulumi("preview", "--json", *extra).stdout))

    def outputs(self) -> dict[str, Any]:
        return json.loads(self.pulumi("stack", "output", "--json", "--show-secrets").stdout)

    def export(self, *extra: str) -> dict[str, Any]:
        return json.loads(self.pulumi("stack", "export", *extra).stdout)


def ops_of(report: dict[str, Any]) -> dict[str, str]:
    ops: dict[str, str] = {}
    for step in report.get("steps", []):
        urn: str = step["urn"]
        if "::pulumi:pulumi:Stack::" in urn or step["op"] == "same":
            continue
        ops[urn.rsplit("::", 1)[1]] = step["op"]
    return ops


def failure(args: tuple[str, ...], result: subprocess.CompletedProcess[str]) -> str:
    return (f"pulumi {' '.join(args)} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}")


@contextmanager
def project_on(hosts: HostSet, repo: RbeeRepo, base: Path, *, stack: str = "localhost"
               ) -> Iterator[Project]:
    """A copy of the project with a new stack `stack`, its state in `base/state`."""
    require_cli()
    path = base / "project"
    (path / "stacks").mkdir(parents=True)
    shutil.copy(ROOT / "__main__.py", path / "__main__.py")
    settings = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert settings["runtime"]["options"]["toolchain"] == "pip"
    (path / "Pulumi.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    state = base / "state"
    state.mkdir()
    env = {
        **os.environ,
        "PULUMI_BACKEND_URL": state.as_uri(),
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_PYTHON_CMD": sys.executable,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_HOME": str(base / "pulumi-home"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    env.pop("PULUMI_ACCESS_TOKEN", None)
    project = Project(path=path, env=env, hosts=hosts, repo=repo, stack=stack)
    project.pulumi("stack", "init", stack, "--secrets-provider", "passphrase", stack=False)
    yield project


@contextmanager
def hosts_and_repo(n: int, base: Path) -> Iterator[tuple[HostSet, RbeeRepo]]:
    hosts = start_hosts_or_skip(n)
    repo = make_rbee_repo(hosts.base_dir)
    try:
        yield hosts, repo
    finally:
        repo.remove()
        hosts.close()


def on_host(host: Host, command: str) -> str:
    return host.run(command, check=False).stdout.strip()


def version_of(host: Host, path: str) -> str:
    result = host.run(f'"$HOME/{path}" --version', check=False)
    return result.stdout.strip() if result.returncode == 0 else f"<exit {result.returncode}>"


def worker_about_of(host: Host, path: str) -> str:
    """The first line of a fixture worker's `--help` (it has no `--version`, like rbee's)."""
    result = host.run(f'"$HOME/{path}" --help', check=False)
    lines = result.stdout.splitlines()
    return lines[0] if result.returncode == 0 and lines else f"<exit {result.returncode}>"


def exists(host: Host, path: str) -> bool:
    return host.run(f'test -e "$HOME/{path}"', check=False).returncode == 0


def interrupt(process: subprocess.Popen[str], times: int = 1) -> str:
    """Ctrl-C `times` (to the process group, as a terminal sends it); returns its output."""
    for _ in range(times):
        os.killpg(process.pid, signal.SIGINT)
        time.sleep(0.5)
    out, _ = process.communicate(timeout=STEP_TIMEOUT)
    return out
