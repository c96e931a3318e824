"""The GitHub workflow and `.ci/run` run the same checks, and the workflow has every job."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def steps(job: str) -> list[dict[str, Any]]:
    return workflow()["jobs"][job]["steps"]


def runs(job: str) -> str:
    return "\n".join(step.get("run", "") for step in steps(job))


def uses(job: str, action: str) -> list[dict[str, Any]]:
    return [step for step in steps(job) if step.get("uses", "").startswith(action + "@")]


def test_jobs_and_triggers() -> None:
    data = workflow()
    triggers = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on` as true
    assert set(triggers) >= {"push", "pull_request"}
    assert set(data["jobs"]) == {"lint", "unit", "integration", "e2e"}


def test_each_job_runs_its_part() -> None:
    assert "ruff check" in runs("lint")
    assert re.search(r"pytest -m unit\b", runs("unit"))
    integration = runs("integration")
    assert re.search(r"apt-get install .*openssh-server.*\bcargo\b", integration, re.S)
    assert 'sudo -E env "PATH=$PATH" bash scripts/test.sh -m "not e2e"' in integration
    upload = uses("integration", "actions/upload-artifact")
    assert upload and upload[0]["with"]["path"] == "reports/coverage.xml"
    assert "--cov-report=xml:reports/coverage.xml" in (ROOT / "scripts" / "test.sh").read_text()


def test_e2e_installs_the_cli_with_the_official_action_and_cannot_skip() -> None:
    (pulumi,) = uses("e2e", "pulumi/actions")
    assert pulumi["uses"] == "pulumi/actions@v6"
    assert "command" not in pulumi.get("with", {})  # install only
    pinned = re.search(r"^pulumi==([\d.]+)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert pinned and pulumi["with"]["pulumi-version"] == pinned.group(1)
    (test,) = [step for step in steps("e2e") if "pytest" in step.get("run", "")]
    assert "-m e2e" in test["run"] and "tests/e2e" in test["run"]
    assert test["env"]["RBEE_REQUIRE_E2E"] == "1"


def test_pip_and_cargo_are_cached() -> None:
    for job in workflow()["jobs"]:
        (python,) = uses(job, "actions/setup-python")
        assert python["with"]["cache"] == "pip", job
    for job in ("integration", "e2e"):
        (cache,) = uses(job, "actions/cache")
        assert "~/.cargo/registry" in cache["with"]["path"], job


def test_local_entry_runs_the_same_checks() -> None:
    local = (ROOT / ".ci" / "run").read_text()
    assert "ruff check ." in local
    assert "scripts/test.sh" in local
    for job in workflow()["jobs"]:
        for script in re.findall(r"\b(scripts/[\w.-]+|\.ci/[\w.-]+)", runs(job)):
            assert (ROOT / script).is_file(), f"{job} runs {script}, which does not exist"


def test_the_cli_and_the_sdk_are_pinned_to_one_version() -> None:
    requirements = re.search(r"^pulumi==([\d.]+)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert requirements
    version = requirements.group(1)
    assert f'"pulumi=={version}"' in (ROOT / "pyproject.toml").read_text()
    gomod = (ROOT / "tools" / "pulumi" / "go.mod").read_text()
    assert re.search(rf"^\tgithub.com/pulumi/pulumi/pkg/v3 v{re.escape(version)}\b", gomod, re.M)
    assert re.search(rf"^\tgithub.com/pulumi/pulumi/sdk/v3 v{re.escape(version)}$", gomod, re.M)


def test_ci_gets_the_cli_and_forbids_skipped_e2e_tests() -> None:
    local = (ROOT / ".ci" / "run").read_text()
    assert "scripts/install-pulumi.sh" in local
    assert "export PATH RBEE_REQUIRE_E2E=1" in local
    assert "shellcheck" in local


def _collected_by_test_command(seed: str | None) -> tuple[str, list[str]]:
    """What `scripts/test.sh` prints and the test ids it collects from one file, in order."""
    env = {k: v for k, v in os.environ.items() if k != "RBEE_TEST_SEED"}
    if seed is not None:
        env["RBEE_TEST_SEED"] = seed
    done = subprocess.run(
        # collecting is enough to see the order; the harness's conftest only adds start-up
        ["bash", "scripts/test.sh", "--collect-only", "--no-cov", "--noconftest",
         "tests/test_plan.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout, [line for line in done.stdout.splitlines() if line.startswith("tests/")]


def test_the_test_command_runs_the_default_order_unless_a_seed_asks_for_a_shuffle() -> None:
    _, default = _collected_by_test_command(None)
    functions = [test.split("::")[1].split("[")[0] for test in default]
    defined = re.findall(r"^def (test_\w+)", (ROOT / "tests" / "test_plan.py").read_text(), re.M)
    assert list(dict.fromkeys(functions)) == defined

    printed, shuffled = _collected_by_test_command("16")
    assert "test order: shuffled by pytest-randomly, seed 16" in printed
    assert sorted(shuffled) == sorted(default) and shuffled != default
    assert _collected_by_test_command("16")[1] == shuffled  # one seed, one order
