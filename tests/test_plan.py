"""Pure planning: ref resolution, diff decisions, host state, receipts, fact parsers."""

from __future__ import annotations

import base64
import json

import pytest

from rbee_infra.base import layout
from rbee_infra.config.fleet import GitSource
from rbee_infra.config.spec import parse_spec
from rbee_infra.decide import plan
from rbee_infra.decide.facts import InstalledBinary, parse_ls_remote, parse_probe

pytestmark = pytest.mark.unit

CONN = {"host": "127.0.0.5", "port": 2222.0, "user": "rbee", "knownHosts": "/k"}


def spec_props(**extra: object) -> dict[str, object]:
    props: dict[str, object] = {
        "alias": "gpu-host",
        "component": "worker",
        "workerType": "cuda",
        "binary": "llm-worker-rbee-cuda",
        "features": ["cuda"],
        "source": {"method": "git", "repo": "https://tok3n12345@example.org/r.git", "tag": "v1"},
        "connection": CONN,
        "stack": "dev",
        "resourceName": "worker-gpu-host-cuda",
    }
    props.update(extra)
    return props


def test_ls_remote_prefers_peeled_tag_commit() -> None:
    out = "aaa\trefs/tags/v1\nbbb\trefs/tags/v1^{}\nccc\trefs/heads/main\n"
    refs = parse_ls_remote(out)
    assert refs == {"refs/tags/v1": "bbb", "refs/heads/main": "ccc"}
    assert plan.pick_commit(GitSource(tag="v1"), refs) == "bbb"
    assert plan.pick_commit(GitSource(branch="main"), refs) == "ccc"
    assert plan.pick_commit(GitSource(branch="gone"), refs) is None
    assert plan.pick_commit(GitSource(rev="abcdef1"), {}) == "abcdef1"
    assert plan.git_ref_names(GitSource(tag="v1")) == ["refs/tags/v1", "refs/tags/v1^{}"]


def test_probe_parser_reads_tools_items_and_receipts() -> None:
    receipt = {"installId": "abc", "sha256": "f" * 64}
    encoded = base64.b64encode(json.dumps(receipt).encode()).decode()
    out = "\n".join(
        [
            "home\t/home/rbee",
            "uname\tLinux x86_64",
            "tool\tgit\t/usr/bin/git",
            "tool\tcurl\t",
            "cargo\tcargo 1.96.0",
            f"item\trbee-hive\tsymlink\t../share/rbee/releases/rbee-hive/abc1234-x/rbee-hive\t{'f' * 64}\t{encoded}",
            "item\trbee-worker-cpu\tmissing\t\t-\t",
            f"item\trbee-worker-cuda\tsymlink\tx\t{'e' * 64}\t{json.dumps(receipt)}",  # as is
            f"item\trbee-worker-metal\tsymlink\tx\t{'e' * 64}\t" + '{"installId": ',
            f"item\tother\tsymlink\tx\t{'e' * 64}\t" + base64.b64encode(b"[1]").decode(),
        ]
    )
    facts = parse_probe(out)
    assert facts.installed["rbee-worker-cuda"].receipt == receipt
    # a receipt that is not a JSON object: none, as if it were missing
    assert facts.installed["rbee-worker-metal"].receipt is None
    assert facts.installed["other"].receipt is None
    assert facts.home == "/home/rbee" and facts.tools == {"git": "/usr/bin/git"}
    assert facts.cargo_version == "cargo 1.96.0"
    hive = facts.installed["rbee-hive"]
    assert hive.receipt == receipt and hive.release_id == "abc1234-x" and hive.drift() is None
    assert facts.installed["rbee-worker-cpu"].present is False


def installed(
    kind: str = "symlink", sha: str | None = "a" * 64, receipt: object = None
) -> InstalledBinary:
    return InstalledBinary("rbee-hive", kind, "x/releases/rbee-hive/0a1b2c3d4e5f/rbee-hive", sha, receipt)  # type: ignore[arg-type]


def test_host_state_words() -> None:
    mine = {"installId": "me", "sha256": "a" * 64, "resource": "hive-a"}
    assert plan.host_state(None, "me") == plan.NOT_INSTALLED
    assert plan.host_state(installed(receipt=mine), "me") == plan.IN_SYNC
    assert plan.host_state(installed(sha="b" * 64, receipt=mine), "me") == (
        "binary changed (sha256 differs from the receipt)"
    )
    assert plan.host_state(installed("missing", None, mine), "me") == "binary missing"
    assert plan.host_state(installed("file"), "me") == "hand-made binary present"
    other = {**mine, "installId": "other", "resource": "hive-b"}
    assert plan.host_state(installed(receipt=other), "me") == (
        "installed by another resource (hive-b)"
    )


def outputs(**extra: object) -> dict[str, object]:
    return {**spec_props(), "hostState": "in-sync", "resolvedCommit": "c1", "commit": "c1", **extra}


@pytest.mark.parametrize(
    ("news", "changes", "replaces", "reinstall"),
    [
        (outputs(), False, [], False),
        ({**outputs(), "connection": {**CONN, "port": 22.0}}, True, ["connection.port"], True),
        (
            {**outputs(), "connection": {**CONN, "host": "10.0.0.1"}},
            True,
            ["connection.host"],
            True,
        ),
        ({**outputs(), "workerType": "cpu"}, True, ["workerType"], True),
        ({**outputs(), "features": ["cuda", "cpu"]}, True, [], True),
        ({**outputs(), "resolvedCommit": "c2"}, True, [], True),
        ({**outputs(), "reinstallTrigger": "2"}, True, [], True),
        ({**outputs(), "hostState": "binary missing"}, True, [], True),
        ({**outputs(), "connection": {**CONN, "privateKeyPath": "/other"}}, True, [], False),
        ({**outputs(), "alias": "renamed"}, True, [], False),
        # a check is how an install is judged, not what it builds: recorded, no reinstall
        ({**outputs(), "verify": {"args": ["--help"], "expect": "Usage:"}}, True, [], False),
    ],
)
def test_diff_decisions(news: dict, changes: bool, replaces: list[str], reinstall: bool) -> None:
    decision = plan.decide_diff(outputs(), news)
    assert (decision.changes, decision.replaces) == (changes, replaces)
    if changes:
        assert decision.reinstall == reinstall


def test_a_verify_setting_dropped_from_the_config_is_a_change() -> None:
    olds = outputs(verify={"args": ["--help"], "expect": "Usage:"})
    decision = plan.decide_diff(olds, outputs())  # the engine drops an unset input
    assert (decision.changes, decision.changed, decision.reinstall) == (True, ["verify"], False)


def test_ints_that_arrive_as_floats_do_not_cause_a_diff() -> None:
    news = {**outputs(), "connection": {**CONN, "port": 2222}, "buildTimeout": 3600}
    olds = {**outputs(), "buildTimeout": 3600.0}
    assert plan.decide_diff(olds, news).changes is False


def test_receipt_keeps_no_credentials_and_is_greppable_by_install_id() -> None:
    spec = parse_spec(spec_props())
    iid = plan.install_id(spec)
    text = plan.receipt(
        spec, iid=iid, rid="r1", commit="c" * 40, version="v", sha256="s", installed_at="t",
        verified_by="--help",
    )
    assert "tok3n12345" not in text
    assert f'"installId": "{iid}"' in text
    data = json.loads(text)
    assert data["source"]["repo"] == "https://***@example.org/r.git"
    # which check the binary passed; a `--version` line only when it answered
    assert data["verifiedBy"] == "--help" and "versionOutput" not in data
    answered = plan.receipt(
        spec, iid=iid, rid="r1", commit="c" * 40, version="v", sha256="s", installed_at="t",
        verified_by="--version", version_line="x 1.0",
    )
    assert json.loads(answered)["versionOutput"] == "x 1.0"


def test_install_id_is_stable_per_target_and_name() -> None:
    a = parse_spec(spec_props())
    assert plan.install_id(a) == plan.install_id(parse_spec(spec_props(features=["cpu"])))
    assert plan.install_id(a) != plan.install_id(
        parse_spec(spec_props(connection={**CONN, "port": 22}))
    )


def test_layout_paths() -> None:
    assert layout.stable_path("rbee-hive") == ".local/bin/rbee-hive"
    assert layout.stable_path("rbee-worker-cuda") == ".local/share/rbee/workers/rbee-worker-cuda"
    assert layout.release_id("0123456789abcdef", ["cpu", "cuda"]) == "0123456789ab-cpu+cuda"
    assert layout.link_target("rbee-hive", "0a1b2c3d4e5f", "rbee-hive") == (
        "../share/rbee/releases/rbee-hive/0a1b2c3d4e5f/rbee-hive"
    )
    assert layout.link_target("rbee-worker-cpu", "0a1b2c3d4e5f", "llm-worker-rbee-cpu") == (
        "../releases/rbee-worker-cpu/0a1b2c3d4e5f/llm-worker-rbee-cpu"
    )
    spec = parse_spec(spec_props(reinstallTrigger="again"))
    assert plan.release_id(spec, "c" * 40).startswith("cccccccccccc-cuda-r")
