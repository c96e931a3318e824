"""Jump host config and OpenSSH client config resolution (pure: no host is touched)."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest

from rbee_infra.base.errors import ConfigError
from rbee_infra.config.fleet import parse_fleet
from rbee_infra.config.sshconfig import connection_fields

CONFIG = """\
Host gpu-*
  User alice
  Port 2222
  IdentityFile ~/.ssh/gpu_key
  UserKnownHostsFile ~/.ssh/known_gpu
  ProxyJump ops@edge:2200,inner
Host gpu-1
  HostName 10.0.0.11
Host inner
  HostName 10.0.0.2
  User jump
"""


def fleet(tmp_path: Path, **hive: object) -> dict[str, object]:
    path = tmp_path / "ssh_config"
    path.write_text(CONFIG)
    return {"sshConfig": str(path), "hives": [{"alias": "a", "hostname": "gpu-1", **hive}]}


def test_a_host_alias_resolves_as_ssh_resolves_it(tmp_path: Path) -> None:
    parsed = parse_fleet(fleet(tmp_path))
    assert connection_fields(parsed, parsed.hives[0]) == {
        "host": "10.0.0.11",
        "port": 2222,
        "user": "alice",
        "jumps": [
            {"host": "edge", "port": 2200, "user": "ops"},
            {"host": "10.0.0.2", "port": 22, "user": "jump"},
        ],
        "privateKeyPath": "~/.ssh/gpu_key",
        "knownHosts": "~/.ssh/known_gpu",
    }


def test_values_in_the_stack_config_win_over_the_file(tmp_path: Path) -> None:
    data = fleet(tmp_path, sshUser="bob", sshPort=22, proxyJump="none")
    data["sshPrivateKeyPath"] = "~/.ssh/fleet_key"
    data["knownHosts"] = "~/.ssh/fleet_known"
    parsed = parse_fleet(data)
    assert connection_fields(parsed, parsed.hives[0]) == {
        "host": "10.0.0.11",
        "port": 22,
        "user": "bob",
        "privateKeyPath": "~/.ssh/fleet_key",
        "knownHosts": "~/.ssh/fleet_known",
    }


def test_proxy_jump_without_a_config_file(tmp_path: Path) -> None:
    parsed = parse_fleet(
        {"hives": [{"alias": "a", "hostname": "10.0.0.5", "proxyJump": "b1,ops@[fd00::1]:2022"}]}
    )
    fields = connection_fields(parsed, parsed.hives[0])
    assert fields["jumps"] == [
        {"host": "b1", "port": 22, "user": getpass.getuser()},
        {"host": "fd00::1", "port": 2022, "user": "ops"},
    ]
    assert (fields["host"], fields["port"]) == ("10.0.0.5", 22)


@pytest.mark.parametrize(
    ("hive", "problem"),
    [
        (
            {"proxyJump": "ops@edge;reboot"},
            ("hives[0].proxyJump", "'ops@edge;reboot' is not a jump host; expected "
             "[user@]host[:port], comma-separated"),
        ),
        (
            {"proxyJump": [{"host": "edge", "port": 0}]},
            ("hives[0].proxyJump[0].port", "Input should be greater than or equal to 1"),
        ),
    ],
)
def test_a_bad_jump_host_is_refused_naming_the_field(
    hive: dict[str, object], problem: tuple[str, str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_fleet({"hives": [{"alias": "a", "hostname": "h", **hive}]})
    assert caught.value.problems == [problem]


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    parsed = parse_fleet(
        {"sshConfig": str(tmp_path / "nope"), "hives": [{"alias": "a", "hostname": "h"}]}
    )
    with pytest.raises(ConfigError) as caught:
        connection_fields(parsed, parsed.hives[0])
    assert caught.value.problems == [("sshConfig", f"{tmp_path / 'nope'} does not exist")]


def test_the_bastion_example_stack_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    root = Path(__file__).resolve().parent.parent
    config = yaml.safe_load((root / "stacks" / "Pulumi.example-bastion.yaml").read_text())["config"]
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text(
        "Host gpu-3.lab\n  HostName 10.20.0.13\n  User rbee\n  ProxyJump ops@bastion.example.com\n"
    )
    parsed = parse_fleet({
        "hives": config["rbee:hives"],
        "sshConfig": config["rbee:sshConfig"],
        "sshPrivateKeyPath": config["rbee:sshPrivateKeyPath"],
        "knownHosts": config["rbee:knownHosts"],
    })
    targets = [connection_fields(parsed, hive) for hive in parsed.hives]
    assert [(t["host"], t["user"], t["jumps"][0]["host"], t["jumps"][0]["user"]) for t in targets] == [
        ("10.20.0.11", "rbee", "bastion.example.com", "ops"),
        ("10.20.0.12", "rbee", "bastion.example.com", "ops"),
        ("10.20.0.13", "rbee", "bastion.example.com", "ops"),
    ]
    assert parsed.hives[0].hive_port == 7835
    assert parsed.hives[0].queen_url == "http://10.20.0.1:7833"
