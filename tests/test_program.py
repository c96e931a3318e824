"""The Pulumi program under mocks: stack config in, exactly the expected resources out."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from rbee_infra.base.errors import ConfigError
from rbee_infra.base.wire import without_none
from rbee_infra.stack.program import declare_fleet, read_stack_config
from tests.program_mocks import install_mocks, is_secret, kickoff_hosts, unwrap

pytestmark = pytest.mark.unit

REPO = "https://example.org/rbee/llama-orch.git"


def two_by_two() -> dict[str, Any]:
    return {
        "rbee:hives": [
            {
                "alias": "gpu-host",
                "hostname": "10.1.0.5",
                "sshUser": "vince",
                "sshPort": 2222,
                "installMethod": {"git": {"repo": REPO, "tag": "v0.2.0"}},
                "workers": [
                    {"type": "cuda", "features": ["cuda"]},
                    {"type": "cpu", "version": "v0.1.0"},
                ],
            },
            {
                "alias": "cpu-host",
                "hostname": "cpu.example.org",
                "sshUser": "rbee",
                "installMethod": {"git": {"repo": REPO, "branch": "develop"}},
                "workers": [
                    {"type": "cpu", "features": ["cpu"]},
                    {"type": "metal", "binary": "custom-metal-bin", "features": ["metal", "x"]},
                ],
            },
        ],
        "rbee:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n",
        "rbee:knownHosts": "~/.ssh/known_hosts_rbee",
    }


def run_program(config: dict[str, Any], secret_keys: tuple[str, ...] = ()) -> Any:
    recorder = install_mocks(config, secret_keys)

    @pulumi.runtime.test
    def program() -> Any:
        exports = declare_fleet(*read_stack_config())
        outputs = [
            value
            for hive in exports.values()
            for value in [hive["hive"]["path"], *(w["path"] for w in hive["workers"].values())]
        ]
        return pulumi.Output.all(*outputs)

    program()
    return recorder


def test_two_hives_two_workers_yield_exactly_the_expected_resources() -> None:
    recorder = run_program(two_by_two(), ("rbee:sshPrivateKey",))
    names = sorted(r.name for r in recorder.resources)
    assert names == [
        "build-kickoff",
        "hive-cpu-host",
        "hive-gpu-host",
        "worker-cpu-host-cpu",
        "worker-cpu-host-metal",
        "worker-gpu-host-cpu",
        "worker-gpu-host-cuda",
    ]
    assert {r.type for r in recorder.resources} == {"pulumi-python:dynamic:Resource"}

    hive = recorder.by_name("hive-gpu-host")
    assert hive.inputs["component"] == "hive"
    assert hive.inputs["binary"] == "rbee-hive"
    assert hive.inputs["features"] == []
    assert hive.inputs["source"] == {"method": "git", "repo": REPO, "tag": "v0.2.0"}
    assert hive.inputs["resourceName"] == "hive-gpu-host"
    assert hive.inputs["stack"] == "test"

    cuda = recorder.by_name("worker-gpu-host-cuda")
    assert (cuda.inputs["workerType"], cuda.inputs["binary"]) == ("cuda", "llm-worker-rbee-cuda")
    assert cuda.inputs["features"] == ["cuda"]
    cpu_pinned = recorder.by_name("worker-gpu-host-cpu")
    assert cpu_pinned.inputs["source"] == {"method": "git", "repo": REPO, "tag": "v0.1.0"}
    assert cpu_pinned.inputs["features"] == ["cpu"]
    metal = recorder.by_name("worker-cpu-host-metal")
    assert metal.inputs["binary"] == "custom-metal-bin"
    assert metal.inputs["features"] == ["metal", "x"]
    assert metal.inputs["source"] == {"method": "git", "repo": REPO, "branch": "develop"}


def test_connection_is_secret_and_workers_depend_on_their_hive() -> None:
    recorder = run_program(two_by_two(), ("rbee:sshPrivateKey",))
    hive = recorder.by_name("hive-gpu-host")
    connection = hive.inputs["connection"]
    assert is_secret(connection)
    assert unwrap(connection) == {
        "host": "10.1.0.5",
        "port": 2222,
        "user": "vince",
        "privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n",
        "knownHosts": "~/.ssh/known_hosts_rbee",
        "hostKeyPolicy": "strict",
        "connectTimeout": 15,
    }
    assert "connection" in hive.secret_outputs
    assert "source" not in hive.secret_outputs
    for name in ("worker-gpu-host-cuda", "worker-gpu-host-cpu"):
        assert recorder.by_name(name).dependencies == [hive.urn]
    assert recorder.by_name("worker-cpu-host-cpu").dependencies == [
        recorder.by_name("hive-cpu-host").urn
    ]


def test_one_build_kickoff_lists_every_host_and_every_hive_depends_on_it() -> None:
    recorder = run_program(two_by_two(), ("rbee:sshPrivateKey",))
    kickoff = recorder.by_name("build-kickoff")
    assert kickoff.dependencies == []
    for hive in ("hive-gpu-host", "hive-cpu-host"):
        assert recorder.by_name(hive).dependencies == [kickoff.urn]
    assert is_secret(kickoff.inputs["hosts"]) and "hosts" in kickoff.secret_outputs
    hosts = kickoff_hosts(recorder)
    assert [h["alias"] for h in hosts] == ["gpu-host", "cpu-host"]
    gpu = hosts[0]
    assert gpu["connection"] == unwrap(recorder.by_name("hive-gpu-host").inputs["connection"])
    # the same inputs the hive and its workers get, less connection, alias and outputs
    assert [i["resourceName"] for i in gpu["installs"]] == [
        "hive-gpu-host",
        "worker-gpu-host-cuda",
        "worker-gpu-host-cpu",
    ]
    for item in gpu["installs"]:
        own = recorder.by_name(item["resourceName"]).inputs
        assert all(unwrap(own[k]) == v for k, v in item.items()), item["resourceName"]
        assert {"connection", "alias", "installId", "version", "extras"}.isdisjoint(item)
    assert gpu["installs"][2]["source"] == {"method": "git", "repo": REPO, "tag": "v0.1.0"}
    assert gpu["installs"][1]["workerType"] == "cuda"
    assert gpu["installs"][1]["features"] == ["cuda"]


def test_hosts_without_git_sources_are_surveyed_by_the_kickoff_too() -> None:
    config = two_by_two()
    release = {"release": {"repo": "veighnsche/llama-orch", "tag": "v0.2.0", "sha256": "a" * 64}}
    for hive in config["rbee:hives"]:
        hive["installMethod"] = release
        for worker in hive["workers"]:
            worker.pop("version", None)
    recorder = run_program(config)
    hosts = kickoff_hosts(recorder)
    assert [h["alias"] for h in hosts] == ["gpu-host", "cpu-host"]
    assert hosts[1]["installs"][0]["source"]["method"] == "release"
    (dependency,) = recorder.by_name("hive-cpu-host").dependencies
    assert dependency.endswith("::build-kickoff")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c["rbee:hives"][1].update(sshPort=0), "hives[1].sshPort"),
        (
            lambda c: c["rbee:hives"][0]["workers"][1].update(features=["ok", "bad feature"]),
            "hives[0].workers[1].features[1]",
        ),
        (lambda c: c["rbee:hives"][1].update(alias="gpu-host"), "alias 'gpu-host' is used"),
        (lambda c: c.update({"rbee:hostKeyPolicy": "yolo"}), "hostKeyPolicy"),
    ],
)
def test_invalid_config_fails_before_any_resource(mutate: Any, expected: str) -> None:
    config = two_by_two()
    mutate(config)
    recorder = install_mocks(config)
    with pytest.raises(ConfigError) as caught:
        read_stack_config()
    assert expected in str(caught.value)
    assert recorder.resources == []


TOKEN_URL = "https://x-access-token:ghp_plainT0ken@example.org/rbee/llama-orch.git"


def test_a_token_url_in_plain_config_is_refused_before_any_resource() -> None:
    config = two_by_two()
    config["rbee:hives"][1]["workers"][0]["installMethod"] = {"git": {"repo": TOKEN_URL}}
    config["rbee:hives"][0]["installMethod"] = {
        "release": {"tag": "v0.2.0", "baseUrl": "https://u:pw@mirror.example.org", "sha256": "a" * 64}
    }
    recorder = install_mocks(config)
    with pytest.raises(ConfigError) as caught:
        read_stack_config()
    message = str(caught.value)
    assert "hives[0].installMethod.release.baseUrl: this URL carries a credential" in message
    assert "hives[1].workers[0].installMethod.git.repo: this URL carries a credential" in message
    assert ("pulumi config set --secret --path "
            "'rbee:hives[1].workers[0].installMethod.git.repo' '<url>'") in message
    assert "ghp_plainT0ken" not in message and ":pw@" not in message
    assert recorder.resources == []


def test_a_token_url_in_secret_config_is_accepted() -> None:
    config = two_by_two()
    config["rbee:hives"][1]["installMethod"] = {"git": {"repo": TOKEN_URL, "branch": "develop"}}
    recorder = run_program(config, ("rbee:hives",))
    hive = recorder.by_name("hive-cpu-host")
    assert is_secret(hive.inputs["source"])


def test_verify_settings_reach_their_resources_and_the_exports_name_the_check() -> None:
    config = two_by_two()
    gpu = config["rbee:hives"][0]
    gpu["verify"] = {"args": ["-V"], "expect": "rbee-hive"}
    gpu["workers"][0]["verify"] = {"args": ["--help"], "expect": "Usage:"}
    recorder = install_mocks(config)
    exported: list[dict[str, Any]] = []

    @pulumi.runtime.test
    def program() -> Any:
        exports = declare_fleet(*read_stack_config())
        for hive in exports.values():
            exported.extend([hive["hive"], *hive["workers"].values()])
        return pulumi.Output.all(*(e["path"] for e in exported))

    program()
    assert all({"version", "verifiedBy", "commit"} <= set(e) for e in exported)
    assert recorder.by_name("hive-gpu-host").inputs["verify"] == gpu["verify"]
    assert recorder.by_name("worker-gpu-host-cuda").inputs["verify"] == {
        "args": ["--help"], "expect": "Usage:"
    }
    assert recorder.by_name("worker-gpu-host-cpu").inputs.get("verify") is None


def _asked_to_read_ahead(
    config: dict[str, Any], secret_keys: tuple[str, ...], tmp_path: Any, monkeypatch: Any
) -> tuple[Any, list[Any]]:
    """Run the program with a listener where the language host's provider server would be;
    what the program sent it (`ask_to_read_ahead`), decoded."""
    import json
    import socket
    import struct

    folder = tmp_path / "warm"
    folder.mkdir(mode=0o700)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(folder / "1.sock"))
    listener.listen(1)
    listener.settimeout(0)
    monkeypatch.setenv("PULUMI_PYTHON_WARM_SOCKET", str(folder / "1.sock"))
    recorder = run_program(config, secret_keys)
    sent: list[Any] = []
    try:
        conn, _ = listener.accept()
    except BlockingIOError:
        return recorder, sent
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    assert data[:4] == b"READ"
    (size,) = struct.unpack("!I", data[4:8])
    assert len(data) == 8 + size
    sent.append(json.loads(data[8:]))
    return recorder, sent


def test_the_program_asks_the_provider_server_to_read_the_hosts_ahead(
    tmp_path: Any, monkeypatch: Any
) -> None:
    """Exactly the kick-off's hosts, connections included (here a key file: nothing secret)."""
    config = two_by_two()
    del config["rbee:sshPrivateKey"]
    config["rbee:sshPrivateKeyPath"] = "~/.ssh/id_rbee"
    recorder, sent = _asked_to_read_ahead(config, (), tmp_path, monkeypatch)
    hosts_sent = kickoff_hosts(recorder)
    assert [s["module"] for s in sent] == ["rbee_infra.host.hostview"]
    # what the engine gets, as the SDK sends it: without the keys whose value is None
    assert without_none(sent[0]["payload"]["hosts"]) == hosts_sent
    assert sent[0]["payload"]["hosts"][0]["connection"]["privateKeyPath"] == "~/.ssh/id_rbee"


def test_a_secret_key_in_the_stack_config_is_not_sent_to_read_ahead(
    tmp_path: Any, monkeypatch: Any
) -> None:
    """The stack's secret key is an Output the program resolves later: those hosts are left to
    the checks, and nothing secret goes out."""
    recorder, sent = _asked_to_read_ahead(
        two_by_two(), ("rbee:sshPrivateKey",), tmp_path, monkeypatch
    )
    assert recorder.by_name("build-kickoff") is not None
    assert sent == []


def test_the_program_declares_only_the_outputs_it_reads() -> None:
    # the SDK makes an Output (and its tasks) for every property a resource is given; the
    # state records every output the provider returns, declared or not (docs/performance.md)
    from rbee_infra.stack.resources import HiveArgs, WorkerArgs

    install_mocks(two_by_two(), ())
    common = {"alias": "h", "connection": {}, "source": {}}
    hive = HiveArgs(**common).props("hive", "hive-h")
    worker = WorkerArgs(**common, binary="llm-worker-rbee-cpu").props("worker", "worker-h-cpu")
    read = {"installPath", "commit", "version", "verifiedBy"}
    assert read | {"hostFacts", "releaseId", "extras", "service"} <= {
        key for key, value in hive.items() if value is None
    }
    assert read <= {key for key, value in worker.items() if value is None}
    unread = {"installId", "resolvedCommit", "sha256", "hostState", "phaseSeconds",
              "cargoLockSha256"}  # fmt: skip
    assert not unread & hive.keys() and not unread & worker.keys()
    assert not {"hostFacts", "releaseId", "extras", "service"} & worker.keys()


def test_a_resource_registers_its_plain_inputs_as_one_property() -> None:
    # every top-level property costs the SDK an Output and its futures: the plain inputs go as
    # `settings`, which the providers spread out again (`plan.public_props`)
    recorder = run_program(two_by_two(), ("rbee:sshPrivateKey",))
    hive, worker = recorder.by_name("hive-gpu-host"), recorder.by_name("worker-gpu-host-cuda")
    # (the output placeholders, None, and a key not pinned yet are not sent at all)
    assert set(hive.sent) == set(worker.sent) == {"__provider", "connection", "source", "settings"}
    assert worker.sent["settings"]["workerType"] == "cuda"
    assert worker.sent["settings"]["features"] == ["cuda"]
    assert hive.sent["settings"]["hivePort"] == 8600
    # a None is not sent, inside `settings` as at the top (queenUrl, minFreeDiskMb, verify)
    assert not {"queenUrl", "minFreeDiskMb", "verify"} & set(hive.sent["settings"])
    assert None not in hive.sent["settings"].values()
    assert not {"connection", "source", "settings"} & set(hive.sent["settings"])
    assert is_secret(hive.sent["connection"])  # a secret stays a property of its own


def test_an_input_that_is_no_plain_value_stays_a_property_of_its_own() -> None:
    from rbee_infra.stack.resources import HiveArgs

    install_mocks(two_by_two(), ())
    features = pulumi.Output.from_input(["cpu"])
    props = HiveArgs(alias="h", connection={}, source={}, features=features,
                     managed_workers=["cpu", features]).props("hive", "hive-h")  # fmt: skip
    assert props["features"] is features
    assert props["managedWorkers"] == ["cpu", features]
    assert "features" not in props["settings"] and props["settings"]["alias"] == "h"


def test_the_resource_classes_leave_the_sdk_no_annotations_to_evaluate() -> None:
    # the SDK evaluates a resource class's annotations (typing.get_type_hints) again for every
    # registration that returns; the outputs are plain values it would leave as they are
    from pulumi._types import resource_types

    from rbee_infra.stack.resources import Build, BuildKickoff, Hive, Worker

    assert [resource_types(c) for c in (Hive, Worker, Build, BuildKickoff)] == [{}, {}, {}, {}]


def test_the_kickoffs_hosts_are_sent_without_an_output_per_value(monkeypatch: Any) -> None:
    """The SDK makes and tracks an Output for every value of every dict and list that
    `Output.from_input` or `Output.all` meet; its end-of-program wait goes over all the
    Outputs still pending each time one resolves. The kick-off's hosts (every install's
    inputs) are encoded as one text around the few Outputs inside them: a host costs the
    program about 120 Outputs, where lifting the hosts cost about 290."""
    made = [0]
    track = pulumi.Output._track

    def counted(self: Any) -> None:
        made[0] += 1
        track(self)

    monkeypatch.setattr(pulumi.Output, "_track", counted)

    def outputs_for(hosts: int) -> int:
        config = two_by_two()
        first = config["rbee:hives"][0]
        config["rbee:hives"] = [
            {**first, "alias": f"host{i}", "hostname": f"10.1.0.{i + 1}"} for i in range(hosts)
        ]
        made[0] = 0
        run_program(config, ("rbee:sshPrivateKey",))
        return made[0]

    per_host = (outputs_for(6) - outputs_for(2)) / 4
    assert 60 < per_host < 160, per_host
    text = unwrap(run_program(two_by_two(), ("rbee:sshPrivateKey",))
                  .by_name("build-kickoff").inputs["hosts"])
    assert isinstance(text, str) and json.loads(text)[0]["alias"] == "gpu-host"
