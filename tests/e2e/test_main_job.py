"""The README's main job, `bash scripts/localhost.sh`, run as written: it gets the Pulumi CLI,
makes this machine reachable over SSH on 127.0.0.1:22, and installs the `localhost` stack with
the real `pulumi up`, then `rbee-infra status` reports it in sync.

The stack file is the project's own, with its repository pointed at the fixture repo (this
machine has no route to the real one). Everything is installed for the user running the test
under its real home, as the script does for an operator, and destroyed at the end.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.project import REQUIRED, ROOT, needs_cli, require_cli
from tests.harness.fixture_repo import expected_version_line, make_rbee_repo

pytestmark = needs_cli


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_the_main_job_installs_the_localhost_stack_with_the_real_cli(tmp_path: Path) -> None:
    require_cli()
    if os.geteuid() != 0 and not REQUIRED:
        pytest.skip("the main job test runs as root (it may start the system sshd)")
    tmp_path.chmod(0o755)
    repo = make_rbee_repo(tmp_path)
    project = tmp_path / "project"
    (project / "stacks").mkdir(parents=True)
    for name in ("Pulumi.yaml", "__main__.py"):
        (project / name).write_text((ROOT / name).read_text())
    stack = yaml.safe_load((ROOT / "stacks" / "Pulumi.localhost.yaml").read_text())
    hive = stack["config"]["rbee:hives"][0]
    assert hive["installMethod"]["git"]["branch"] == "main"
    hive["installMethod"]["git"]["repo"] = repo.url
    (project / "stacks" / "Pulumi.localhost.yaml").write_text(yaml.safe_dump(stack))
    (tmp_path / "state").mkdir()
    env = {
        **os.environ,
        "RBEE_INFRA_PROJECT_DIR": str(project),
        "PULUMI_BACKEND_URL": (tmp_path / "state").as_uri(),
        "PULUMI_CONFIG_PASSPHRASE": "main-job",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    }
    sshd_was_running = _listening(22)
    hive_path = Path.home() / ".local" / "bin" / "rbee-hive"
    assert not hive_path.exists(), "this test would overwrite an rbee-hive of this user"
    try:
        job = subprocess.run(["bash", "scripts/localhost.sh"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=1200)
        out = job.stdout + job.stderr
        assert job.returncode == 0, out[-6000:]
        version = subprocess.run([str(hive_path), "--version"], capture_output=True, text=True)
        assert version.stdout.strip() == expected_version_line("rbee-hive", "0.2.0")
        worker = Path.home() / ".local/share/rbee/workers/rbee-worker-cpu"
        assert worker.exists()
        assert "Resources:" in out and "created" in out  # Pulumi's own summary of the `up`
        assert "1 hive(s): 1 in sync" in out, out[-3000:]
    finally:
        subprocess.run(
            ["python3", "-m", "rbee_infra.cli", "destroy", "--stack", "localhost", "--yes"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        )
        repo.remove()
        if not sshd_was_running and Path("/run/sshd.pid").exists():
            os.kill(int(Path("/run/sshd.pid").read_text().split()[0]), signal.SIGTERM)
    assert not hive_path.exists()
    assert not (Path.home() / ".local/share/rbee/workers").exists()
