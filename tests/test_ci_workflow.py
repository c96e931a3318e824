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


def _requirement_names(specs: list[str]) -> set[str]:
    names = set()
    for spec in specs:
        if ";" in spec and "python_version < '3.11'" in spec:
            continue  # a backport this interpreter does not install
        names.add(re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_every_install_uses_the_pins_and_they_cover_every_dependency() -> None:
    """Two fresh machines install the same versions: `.ci/run`, the main job and the workflow
    install with `-c constraints.txt`, and it pins every direct dependency (runtime, test,
    bench) to one version (scripts/update-pins.sh writes it, docs/ci.md says how)."""
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            assert name.lower().replace("_", "-") not in pins, f"{name} pinned twice"
            pins[name.lower().replace("_", "-")] = version
    project = __import__("tomllib").loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _requirement_names(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted |= _requirement_names(extra)
    assert wanted - set(pins) == set()
    assert pins["pulumi"] == re.search(r'"pulumi==([\d.]+)"', (ROOT / "pyproject.toml")
                                       .read_text()).group(1)
    for script in (ROOT / ".ci" / "run", ROOT / "scripts" / "localhost.sh"):
        installs = re.findall(r"pip install[^\n]*", script.read_text())
        assert installs and all("-c constraints.txt" in i for i in installs), script
    for job in workflow()["jobs"]:
        for line in re.findall(r"pip install[^\n]*", runs(job)):
            assert "-c constraints.txt" in line, (job, line)


def test_the_coverage_report_lists_the_most_missed_module_first() -> None:
    """A drop in coverage shows at the top of the report (sorted by missed lines)."""
    report = __import__("tomllib").loads((ROOT / "pyproject.toml").read_text())
    assert report["tool"]["coverage"]["report"]["sort"] == "-miss"
    assert "--cov-report=term" in (ROOT / "scripts" / "test.sh").read_text()


def test_the_fresh_machine_run_resets_what_an_earlier_run_leaves() -> None:
    """scripts/ci-fresh.sh (docs/ci.md): a clean clone of HEAD, and new Python packages,
    PULUMI_HOME, pip and Go caches and TMPDIR, then `.ci/run` itself."""
    script = (ROOT / "scripts" / "ci-fresh.sh").read_text()
    assert 'git clone -q --no-local "$PWD" "$base/repo"' in script
    assert 'python3 -m venv "$base/venv"' in script and '"PATH=$base/venv/bin:$PATH"' in script
    for setting in ("PULUMI_HOME=$base/pulumi-home", "PIP_CACHE_DIR=", "TMPDIR=$base/tmp",
                    "GOCACHE=$base/", "GOMODCACHE=$base/", "XDG_CACHE_HOME=$base/"):
        assert setting in script, setting
    assert "env -i" in script and "bash .ci/run" in script
    documented = (ROOT / "docs" / "ci.md").read_text()
    assert "scripts/ci-fresh.sh" in documented and "PULUMI_HOME" in documented
