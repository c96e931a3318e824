"""pulumi-command interop under mocks: remote Commands on a hive's host, after the hive.

The pulumi-command plugin cannot run here; these tests check what the program registers with
the engine: resource type, inputs, the (secret) connection and the dependencies.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from rbee_infra.base.errors import AuthError, ConfigError, HostKeyError
from rbee_infra.config.fleet import parse_fleet
from rbee_infra.stack import program
from rbee_infra.stack.command import hive_command, parse_commands, to_command_connection
from rbee_infra.stack.resources import Hive, HiveArgs
from tests.program_mocks import Recorder, RecordingMonitor, is_secret, unwrap

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nhive-own-key\n-----END OPENSSH PRIVATE KEY-----\n"
FLEET_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nfleet-key\n-----END OPENSSH PRIVATE KEY-----\n"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMx6pTGm0DSd8Vs0nWvXkK0jM1wV6d0bJ5hKk1c3yb5g"
COMMAND = "command:remote:Command"


@pytest.fixture(autouse=True)
def _collect_failed_futures() -> Iterator[None]:
    """A refused program leaves failed futures; finalize them now, not in a later ast.parse
    (on CPython 3.11 before 3.11.8, a finalizer running there breaks the parse: gh-106905)."""
    yield
    gc.collect()


@dataclass
class Releasing(Recorder):
    """Like the engine after `up`: dynamic resources come back with a release id."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = dict(args.inputs)
        if args.typ == "pulumi-python:dynamic:Resource":
            outputs["releaseId"] = f"release-of-{args.name}"
        return f"{args.name}-id", outputs


def install(config: dict[str, Any], secret_keys: tuple[str, ...] = ()) -> Releasing:
    recorder = Releasing()
    asyncio.set_event_loop(asyncio.new_event_loop())  # earlier asyncio.run() leaves none
    pulumi.runtime.set_mocks(
        recorder, project="rbee-infra", stack="test", monitor=RecordingMonitor(recorder)
    )
    values = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    pulumi.runtime.set_all_config(values, list(secret_keys))
    return recorder


def run_main(config: dict[str, Any], secret_keys: tuple[str, ...] = ()) -> Releasing:
    recorder = install(config, secret_keys)
    pulumi.runtime.test(program.main)()
    return recorder


def gpu_fleet(**hive_extra: Any) -> dict[str, Any]:
    return {
        "rbee:hives": [
            {
                "alias": "gpu-host",
                "connection": {
                    "host": "10.1.0.5",
                    "port": 2222,
                    "user": "vince",
                    "privateKey": KEY,
                    "hostKey": HOST_KEY,
                },
                "workers": [{"type": "cuda"}, {"type": "cpu"}],
                **hive_extra,
            }
        ],
        "rbee:commands": [
            {
                "hive": "gpu-host",
                "name": "driver-check",
                "create": "nvidia-smi -L",
                "triggers": ["driver-550"],
            },
            {
                "hive": "gpu-host",
                "name": "warm-up",
                "create": "curl -fsS http://127.0.0.1:8600/health",
                "update": "true",
                "delete": "echo bye",
                "afterWorkers": ["cuda"],
                "rerunOnHiveChange": False,
            },
        ],
    }


def plain_text(inputs: dict[str, Any]) -> str:
    """Everything of a resource's inputs that is not secret-wrapped, as text."""
    return json.dumps({k: v for k, v in inputs.items() if not is_secret(v)}, default=str)


def test_stack_commands_become_remote_commands_on_the_hive_host() -> None:
    recorder = run_main(gpu_fleet(), ("rbee:hives",))
    hive = recorder.by_name("hive-gpu-host")
    cuda = recorder.by_name("worker-gpu-host-cuda")
    commands = [r for r in recorder.resources if r.type == COMMAND]
    assert sorted(c.name for c in commands) == [
        "command-gpu-host-driver-check",
        "command-gpu-host-warm-up",
    ]

    check = recorder.by_name("command-gpu-host-driver-check")
    assert check.inputs["create"] == "nvidia-smi -L"
    assert "update" not in check.inputs and "delete" not in check.inputs
    # the configured trigger, then the hive's release: reinstalling the hive runs it again
    assert check.inputs["triggers"] == ["driver-550", "release-of-hive-gpu-host"]
    assert check.dependencies == [hive.urn]

    warm = recorder.by_name("command-gpu-host-warm-up")
    assert (warm.inputs["create"], warm.inputs["update"], warm.inputs["delete"]) == (
        "curl -fsS http://127.0.0.1:8600/health",
        "true",
        "echo bye",
    )
    assert "triggers" not in warm.inputs
    assert sorted(warm.dependencies) == sorted([hive.urn, cuda.urn])


def test_command_connection_is_the_hive_connection_and_stays_secret() -> None:
    recorder = run_main(gpu_fleet(), ("rbee:hives",))
    hive = recorder.by_name("hive-gpu-host")
    hive_conn = unwrap(hive.inputs["connection"])
    for command in (r for r in recorder.resources if r.type == COMMAND):
        assert is_secret(command.inputs["connection"])
        assert "connection" in command.secret_outputs
        conn = unwrap(command.inputs["connection"])
        assert conn == {
            "host": "10.1.0.5",
            "port": 2222,
            "user": "vince",
            "privateKey": KEY,
            "hostKey": HOST_KEY,
            "dialErrorLimit": 3,
            "perDialTimeout": 15,
        }
        for key in ("host", "port", "user", "privateKey", "hostKey"):
            assert conn[key] == hive_conn[key], key
        assert "hive-own-key" not in plain_text(command.inputs)
    assert is_secret(hive.inputs["connection"])
    assert "hive-own-key" not in plain_text(hive.inputs)


def test_connection_block_keys_replace_the_fleet_key_for_that_hive_only() -> None:
    config = gpu_fleet()
    config["rbee:hives"][0]["connection"].update(
        {"privateKeyPassword": "pw-of-own-key", "dialErrorLimit": 5, "perDialTimeout": 7}
    )
    config["rbee:hives"].append(
        {"alias": "cpu-host", "hostname": "10.1.0.6", "sshUser": "rbee", "hostKey": HOST_KEY}
    )
    config["rbee:commands"].append({"hive": "cpu-host", "name": "probe", "create": "uname -a"})
    config["rbee:sshPrivateKey"] = FLEET_KEY
    config["rbee:sshPrivateKeyPassword"] = "pw-of-fleet-key"
    config["rbee:sshPrivateKeyPath"] = "~/.ssh/unused"
    recorder = run_main(config, ("rbee:hives", "rbee:sshPrivateKey", "rbee:sshPrivateKeyPassword"))

    own = unwrap(recorder.by_name("hive-gpu-host").inputs["connection"])
    assert (own["privateKey"], own["privateKeyPassword"]) == (KEY, "pw-of-own-key")
    assert "privateKeyPath" not in own
    assert (own["dialErrorLimit"], own["connectTimeout"]) == (5, 7)
    check = unwrap(recorder.by_name("command-gpu-host-driver-check").inputs["connection"])
    assert (check["privateKeyPassword"], check["dialErrorLimit"], check["perDialTimeout"]) == (
        "pw-of-own-key",
        5,
        7,
    )

    fleet = unwrap(recorder.by_name("hive-cpu-host").inputs["connection"])
    assert (fleet["privateKey"], fleet["privateKeyPassword"]) == (FLEET_KEY, "pw-of-fleet-key")
    probe = unwrap(recorder.by_name("command-cpu-host-probe").inputs["connection"])
    assert (probe["host"], probe["user"], probe["privateKey"]) == ("10.1.0.6", "rbee", FLEET_KEY)


def test_host_key_from_known_hosts_and_key_file_contents(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"10.1.0.6 ssh-rsa AAAAB3NzaC1yc2E\n[10.1.0.5]:2222 {HOST_KEY} gpu\n")
    key_file = tmp_path / "id_ed25519"
    key_file.write_text(KEY)
    config = gpu_fleet()
    config["rbee:hives"][0]["connection"] = {"host": "10.1.0.5", "port": 2222, "user": "vince"}
    config["rbee:knownHosts"] = str(known)
    config["rbee:sshPrivateKeyPath"] = str(key_file)
    recorder = run_main(config)

    hive_conn = unwrap(recorder.by_name("hive-gpu-host").inputs["connection"])
    assert "hostKey" not in hive_conn and "privateKey" not in hive_conn
    conn = unwrap(recorder.by_name("command-gpu-host-driver-check").inputs["connection"])
    assert conn["hostKey"] == HOST_KEY  # pinned from known_hosts, without the comment
    assert conn["privateKey"] == KEY  # pulumi-command needs the contents, kept secret
    assert is_secret(recorder.by_name("command-gpu-host-driver-check").inputs["connection"])


def test_a_host_without_any_known_key_is_refused_not_left_unchecked(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"10.1.0.5 {HOST_KEY}\n")  # port 22 only; the hive is on 2222
    config = gpu_fleet()
    config["rbee:hives"][0]["connection"] = {
        "host": "10.1.0.5",
        "port": 2222,
        "user": "vince",
        "privateKey": KEY,
    }
    config["rbee:knownHosts"] = str(known)
    install(config)
    # the same error also fails every future derived from the connection: collect them
    # (instead of asyncio logging "Future exception was never retrieved" for each)
    unretrieved: list[BaseException | None] = []
    loop = asyncio.get_event_loop_policy().get_event_loop()
    loop.set_exception_handler(lambda _loop, context: unretrieved.append(context.get("exception")))
    with pytest.raises(HostKeyError) as caught:
        pulumi.runtime.test(program.main)()
    gc.collect()
    assert all(isinstance(error, HostKeyError) for error in unretrieved), unretrieved
    message = str(caught.value)
    assert message.startswith("pulumi-command command-gpu-host-")
    assert f"[10.1.0.5]:2222 is not in known_hosts {known}" in message
    assert "pin it with hostKey" in message
    assert "hive-own-key" not in message


def test_the_converter_refuses_missing_credentials_and_unreadable_files(tmp_path: Path) -> None:
    base = {"host": "10.1.0.5", "user": "vince", "hostKey": HOST_KEY}
    with pytest.raises(AuthError, match="no private key, key path or agent socket"):
        to_command_connection(base, "command c")
    missing = tmp_path / "nope"
    with pytest.raises(AuthError, match="private key file could not be read: No such file"):
        to_command_connection({**base, "privateKeyPath": str(missing)}, "command c")
    with pytest.raises(HostKeyError, match=f"known_hosts file {missing} could not be read"):
        to_command_connection(
            {"host": "h", "user": "u", "privateKey": KEY, "knownHosts": str(missing)}, "command c"
        )
    with pytest.raises(HostKeyError, match="no hostKey pinned and no known_hosts file"):
        to_command_connection({"host": "h", "user": "u", "privateKey": KEY}, "command c")
    with pytest.raises(ConfigError, match=r"connection\.port: Input should be less than"):
        to_command_connection({**base, "privateKey": KEY, "port": 70000}, "command c")
    agent = to_command_connection({**base, "agentSocketPath": "/run/agent.sock"}, "command c")
    assert agent.agent_socket_path == "/run/agent.sock" and agent.private_key is None


def test_a_hive_behind_a_jump_host_gives_pulumi_command_its_proxy(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"[bastion]:2200 {HOST_KEY}\n")
    conn = {
        "host": "10.1.0.5", "user": "vince", "hostKey": HOST_KEY, "privateKey": KEY,
        "knownHosts": str(known),
        "jumps": [{"host": "bastion", "port": 2200, "user": "ops"}],
    }
    args = to_command_connection(conn, "command c")
    proxy = args.proxy
    assert proxy is not None
    assert (proxy.host, proxy.port, proxy.user) == ("bastion", 2200, "ops")
    assert proxy.private_key == KEY and proxy.host_key == HOST_KEY  # from known_hosts
    with pytest.raises(ConfigError, match="pulumi-command reaches a host through one jump host"):
        to_command_connection(
            {**conn, "jumps": [*conn["jumps"], {"host": "inner", "user": "ops"}]}, "command c"
        )
    unknown = {**conn, "jumps": [{"host": "elsewhere", "user": "ops"}]}
    with pytest.raises(
        HostKeyError, match="command c: jump host ops@elsewhere:22: connect failed: no hostKey"
    ):
        to_command_connection(unknown, "command c")


def test_hive_command_helper_depends_on_the_hive_without_using_its_outputs() -> None:
    recorder = install({})
    connection = {"host": "127.0.0.2", "port": 2201, "user": "u1", "privateKey": KEY}
    connection["hostKey"] = HOST_KEY

    def declare() -> pulumi.Output[Any]:
        hive = Hive(
            "hive-lab",
            HiveArgs(
                alias="lab",
                connection=pulumi.Output.secret(connection),
                source={"method": "git", "repo": "git://127.0.0.1/x.git", "tag": "v0.1.0"},
            ),
        )
        command = hive_command(
            "lab-smoke",
            hive,
            "~/.local/bin/rbee-hive --version",
            connection=pulumi.Output.secret(connection),
            rerun_on_hive_change=False,
        )
        return command.urn

    pulumi.runtime.test(declare)()
    hive = recorder.by_name("hive-lab")
    smoke = recorder.by_name("lab-smoke")
    assert smoke.type == COMMAND
    # nothing of the hive is an input of the command: the dependency is the explicit one
    assert smoke.dependencies == [hive.urn]
    assert "triggers" not in smoke.inputs
    assert smoke.inputs["create"] == "~/.local/bin/rbee-hive --version"
    assert unwrap(smoke.inputs["connection"])["port"] == 2201


def test_commands_config_errors_name_each_field() -> None:
    fleet = parse_fleet({"hives": [{"alias": "gpu-host", "hostname": "h", "sshUser": "u"}]})
    with pytest.raises(ConfigError) as caught:
        parse_commands(
            [
                {"hive": "gpu-hots", "name": "a", "create": "true"},
                {"hive": "gpu-host", "name": "b", "create": "true", "afterWorkers": ["cuda"]},
                {"hive": "gpu-host", "name": "c", "create": ""},
                {"hive": "gpu-host", "name": "d", "create": "x", "stdin": "y"},
                {"hive": "gpu-host", "name": "e", "create": "true"},
                {"hive": "gpu-host", "name": "e", "create": "true"},
                {"hive": "gpu-host", "name": "bad name", "create": "true"},
            ],
            fleet,
        )
    assert caught.value.problems == [
        ("commands[0].hive", "no hive 'gpu-hots' (hives: gpu-host)"),
        ("commands[1].afterWorkers[0]", "hive 'gpu-host' has no 'cuda' worker"),
        ("commands[2].create", "String should have at least 1 character"),
        ("commands[3].stdin", "Extra inputs are not permitted"),
        ("commands[5].name", "'e' is used twice on hive 'gpu-host'"),
        (
            "commands[6].name",
            "'bad name' is not allowed; expected letters, digits, '.', '_' or '-' (max 63)",
        ),
    ]
    with pytest.raises(ConfigError, match="commands: expected a list"):
        parse_commands({"hive": "gpu-host"}, fleet)
    assert parse_commands(None, fleet) == []


def test_bad_commands_config_stops_the_program_before_any_resource() -> None:
    config = gpu_fleet()
    config["rbee:commands"][0]["hive"] = "nowhere"
    recorder = install(config)
    # as pulumi.RunError: the SDK's runner shows its message alone, without a traceback
    with pytest.raises(pulumi.RunError) as caught:
        pulumi.runtime.test(program.main)()
    assert str(caught.value) == (
        "invalid configuration:\n  commands[0].hive: no hive 'nowhere' (hives: gpu-host)"
    )
    assert recorder.resources == []


def test_connection_block_is_validated_like_pulumi_command_args() -> None:
    def hive(connection: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"hives": [{"alias": "h", "connection": connection, **extra}]}

    fleet = parse_fleet(hive({"host": "10.0.0.9", "user": "ops", "hostKey": HOST_KEY}))
    parsed = fleet.hives[0]
    assert (parsed.hostname, parsed.ssh_user, parsed.ssh_port) == ("10.0.0.9", "ops", 22)
    assert parsed.host_key == HOST_KEY
    secret = parse_fleet(hive({"host": "h", "privateKey": KEY})).hives[0]
    assert "hive-own-key" not in repr(secret)

    cases = {
        "password": ({"host": "h", "password": "pw"}, {}),
        "proxy": ({"host": "h", "proxy": {"host": "b", "password": "pw"}}, {}),
        "twice": ({"host": "h", "proxy": {"host": "b"}}, {"proxyJump": "c"}),
        "conflict": ({"host": "h", "user": "a"}, {"sshUser": "b"}),
        "port": ({"host": "h", "port": 0}, {}),
        "unknown": ({"host": "h", "privateKeyPath": "~/.ssh/id"}, {}),
    }
    problems = {}
    for label, (connection, extra) in cases.items():
        with pytest.raises(ConfigError) as caught:
            parse_fleet(hive(connection, **extra))
        problems[label] = caught.value.problems
    assert problems["password"] == [
        (
            "hives[0].connection",
            "password authentication is not supported; use privateKey or agentSocketPath",
        )
    ]
    assert (
        "hives[0].connection.proxy", "password authentication is not supported; use privateKey"
    ) in problems["proxy"]
    assert problems["twice"] == [
        ("hives[0]", "give the jump hosts once: proxyJump or connection.proxy")
    ]
    behind = parse_fleet(
        hive({"host": "h", "proxy": {"host": "b", "port": 2200, "user": "j", "hostKey": HOST_KEY}})
    ).hives[0]
    assert [(j.host, j.port, j.user, j.host_key) for j in behind.proxy_jump or []] == [
        ("b", 2200, "j", HOST_KEY)
    ]
    assert problems["conflict"] == [
        ("hives[0]", "sshUser 'b' and connection.user 'a' differ; give the target once")
    ]
    assert ("hives[0].connection.port", "Input should be greater than or equal to 1") in problems[
        "port"
    ]
    assert problems["unknown"] == [
        ("hives[0].connection.privateKeyPath", "Extra inputs are not permitted")
    ]


def test_example_stack_validates_and_declares_its_commands() -> None:
    config = yaml.safe_load((ROOT / "stacks" / "Pulumi.example-commands.yaml").read_text())
    config = config["config"]
    fleet = parse_fleet({"hives": config["rbee:hives"], "sshPrivateKey": "<secret>"})
    commands = parse_commands(config["rbee:commands"], fleet)
    assert [(c.hive, c.name, c.after_workers) for c in commands] == [
        ("gpu-host", "driver-check", []),
        ("gpu-host", "warm-up", ["cuda"]),
    ]
    runnable = {k: v for k, v in config.items() if k != "rbee:sshPrivateKeyPath"}
    runnable["rbee:sshPrivateKey"] = KEY
    recorder = run_main(runnable, ("rbee:sshPrivateKey",))
    assert sorted(r.name for r in recorder.resources if r.type == COMMAND) == [
        "command-gpu-host-driver-check",
        "command-gpu-host-warm-up",
    ]
    conn = unwrap(recorder.by_name("command-gpu-host-warm-up").inputs["connection"])
    assert (conn["host"], conn["user"], conn["hostKey"]) == (
        "192.168.56.10",
        "vagrant",
        "ssh-ed25519 REPLACE-with-the-host-key",
    )
