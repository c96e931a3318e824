"""The project's Python language host (tools/pulumi/language-python) through the real CLI,
without hosts: a program whose stack has no config at all, and the provider server it starts
ahead (`providerPreload`) for a program that never needs one, which must not outlive the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.e2e.project import PASSPHRASE, ROOT, needs_cli

pytestmark = needs_cli


def _empty_project(base: Path, *, preload: list[str] | None) -> tuple[Path, dict[str, str]]:
    path = base / "project"
    path.mkdir(parents=True)
    settings = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    settings["name"] = "empty"
    settings.pop("stackConfigDir", None)
    settings["runtime"]["options"].pop("providerPreload", None)
    if preload is not None:
        settings["runtime"]["options"]["providerPreload"] = preload
    (path / "Pulumi.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    (path / "__main__.py").write_text("import pulumi\n\npulumi.export('answer', 42)\n")
    (base / "state").mkdir()
    env = {
        **os.environ, "PULUMI_BACKEND_URL": (base / "state").as_uri(),
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE, "PULUMI_PYTHON_CMD": sys.executable,
        "PULUMI_SKIP_UPDATE_CHECK": "true", "PULUMI_HOME": str(base / "pulumi-home"),
        "TMPDIR": str(base),
    }  # fmt: skip
    return path, env


def _pulumi(path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["pulumi", *args, "--non-interactive", "--stack", "dev"], cwd=path, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.mark.e2e
def test_a_stack_without_any_config_runs(tmp_path: Path) -> None:
    path, env = _empty_project(tmp_path, preload=None)
    _pulumi(path, env, "stack", "init", "--secrets-provider", "passphrase")
    assert not (path / "Pulumi.dev.yaml").exists() or "config" not in (
        yaml.safe_load((path / "Pulumi.dev.yaml").read_text()) or {}
    )
    _pulumi(path, env, "up", "--yes", "--skip-preview")
    assert _pulumi(path, env, "stack", "output", "answer").stdout.strip() == "42"


@pytest.mark.e2e
def test_a_provider_server_started_ahead_and_never_needed_is_stopped(tmp_path: Path) -> None:
    path, env = _empty_project(tmp_path, preload=["json"])
    _pulumi(path, env, "stack", "init", "--secrets-provider", "passphrase")
    _pulumi(path, env, "preview")
    _pulumi(path, env, "up", "--yes")  # its preview and its update: two runs of the program
    folder = tmp_path / f"pulumi-python-warm-{os.getuid()}"
    assert folder.is_dir()  # the language host made one: it started a server each run
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert list(folder.iterdir()) == []  # and stopped it: no socket, no marker left
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    assert str(folder) not in ps.stdout
