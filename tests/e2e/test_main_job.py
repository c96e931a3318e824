"""The README's main job, `bash scripts/localhost.sh`, run as written: it gets the Pulumi CLI,
makes this machine reachable over SSH on 127.0.0.1:22, and installs the `localhost` stack with
the real `pulumi up`, then `rbee-infra status` reports it in sync.

The stack file is the project's own, with its repository pointed at the fixture repo (this
machine has no route to the real one). Everything is installed for the user running the test
under its real home, as the script does for an operator, and destroyed at the end.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.project import REQUIRED, ROOT, needs_cli, require_cli
from tests.harness import real_tree
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
    env = _project_on(tmp_path, repo.url)
    sshd_was_running = _listening(22)
    hive_path = Path.home() / ".local" / "bin" / "rbee-hive"
    assert not hive_path.exists(), "this test would overwrite an rbee-hive of this user"
    # the set-up byte-compiles rbee-infra, as a wheel's install would: with no process
    # allowed to write byte code, only it can bring this file back
    program_code = Path(importlib.util.cache_from_source(str(ROOT / "rbee_infra/stack/program.py")))
    program_code.unlink(missing_ok=True)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    try:
        job = subprocess.run(["bash", "scripts/localhost.sh"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=1200)
        out = job.stdout + job.stderr
        assert job.returncode == 0, out[-6000:]
        assert program_code.is_file()
        version = subprocess.run([str(hive_path), "--version"], capture_output=True, text=True)
        assert version.stdout.strip() == expected_version_line("rbee-hive", "0.2.0")
        worker = Path.home() / ".local/share/rbee/workers/rbee-worker-cpu"
        assert worker.exists()
        assert "Resources:" in out and "created" in out  # Pulumi's own summary of the `up`
        assert "1 hive(s): 1 in sync" in out, out[-3000:]
    finally:
        _undo(env, sshd_was_running)
        repo.remove()
    assert not hive_path.exists()
    assert not (Path.home() / ".local/share/rbee/workers").exists()


def _undo(env: dict[str, str], sshd_was_running: bool) -> None:
    """Destroy what the main job installed; stop the system sshd if the script started it."""
    subprocess.run(
        ["python3", "-m", "rbee_infra.cli", "destroy", "--stack", "localhost", "--yes"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    if not sshd_was_running and Path("/run/sshd.pid").exists():
        os.kill(int(Path("/run/sshd.pid").read_text().split()[0]), signal.SIGTERM)


def _stack() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "stacks" / "Pulumi.localhost.yaml").read_text())


def _project_on(tmp_path: Path, repo: str, **hive: Any) -> dict[str, str]:
    """A copy of the project whose `localhost` stack (the project's own) installs from `repo`
    (and the hive's other settings given), its state in tmp_path: the main job's environment."""
    project = tmp_path / "project"
    (project / "stacks").mkdir(parents=True)
    for name in ("Pulumi.yaml", "__main__.py"):
        (project / name).write_text((ROOT / name).read_text())
    stack = _stack()
    entry = stack["config"]["rbee:hives"][0]
    assert entry["installMethod"]["git"]["branch"] == "main"
    entry["installMethod"]["git"]["repo"] = repo
    entry.update(hive)
    (project / "stacks" / "Pulumi.localhost.yaml").write_text(yaml.safe_dump(stack))
    (tmp_path / "state").mkdir()
    return {
        **os.environ,
        "RBEE_INFRA_PROJECT_DIR": str(project),
        "PULUMI_BACKEND_URL": (tmp_path / "state").as_uri(),
        "PULUMI_CONFIG_PASSPHRASE": "main-job",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "RBEE_INFRA_CACHE": str(tmp_path / "cache"),
    }


def _run_timed(env: dict[str, str], timeout: float) -> tuple[int, str, float | None]:
    """Run the main job; (exit status, output, seconds from `pulumi up`'s start to the hive's
    refusal, or None when it was not refused)."""
    job = subprocess.Popen(["bash", "scripts/localhost.sh"], cwd=ROOT, env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert job.stdout is not None
    lines: list[str] = []
    started = refused = None
    deadline = time.monotonic() + timeout
    for line in job.stdout:
        lines.append(line)
        if started is None and line.startswith("Updating ("):
            started = time.monotonic()
        if refused is None and started is not None and "hive localhost: preflight failed" in line:
            refused = time.monotonic() - started
        if time.monotonic() > deadline:
            job.kill()
            break
    return job.wait(), "".join(lines), refused


@pytest.mark.real_build
def test_the_main_job_on_rbees_real_tree(tmp_path: Path) -> None:
    """The README's main job on rbee's real source tree, as a user without a wasm target sees
    it: the real cpu worker built, installed and verified; the hive refused at preflight,
    naming the wasm32 target, before anything is compiled for it, with the two ways on;
    nothing half-installed; a second run changes nothing. The hosts' cargo is the system's
    (`.ci/run` installs it: no rustup, so no target can be added to it), which makes the
    missing target certain whether or not rustup's server can be reached from here."""
    require_cli()
    tarball, why = real_tree.find_tarball()
    if tarball is None:
        if REQUIRED:
            pytest.fail(f"RBEE_REQUIRE_E2E=1: {why}")
        pytest.skip(f"{why}; the main job's default, rbee's GitHub repository, is not used here")
    if os.geteuid() != 0 and not REQUIRED:
        pytest.skip("the main job test runs as root (it may start the system sshd)")
    system_cargo = Path("/usr/bin/cargo")
    if not system_cargo.exists():
        if REQUIRED:
            pytest.fail("RBEE_REQUIRE_E2E=1 but there is no system cargo (.ci/run installs it)")
        pytest.skip("no system cargo (/usr/bin/cargo) without rustup to build with")
    tmp_path.chmod(0o755)
    tree = real_tree.serve(tarball, tmp_path)
    # the override of the repository; the default is GitHub's
    env = _project_on(tmp_path, tree.url, cargo=str(system_cargo))
    assert _stack()["config"]["rbee:hives"][0]["ensureToolchain"] is True
    sshd_was_running = _listening(22)
    home = Path.home()
    hive_path = home / ".local" / "bin" / "rbee-hive"
    worker = home / ".local/share/rbee/workers/rbee-worker-cpu"
    assert not hive_path.exists() and not worker.exists(), "this test would overwrite them"
    try:
        code, out, refused = _run_timed(env, timeout=2400)
        assert code == 1, out[-6000:]
        # the hive: refused at preflight within seconds, naming the target, with both ways on
        assert refused is not None and refused < 90, (refused, out[-6000:])
        assert "Rust target wasm32-unknown-unknown has no standard library" in out, out[-6000:]
        assert "Or install a prebuilt rbee-hive instead of building it" in out
        assert _stack_lines(out, ["installMethod:", "  local:", "    path: /path/to/rbee-hive"]), (
            out[-6000:])
        assert not hive_path.exists() and not (home / ".local/share/rbee/releases/rbee-hive").exists()
        # the real worker: built, installed, verified by --help, its version from the source
        assert worker.exists(), out[-8000:]
        about = subprocess.run([str(worker), "--help"], capture_output=True, text=True)
        assert about.returncode == 0 and "Usage: rbee-worker-cpu" in about.stdout, about
        receipt = json.loads((home / ".local/share/rbee/receipts/rbee-worker-cpu.json").read_text())
        assert receipt["verifiedBy"] == "--help"
        assert receipt["version"] == "llm-worker-rbee 0.1.0" and receipt["commit"] == tree.commit
        sha = receipt["sha256"]

        again_code, again, refused_again = _run_timed(env, timeout=900)
        assert again_code == 1 and refused_again is not None, again[-6000:]
        assert "worker-localhost-cpu" not in _changed(again), again[-6000:]
        receipt = json.loads((home / ".local/share/rbee/receipts/rbee-worker-cpu.json").read_text())
        assert receipt["sha256"] == sha and not hive_path.exists()
    finally:
        _undo(env, sshd_was_running)
        tree.close()
    assert not worker.exists() and not hive_path.exists()


def _stack_lines(out: str, lines: list[str]) -> bool:
    """`lines` appear one after the other in `out`, each under the same prefix (the CLI
    indents what a resource's error says), keeping their own indentation."""
    text = out.splitlines()
    for i, line in enumerate(text):
        if line.endswith(lines[0]):
            prefix = line[: -len(lines[0])]
            if [t for t in text[i : i + len(lines)]] == [prefix + want for want in lines]:
                return True
    return False


def _changed(out: str) -> list[str]:
    """The resources a `pulumi up` output shows created, updated or replaced."""
    return [line for line in out.splitlines()
            if any(word in line for word in (" created", " updated", " replaced"))]
