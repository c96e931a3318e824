"""`rbee-infra preview | up | destroy`: backend selection and argument handling (unit), and the
real thing through the Pulumi Automation API when the Pulumi CLI is installed (e2e)."""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from rbee_infra import cli
from rbee_infra.stack import automation
from rbee_infra.stack.automation import INSTALL_URL, backend_settings
from tests.e2e.project import require_cli, requires_cli

HOME = Path("/home/op")


@pytest.mark.unit
def test_default_is_a_local_file_backend_and_no_passphrase_is_chosen() -> None:
    settings = backend_settings({}, home=HOME)
    assert settings.url == "file:///home/op/.local/share/rbee-infra/state"
    assert settings.state_dir == HOME / ".local/share/rbee-infra/state"
    assert settings.env == {
        "PULUMI_BACKEND_URL": "file:///home/op/.local/share/rbee-infra/state",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    }
    assert settings.passphrase_missing
    assert not backend_settings({"PULUMI_CONFIG_PASSPHRASE": ""}, home=HOME).passphrase_missing


@pytest.mark.unit
def test_finding_10_up_without_a_passphrase_is_refused(
    tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    project = tmp_path / "project"
    (project / "stacks").mkdir(parents=True)
    (project / "Pulumi.yaml").write_text(
        "name: rbee-infra\nruntime: python\nstackConfigDir: stacks\n"
    )
    (project / "stacks" / "Pulumi.dev.yaml").write_text("config:\n  rbee:hives: []\n")
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "pulumi"  # found on PATH; never run: the refusal comes first
    fake.write_text("#!/bin/sh\necho ran >> \"$0.log\"\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    state = (tmp_path / "state").as_uri()
    assert cli.main(["up", "--project-dir", str(project), "-s", "dev", "--backend", state]) == 3
    err = capsys.readouterr().err
    assert "PULUMI_CONFIG_PASSPHRASE: not set: it encrypts this stack's secrets" in err
    assert not (tmp_path / "bin" / "pulumi.log").exists()
    assert not (tmp_path / "state").exists()


@pytest.mark.unit
def test_xdg_data_home_moves_the_state() -> None:
    settings = backend_settings({"XDG_DATA_HOME": "/data/op"}, home=HOME)
    assert settings.url == "file:///data/op/rbee-infra/state"


@pytest.mark.unit
def test_an_existing_backend_and_passphrase_are_respected() -> None:
    environ = {"PULUMI_BACKEND_URL": "s3://bucket/state", "PULUMI_CONFIG_PASSPHRASE": "s3cret"}
    settings = backend_settings(environ, home=HOME)
    assert settings.url == "s3://bucket/state"
    assert settings.state_dir is None
    assert "PULUMI_CONFIG_PASSPHRASE" not in settings.env  # inherited, never copied
    assert not settings.passphrase_missing
    passfile = backend_settings({"PULUMI_CONFIG_PASSPHRASE_FILE": "/run/pass"}, home=HOME)
    assert not passfile.passphrase_missing
    assert "PULUMI_CONFIG_PASSPHRASE" not in passfile.env


@pytest.mark.unit
def test_the_backend_flag_wins() -> None:
    settings = backend_settings(
        {"PULUMI_BACKEND_URL": "s3://bucket/state"}, backend="file://~/rbee-state", home=HOME
    )
    assert settings.url == "file://~/rbee-state"
    assert settings.state_dir == Path("~/rbee-state").expanduser()


@pytest.mark.unit
def test_operation_arguments() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["up", "--stack", "prod", "--backend", "file:///s", "--yes"])
    assert (args.command, args.stack, args.backend, args.yes) == ("up", "prod", "file:///s", True)
    args = parser.parse_args(["destroy", "-s", "dev"])
    assert (args.command, args.stack, args.yes, args.backend) == ("destroy", "dev", False, None)
    assert cli.stack_name(parser.parse_args(["preview"]), {}) == "dev"
    assert cli.stack_name(parser.parse_args(["preview"]), {"RBEE_INFRA_STACK": "lab"}) == "lab"


@pytest.mark.unit
def test_unknown_options_exit_3(capsys: Any) -> None:
    assert cli.main(["preview", "--json"]) == 3
    assert "unrecognized arguments: --json" in capsys.readouterr().err


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "Pulumi.yaml").write_text(
        "name: rbee-infra\nruntime: python\nstackConfigDir: stacks\n"
    )
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    (stacks / "Pulumi.dev.yaml").write_text(
        yaml.safe_dump({"config": {"rbee:hives": [{"alias": "a", "hostname": "h"}]}})
    )
    return tmp_path


@pytest.mark.unit
@pytest.mark.parametrize("operation", ["preview", "up", "destroy"])
def test_missing_pulumi_cli_is_one_clear_line(
    operation: str, project: Path, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    code = cli.main([operation, "--project-dir", str(project), "--yes"])
    assert code == 2
    assert capsys.readouterr().err == (
        f"rbee-infra: the Pulumi CLI (`pulumi`) is not on PATH; install it: {INSTALL_URL} "
        "(no Pulumi account is needed)\n"
    )


@pytest.mark.unit
def test_bad_config_is_reported_before_pulumi_is_needed(
    project: Path, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    (project / "stacks" / "Pulumi.dev.yaml").write_text(
        yaml.safe_dump({"config": {"rbee:hives": [{"alias": "a b", "hostname": "h"}]}})
    )
    assert cli.main(["up", "--project-dir", str(project)]) == 3
    assert "rbee:hives[0].alias: 'a b' is not allowed" in capsys.readouterr().err
    assert cli.main(["preview", "--project-dir", str(project), "--stack", "none"]) == 3
    assert "no such stack config" in capsys.readouterr().err


@pytest.mark.unit
def test_destroy_needs_yes_without_a_terminal(monkeypatch: Any) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(cli.UsageError, match="destroy needs --yes"):
        cli._confirm("dev")


# --- with the Pulumi CLI ------------------------------------------------------------------

@pytest.mark.e2e
@pytest.mark.hosts
@requires_cli
def test_up_refresh_status_destroy_on_real_hosts_with_one_dead(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    from tests.harness.fixture_repo import expected_worker_about, make_rbee_repo
    from tests.harness.hosts import HarnessUnavailable, check_available, start_hosts

    require_cli()
    try:
        check_available()
    except HarnessUnavailable as error:
        pytest.skip(str(error))
    root = Path(__file__).resolve().parent.parent
    work = Path(tempfile.mkdtemp(prefix="rbee-e2e-"))
    work.chmod(0o755)
    repo = make_rbee_repo(work)
    hosts = start_hosts(2)
    try:
        host, dead = hosts.hosts
        project = tmp_path / "project"
        project.mkdir()
        (project / "Pulumi.yaml").write_text(
            "name: rbee-infra\nruntime: python\nstackConfigDir: stacks\n"
        )
        shutil.copy(root / "__main__.py", project / "__main__.py")
        conf = tmp_path / "hives.conf"
        conf.write_text(
            f'[[hive]]\nalias = "e2e"\nhostname = "{host.address}"\n'
            f'ssh_user = "{host.user}"\nssh_port = {host.port}\n'
            f'install_method = {{ git = {{ repo = "{repo.url}", branch = "main" }} }}\n'
            "auto_start = false\n"  # no hive service here (see tests/test_service.py)
            'workers = [{ type = "cpu", version = "latest", features = ["cpu"] }]\n'
            f'[[hive]]\nalias = "dead"\nhostname = "{dead.address}"\n'
            f'ssh_user = "{dead.user}"\nssh_port = {dead.port}\n'
            f'install_method = {{ git = {{ repo = "{repo.url}", branch = "main" }} }}\n'
            "auto_start = false\n"
        )
        common = ["--stack", "e2e", "--project-dir", str(project)]
        assert cli.main(["import", str(conf), *common]) == 0
        stack_file = project / "stacks" / "Pulumi.e2e.yaml"
        doc = yaml.safe_load(stack_file.read_text())
        doc["config"]["rbee:sshPrivateKeyPath"] = str(hosts.client_key_path)
        doc["config"]["rbee:knownHosts"] = str(hosts.known_hosts_path)
        doc["config"]["rbee:connectTimeout"] = 3
        stack_file.write_text(yaml.safe_dump(doc))
        dead.stop()
        monkeypatch.setenv("PULUMI_PYTHON_CMD", sys.executable)
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "cli-e2e")
        monkeypatch.setenv("PYTHONPATH", str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        backend = ["--backend", (tmp_path / "state").as_uri()]
        (tmp_path / "state").mkdir()
        assert cli.main(["preview", *common, *backend]) == 0
        # one host down: `up` still installs the other (and its worker), then fails naming it
        assert cli.main(["up", *common, *backend]) == 1
        assert "hive dead: connect failed" in capsys.readouterr().out
        # rbee's workers have no --version: the fixture's --help says what was built
        about = host.run(".local/share/rbee/workers/rbee-worker-cpu --help").stdout
        assert about.splitlines()[0] == expected_worker_about("0.2.0", ("cpu",))
        assert cli.main(["refresh", *common, *backend, "--clear-pending-creates"]) == 0
        capsys.readouterr()
        assert cli.main(["status", *common, "--json"]) == 2  # a host unreachable
        assert json.loads(capsys.readouterr().out)["summary"]["inSync"] == 1
        assert cli.main(["destroy", *common, *backend, "--yes"]) == 0
        assert not (host.home / ".local/bin/rbee-hive").exists()
    finally:
        hosts.close()
        repo.remove()
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.unit
def test_run_refuses_without_the_cli(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(automation.PulumiMissing):
        automation.run(
            "preview",
            project_dir=tmp_path,
            stack="dev",
            settings=backend_settings({}, home=tmp_path),
            on_output=print,
        )
    assert not (tmp_path / ".local").exists()  # nothing created before the check


@pytest.mark.unit
def test_pinned_host_keys_come_from_the_hive_then_its_workers_then_the_kickoff() -> None:
    def res(**inputs: Any) -> dict[str, Any]:
        return {"urn": "u", "inputs": inputs}

    exported = {"deployment": {"resources": [
        res(trustedHostKeys={"a": "ssh-ed25519 KICK-A", "b": "ssh-ed25519 KICK-B",
                             "c": "ssh-ed25519 KICK-C"}),
        res(alias="a", component="worker", trustedHostKey="ssh-ed25519 WORKER-A"),
        res(alias="a", component="hive", trustedHostKey="ssh-ed25519 HIVE-A"),
        res(alias="b", component="worker", trustedHostKey="ssh-ed25519 WORKER-B"),
        res(alias="c", component="hive"),
    ]}}
    assert automation.pinned_host_keys(exported) == {
        "a": "ssh-ed25519 HIVE-A", "b": "ssh-ed25519 WORKER-B", "c": "ssh-ed25519 KICK-C",
    }
    assert automation.pinned_host_keys({}) == {}


# --- one `pulumi` process per operation (a stand-in CLI that records its calls) -----------

FAKE_PULUMI = """#!/bin/sh
# records argv and the environment it was given, answers like the CLI
{ printf '%s|' "$@"; printf 'python=%s backend=%s\\n' "$PULUMI_PYTHON_CMD" "$PULUMI_BACKEND_URL"; } \\
    >> "$(dirname "$0")/calls.log"
case "$1" in
  stack) [ "$2" = init ] && mkdir -p "$STATE/.pulumi/stacks/rbee-infra" \\
         && : > "$STATE/.pulumi/stacks/rbee-infra/$3.json"; exit 0;;
esac
echo "Previewing update (dev)"
echo "warning: something on stderr" >&2
exit "${FAKE_EXIT:-0}"
"""


@pytest.fixture
def fake_cli(project: Path, tmp_path: Path, monkeypatch: Any) -> Path:
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    fake = bin_dir / "pulumi"
    fake.write_text(FAKE_PULUMI)
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin:/bin")
    monkeypatch.setenv("STATE", str(tmp_path / "state"))
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "")
    monkeypatch.delenv("PULUMI_PYTHON_CMD", raising=False)
    monkeypatch.delenv("FAKE_EXIT", raising=False)
    return bin_dir / "calls.log"


def _calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.unit
def test_up_is_one_pulumi_process_once_the_stack_exists(
    project: Path, tmp_path: Path, fake_cli: Path, capsys: Any
) -> None:
    state = (tmp_path / "state").as_uri()
    common = ["--project-dir", str(project), "--backend", state]
    assert cli.main(["up", *common]) == 0
    first = _calls(fake_cli)
    # the stack is created on first use (its state file did not exist), then `up` runs
    assert [c.split("|")[:3] for c in first] == [["stack", "init", "dev"], ["up", "--yes",
                                                                             "--skip-preview"]]
    assert first[1].startswith("up|--yes|--skip-preview|--continue-on-error|--stack|dev|"
                               "--non-interactive|")
    fake_cli.unlink()
    assert cli.main(["up", *common]) == 0
    assert cli.main(["preview", *common]) == 0
    again = _calls(fake_cli)
    assert [c.split("|")[0] for c in again] == ["up", "preview"]  # nothing else runs
    # the program and the provider run on this interpreter, not on `python3` from PATH
    assert all(f"python={sys.executable} backend={state}" in c for c in again)
    out = capsys.readouterr()
    assert "Previewing update (dev)" in out.out  # streamed: stdout to stdout, stderr to stderr
    assert "warning: something on stderr" in out.err


@pytest.mark.unit
def test_a_failed_operation_is_one_line_and_exit_1(
    project: Path, tmp_path: Path, fake_cli: Path, monkeypatch: Any, capsys: Any
) -> None:
    monkeypatch.setenv("FAKE_EXIT", "255")
    monkeypatch.setenv("PULUMI_PYTHON_CMD", "/opt/py/bin/python3")  # an explicit choice wins
    state = (tmp_path / "state").as_uri()
    code = cli.main(["refresh", "--project-dir", str(project), "--backend", state,
                     "--clear-pending-creates"])
    assert code == 1
    assert capsys.readouterr().err.splitlines()[-1] == "rbee-infra: pulumi refresh failed (code: 255)"
    refresh = _calls(fake_cli)[-1]
    assert refresh.startswith("refresh|--yes|--skip-preview|--clear-pending-creates|--stack|dev|")
    assert "python=/opt/py/bin/python3 " in refresh


@pytest.mark.unit
def test_another_backend_selects_or_creates_the_stack_first(
    project: Path, fake_cli: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://bucket/state")
    assert cli.main(["destroy", "--project-dir", str(project), "--yes"]) == 0
    calls = [c.split("|") for c in _calls(fake_cli)]
    assert calls[0][:6] == ["stack", "select", "--create", "dev", "--secrets-provider",
                            "passphrase"]
    assert calls[1][:5] == ["destroy", "--yes", "--skip-preview", "--stack", "dev"]


@pytest.mark.unit
def test_the_command_of_each_operation() -> None:
    assert automation.command("preview", "s") == ["preview", "--stack", "s", "--non-interactive"]
    assert automation.command("destroy", "s")[:3] == ["destroy", "--yes", "--skip-preview"]
    assert "--clear-pending-creates" not in automation.command("refresh", "s")
    settings = backend_settings({"PULUMI_CONFIG_PASSPHRASE": ""}, home=HOME)
    env = automation.process_env({"PATH": "/bin"}, settings, "/usr/bin/python3.12")
    assert env["PULUMI_PYTHON_CMD"] == "/usr/bin/python3.12"
    assert env["PULUMI_BACKEND_URL"] == settings.url
    mine = automation.process_env({"PULUMI_PYTHON_CMD": "/venv/bin/python"}, settings, "x")
    assert mine["PULUMI_PYTHON_CMD"] == "/venv/bin/python"


@pytest.mark.unit
def test_ctrl_c_waits_for_the_cli_to_write_its_record(tmp_path: Path) -> None:
    """Ctrl-C reaches rbee-infra and the CLI (one process group): rbee-infra keeps reading
    until the CLI has finished stopping (it records what it left pending then), and only
    then reports the interrupt."""
    import signal
    import subprocess
    import time

    fake = tmp_path / "pulumi"
    fake.write_text("#!/bin/sh\ntrap 'sleep 0.5; echo record written; exit 3' INT\n"
                    "echo started\nwhile :; do sleep 0.1; done\n")
    fake.chmod(0o755)
    driver = (
        "import sys; from pathlib import Path; from rbee_infra.stack import automation\n"
        "try:\n"
        f"    automation._stream([{str(fake)!r}], cwd=Path('.'), env={{'PATH': '/usr/bin:/bin'}},"
        " on_output=lambda l: print(l, flush=True), on_error=print)\n"
        "except KeyboardInterrupt:\n    print('interrupted', flush=True); sys.exit(130)\n"
    )
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-c", driver], cwd=root, stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal sends it
    out, _ = proc.communicate(timeout=30)
    assert out.splitlines() == ["record written", "interrupted"]
    assert proc.returncode == 130
