"""rbee's hives.conf -> the stack config and back, and `rbee-infra import` / `export`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from rbee_infra import cli
from rbee_infra.base.errors import ConfigError
from rbee_infra.config import hivesconf, stackfile
from rbee_infra.config.fleet import parse_fleet

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data" / "hives"
LLAMA = "https://github.com/veighnsche/llama-orch.git"


def convert(text: str) -> list[dict[str, Any]]:
    return hivesconf.to_stack_hives(hivesconf.parse_text(text))


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        convert(text)
    return caught.value.problems


def test_localhost_example() -> None:
    assert convert((DATA / "localhost.conf").read_text()) == [
        {
            "alias": "localhost",
            "hostname": "127.0.0.1",
            "sshUser": "rbee",
            "sshPort": 22,
            "hivePort": 8600,
            "autoStart": True,
            "workers": [{"type": "cpu", "version": "latest", "features": ["cpu"]}],
        }
    ]


def test_two_host_example() -> None:
    hives = convert((DATA / "gpu-cpu.conf").read_text())
    assert hives == [
        {
            "alias": "gpu-host",
            "hostname": "gpu-host.example.internal",
            "sshUser": "rbee",
            "hivePort": 8600,
            "autoStart": True,
            "installMethod": {"method": "git", "repo": LLAMA, "branch": "main"},
            "workers": [{"type": "cuda", "version": "latest", "features": ["cuda"]}],
        },
        {
            "alias": "cpu-host",
            "hostname": "cpu-host.example.internal",
            "sshUser": "rbee",
            "sshPort": 2222,
            "autoStart": False,
            "workers": [{"type": "cpu", "version": "v0.1.0", "features": ["cpu"]}],
        },
    ]
    fleet = parse_fleet({"hives": hives})
    gpu, cpu = fleet.hives
    assert gpu.workers[0].binary_name == "llm-worker-rbee-cuda"
    assert (cpu.ssh_port, cpu.hive_port, cpu.auto_start) == (2222, 8600, False)


@pytest.mark.parametrize("name", ["localhost.conf", "gpu-cpu.conf"])
def test_examples_round_trip(name: str) -> None:
    original = hivesconf.parse_text((DATA / name).read_text())
    hives = hivesconf.to_stack_hives(original)
    text = hivesconf.to_text(hivesconf.check_stack_hives(hives))
    again = hivesconf.parse_text(text)
    assert again == original
    assert hivesconf.to_stack_hives(again) == hives


def test_auto_start_defaults_to_true_as_in_rbee() -> None:
    hives = convert('[[hive]]\nalias = "a"\nhostname = "h"\nssh_user = "u"\n')
    assert hives == [{"alias": "a", "hostname": "h", "sshUser": "u", "autoStart": True}]


def test_release_and_local_methods() -> None:
    hives = convert(
        '[[hive]]\nalias = "a"\nhostname = "h"\nssh_user = "u"\n'
        'install_method = { release = { repo = "veighnsche/llama-orch", tag = "v0.1.0" } }\n'
        "workers = [\n"
        '  { type = "cpu", version = "latest",'
        ' install_method = { local = { path = "/opt/rbee/rbee-worker-cpu" } } },\n'
        "]\n"
    )
    assert hives[0]["installMethod"] == {
        "method": "release",
        "repo": "veighnsche/llama-orch",
        "tag": "v0.1.0",
    }
    worker = hives[0]["workers"][0]
    assert worker["installMethod"] == {"method": "local", "path": "/opt/rbee/rbee-worker-cpu"}
    fleet = hivesconf.check_stack_hives(hives)
    assert hivesconf.parse_text(hivesconf.to_text(fleet)) == hivesconf.parse_text(
        hivesconf.to_text(parse_fleet({"hives": hives}))
    )


@pytest.mark.parametrize(
    "path",
    [
        "~/.local/share/rbee/workers/rbee-worker-cpu",
        "$HOME/.local/share/rbee/workers/rbee-worker-cpu",
        "/home/rbee/.local/share/rbee/workers/rbee-worker-cpu",
    ],
)
def test_binary_path_naming_the_fixed_path_is_accepted_and_dropped(path: str) -> None:
    hives = convert(
        '[[hive]]\nalias = "a"\nhostname = "h"\nssh_user = "rbee"\n'
        'binary_path = "~/.local/bin/rbee-hive"\n'
        f'workers = [{{ type = "cpu", version = "latest", binary_path = "{path}" }}]\n'
    )
    assert "binaryPath" not in hives[0]
    assert hives[0]["workers"] == [{"type": "cpu", "version": "latest"}]


BROKEN = {
    "broken-unknown-field.conf": [
        ("hive[0].workers[0].feature", "unknown field; did you mean features = [ ... ]?")
    ],
    "broken-hives-table.conf": [
        (
            "hives",
            "unknown field; did you mean [[hive]]? (rbee's hives.conf uses singular "
            "[[hive]] tables)",
        )
    ],
    "broken-binary-path.conf": [
        (
            "hive[0].binary_path",
            "'/opt/rbee/rbee-hive' is not supported: rbee-infra always installs to "
            "~/.local/bin/rbee-hive; remove binary_path (or set it to that path)",
        )
    ],
    "broken-install-method.conf": [
        (
            "hive[0].install_method",
            "unknown install method 'docker' (expected one of git, release, local)",
        ),
        ("hive[1].install_method.git.branch", "required field is missing"),
    ],
    "broken-values.conf": [
        (
            "hive[0].hostname",
            "'192.168.1.100; rm -rf ~' is not allowed; expected a DNS name or an IP address",
        ),
        ("hive[0].ssh_port", "Input should be less than or equal to 65535"),
        (
            "hive[0].workers[0].features[1]",
            "'$(reboot)' is not allowed; expected a cargo feature name (letters, digits, '_', '-')",
        ),
    ],
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_files_name_every_bad_field(name: str) -> None:
    assert problems((DATA / name).read_text()) == BROKEN[name]


def test_not_toml() -> None:
    with pytest.raises(ConfigError) as caught:
        hivesconf.parse_text((DATA / "broken-toml.conf").read_text(), source="x.conf")
    ((path, message),) = caught.value.problems
    assert path == "x.conf"
    assert message.startswith("not valid TOML: ") and "line 1" in message


def test_duplicates_are_named_by_path() -> None:
    text = (
        '[[hive]]\nalias = "a"\nhostname = "h1"\nssh_user = "u"\n'
        'workers = [{ type = "cpu", version = "latest" }, { type = "cpu", version = "v1" }]\n'
        '[[hive]]\nalias = "a"\nhostname = "h2"\nssh_user = "u"\n'
    )
    assert problems(text) == [
        (
            "hive[0].workers[1].type",
            "'cpu' is already used by workers[0] (one worker per type and hive)",
        ),
        ("hive[1].alias", "'a' is already used by hive[0]"),
    ]


def test_same_account_twice_uses_hives_conf_paths() -> None:
    text = (
        '[[hive]]\nalias = "a"\nhostname = "h"\nssh_user = "u"\n'
        '[[hive]]\nalias = "b"\nhostname = "h"\nssh_user = "u"\n'
    )
    assert problems(text) == [("", "hives 'a' and 'b' install to the same account (u@h:22)")]


def test_empty_file_is_an_error() -> None:
    assert problems("# nothing\n") == [("hives.conf", "no [[hive]] tables; nothing to import")]


def test_conf_path_translation() -> None:
    assert hivesconf.conf_path("hives[0].installMethod.git.repo") == (
        "hive[0].install_method.git.repo"
    )
    assert hivesconf.conf_path("hives[2].workers[1].features[0]") == (
        "hive[2].workers[1].features[0]"
    )


@pytest.mark.parametrize(
    ("hive", "path"),
    [
        ({"cargo": "/opt/cargo"}, "hives[0].cargo"),
        ({"reinstallTrigger": "x"}, "hives[0].reinstallTrigger"),
        (
            {"installMethod": {"method": "git", "repo": LLAMA, "tag": "v1"}},
            "hives[0].installMethod",
        ),
        (
            {"installMethod": {"method": "release", "tag": "v1", "sha256": "a" * 64}},
            "hives[0].installMethod.release.sha256",
        ),
    ],
)
def test_export_refuses_what_hives_conf_cannot_say(hive: dict[str, Any], path: str) -> None:
    fleet = parse_fleet({"hives": [{"alias": "a", "hostname": "h", "sshUser": "u", **hive}]})
    with pytest.raises(ConfigError) as caught:
        hivesconf.to_text(fleet)
    assert caught.value.problems[0][0] == path


# --- the CLI ---------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "Pulumi.yaml").write_text(
        "name: rbee-infra\nruntime: python\nstackConfigDir: stacks\n"
    )
    return tmp_path


EXISTING = {
    "secretsprovider": "passphrase",
    "encryptionsalt": "v1:abc:def",
    "config": {
        "aws:region": "eu-west-1",
        "rbee:sshPrivateKeyPath": "~/.ssh/rbee",
        "rbee:sshPrivateKey": {"secure": "v1:AAAA"},
        "rbee:hives": [{"alias": "old", "hostname": "old.example", "sshUser": "x"}],
        "rbee:buildTimeout": "600",
    },
}


def test_import_replaces_only_the_hives(project: Path, capsys: Any) -> None:
    path = project / "stacks" / "Pulumi.dev.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(EXISTING, sort_keys=False))
    code = cli.main(
        ["import", str(DATA / "gpu-cpu.conf"), "--stack", "dev", "--project-dir", str(project)]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith("replaced rbee:hives in ")
    assert out.rstrip().endswith("2 hive(s) (gpu-host, cpu-host); 4 other config key(s) kept")
    doc = yaml.safe_load(path.read_text())
    expected = {**EXISTING["config"], "rbee:hives": convert((DATA / "gpu-cpu.conf").read_text())}
    assert doc == {**EXISTING, "config": expected}
    assert list(doc["config"]) == list(EXISTING["config"])  # key order kept

    # and back: export writes a hives.conf that reads as the original
    out_file = project / "exported.conf"
    assert (
        cli.main(["export", "--stack", "dev", "--project-dir", str(project), "-o", str(out_file)])
        == 0
    )
    assert hivesconf.parse_text(out_file.read_text()) == hivesconf.parse_text(
        (DATA / "gpu-cpu.conf").read_text()
    )


def test_import_creates_the_stack_file(project: Path, capsys: Any) -> None:
    code = cli.main(
        ["import", str(DATA / "localhost.conf"), "-s", "local", "--project-dir", str(project)]
    )
    assert code == 0
    assert capsys.readouterr().out.startswith("set rbee:hives in ")
    doc = yaml.safe_load((project / "stacks" / "Pulumi.local.yaml").read_text())
    assert doc == {"config": {"rbee:hives": convert((DATA / "localhost.conf").read_text())}}
    # importing again changes nothing
    before = (project / "stacks" / "Pulumi.local.yaml").read_text()
    cli.main(["import", str(DATA / "localhost.conf"), "-s", "local", "--project-dir", str(project)])
    assert (project / "stacks" / "Pulumi.local.yaml").read_text() == before


def test_import_dry_run_writes_nothing(project: Path, capsys: Any) -> None:
    code = cli.main(
        ["import", str(DATA / "localhost.conf"), "--dry-run", "--project-dir", str(project)]
    )
    assert code == 0
    assert yaml.safe_load(capsys.readouterr().out)["config"]["rbee:hives"][0]["alias"] == (
        "localhost"
    )
    assert not (project / "stacks").exists()


def test_import_of_a_broken_file_exits_3_and_touches_nothing(project: Path, capsys: Any) -> None:
    code = cli.main(
        ["import", str(DATA / "broken-unknown-field.conf"), "--project-dir", str(project)]
    )
    assert code == 3
    assert capsys.readouterr().err == (
        "rbee-infra: invalid configuration:\n"
        "  hive[0].workers[0].feature: unknown field; did you mean features = [ ... ]?\n"
    )
    assert not (project / "stacks").exists()


def test_import_usage_errors(project: Path, capsys: Any) -> None:
    assert cli.main(["import", str(project / "missing.conf"), "--project-dir", str(project)]) == 3
    assert "missing.conf: cannot be read: No such file or directory" in capsys.readouterr().err
    assert (
        cli.main(
            [
                "import",
                str(DATA / "localhost.conf"),
                "--stack",
                "../x",
                "--project-dir",
                str(project),
            ]
        )
        == 3
    )
    assert "--stack: '../x' is not a stack name" in capsys.readouterr().err
    assert (
        cli.main(["import", str(DATA / "localhost.conf"), "--project-dir", str(project / "nope")])
        == 3
    )
    assert "has no Pulumi.yaml" in capsys.readouterr().err
    assert cli.main(["import"]) == 3  # argparse usage errors are bad input too


def test_stack_file_location_follows_pulumi_yaml(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: x\nruntime: python\n")
    assert stackfile.stack_file(tmp_path, "dev") == tmp_path / "Pulumi.dev.yaml"
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert stackfile.find_project_dir(nested) == tmp_path


def test_jump_hosts_and_queen_url_are_imported_and_exported() -> None:
    text = """
[[hive]]
alias = "gpu"
hostname = "10.0.0.5"
ssh_user = "ops"
proxy_jump = "jump@bastion.example:2200,inner"
queen_url = "http://queen.example:7833"
"""
    hives = hivesconf.to_stack_hives(hivesconf.parse_text(text))
    assert (hives[0]["proxyJump"], hives[0]["queenUrl"]) == (
        "jump@bastion.example:2200,inner",
        "http://queen.example:7833",
    )
    fleet = parse_fleet({"hives": hives})
    assert [(j.user, j.host, j.port) for j in fleet.hives[0].proxy_jump or []] == [
        ("jump", "bastion.example", 2200),
        (None, "inner", 22),
    ]
    back = hivesconf.to_conf_dict(fleet)["hive"][0]
    assert (back["proxy_jump"], back["queen_url"]) == (
        "jump@bastion.example:2200,inner:22",
        "http://queen.example:7833",
    )
    with pytest.raises(ConfigError) as caught:
        hivesconf.to_stack_hives(
            hivesconf.parse_text(text.replace("inner", "in ner").replace("jump@", ""))
        )
    assert caught.value.problems == [
        ("hive[0].proxy_jump", "'in ner' is not a jump host; expected [user@]host[:port], "
         "comma-separated")
    ]
