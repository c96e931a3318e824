"""The project's Python language host (tools/pulumi/language-python) through the real CLI,
without hosts: a program whose stack has no config at all, and the provider server it starts
ahead (`providerPreload`) for a program that never needs one, which must not outlive the run."""

from __future__ import annotations

import os
import shutil
import signal
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


def _language_host(*, interrupt_ignored: bool) -> subprocess.Popen[str]:
    """The language host as the engine starts it (its port on the first line), from a parent
    that ignores SIGINT or not: a background job of a non-interactive shell ignores it, and
    exec passes that on."""
    binary = shutil.which("pulumi-language-python")
    assert binary is not None
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.SIG_IGN if interrupt_ignored else signal.SIG_DFL)
    try:
        host = subprocess.Popen([binary, "127.0.0.1:1"], stdout=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert host.stdout is not None and host.stdout.readline().strip().isdigit()
    return host


@pytest.mark.e2e
@pytest.mark.parametrize("interrupt_ignored", [False, True])
def test_the_language_host_ends_on_the_engines_interrupt(interrupt_ignored: bool) -> None:
    # The engine stops a plugin with SIGINT and kills it only after a 5 s grace: a host that
    # inherited SIGINT ignored cost every run those 5 s (the "5 s regime", docs/performance.md).
    host = _language_host(interrupt_ignored=interrupt_ignored)
    try:
        if interrupt_ignored:
            status = Path(f"/proc/{host.pid}/status").read_text()
            mask = int(status.split("SigIgn:")[1].split()[0], 16)
            assert not mask & (1 << (signal.SIGINT - 1))  # it took the signal back
        host.send_signal(signal.SIGINT)
        code = host.wait(timeout=30)
    finally:
        host.kill()
        host.wait()
    assert code == (130 if interrupt_ignored else -signal.SIGINT)
