"""Stack config validation: every bad value is named by its path, before any host is touched."""

from __future__ import annotations

import pytest

from rbee_infra.config import GitSource, parse_fleet
from rbee_infra.errors import ConfigError

pytestmark = pytest.mark.unit


def hive(alias: str = "gpu-host", **extra: object) -> dict[str, object]:
    return {"alias": alias, "hostname": "10.0.0.5", "sshUser": "vince", **extra}


def problems(data: dict[str, object]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_fleet(data)
    return caught.value.problems


def test_minimal_hive_gets_defaults() -> None:
    fleet = parse_fleet({"hives": [hive()]})
    (h,) = fleet.hives
    assert h.ssh_port == 22
    assert isinstance(h.install_method, GitSource)
    assert h.install_method.ref_kind == "branch" and h.install_method.ref == "main"


def test_rbee_install_method_shape_and_worker_defaults() -> None:
    fleet = parse_fleet(
        {
            "hives": [
                hive(
                    installMethod={
                        "git": {"repo": "https://example.org/rbee.git", "tag": "v0.2.0"}
                    },
                    workers=[{"type": "cuda"}, {"type": "vllm", "features": ["cuda", "fast_attn"]}],
                )
            ]
        }
    )
    source = fleet.hives[0].install_method
    assert isinstance(source, GitSource) and source.tag == "v0.2.0"
    cuda, vllm = fleet.hives[0].workers
    assert (cuda.binary_name, cuda.feature_list) == ("llm-worker-rbee-cuda", ["cuda"])
    assert (vllm.binary_name, vllm.feature_list) == ("llm-worker-rbee-vllm", ["cuda", "fast_attn"])
    assert cuda.install_name == "rbee-worker-cuda"


def test_bad_feature_is_named_by_full_path() -> None:
    data = {
        "hives": [
            hive("a"),
            hive("b", workers=[{"type": "cpu", "features": ["cpu", "ok", "rm -rf /"]}]),
        ]
    }
    ((path, reason),) = problems(data)
    assert path == "hives[1].workers[0].features[2]"
    assert "'rm -rf /' is not allowed" in reason and "cargo feature name" in reason


@pytest.mark.parametrize(
    ("hive_data", "path", "fragment"),
    [
        (hive(sshPort=0), "hives[0].sshPort", "greater than or equal to 1"),
        (hive(sshPort=70000), "hives[0].sshPort", "less than or equal to 65535"),
        (hive(alias="bad alias"), "hives[0].alias", "is not allowed"),
        (hive(sshUser="root;id"), "hives[0].sshUser", "POSIX user name"),
        (hive(hostname="-oProxyCommand=x"), "hives[0].hostname", "DNS name"),
        (
            hive(installMethod={"git": {"branch": "$(reboot)"}}),
            "hives[0].installMethod.git.branch",
            "git ref name",
        ),
        (
            hive(installMethod={"git": {"branch": "a..b"}}),
            "hives[0].installMethod.git.branch",
            "not a valid git ref",
        ),
        (
            hive(installMethod={"git": {"repo": "--upload-pack=evil"}}),
            "hives[0].installMethod.git.repo",
            "git URL",
        ),
        (
            hive(installMethod={"git": {"branch": "main", "tag": "v1"}}),
            "hives[0].installMethod.git",
            "only one of branch, tag, rev",
        ),
        (hive(workers=[{"type": "CUDA!"}]), "hives[0].workers[0].type", "lowercase name"),
        (
            hive(workers=[{"type": "cpu", "binary": "../../bin/sh"}]),
            "hives[0].workers[0].binary",
            "cargo binary name",
        ),
        (hive(colour="blue"), "hives[0].colour", "Extra inputs are not permitted"),
        (
            hive(installMethod={"svn": {"repo": "x"}}),
            "hives[0].installMethod",
            "",
        ),
    ],
)
def test_invalid_values_are_rejected_with_their_path(
    hive_data: dict[str, object], path: str, fragment: str
) -> None:
    found = problems({"hives": [hive_data]})
    assert any(p == path and fragment in r for p, r in found), found


def test_duplicate_alias_and_target_and_worker_type() -> None:
    ((_, reason),) = problems({"hives": [hive("a"), hive("a")]})
    assert "alias 'a' is used by more than one hive" in reason
    ((_, reason),) = problems({"hives": [hive("a"), hive("b")]})
    assert "hives 'a' and 'b' install to the same account (vince@10.0.0.5:22)" in reason
    ((path, reason),) = problems({"hives": [hive(workers=[{"type": "cpu"}, {"type": "cpu"}])]})
    assert path == "hives[0]" and "worker type 'cpu' appears twice" in reason


def test_error_message_lists_every_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_fleet({"hives": [hive(sshPort=0, alias="x y")]})
    text = str(caught.value)
    assert text.startswith("invalid configuration:")
    assert "hives[0].sshPort" in text and "hives[0].alias" in text


def test_ports_arrive_as_floats_from_the_engine() -> None:
    fleet = parse_fleet({"hives": [hive(sshPort=2222.0)]})
    assert fleet.hives[0].ssh_port == 2222
    with pytest.raises(ConfigError):
        parse_fleet({"hives": [hive(sshPort=22.5)]})
