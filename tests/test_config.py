"""Stack config validation: every bad value is named by its path, before any host is touched."""

from __future__ import annotations

import pytest

from rbee_infra.base.errors import ConfigError
from rbee_infra.config.fleet import GitSource, parse_fleet

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


# --- findings of the security review (named after them) --------------------------------


def test_finding_6_a_rejected_url_does_not_print_its_credential() -> None:
    bad = "https://x-access-token:ghp_s3cr3t$value@example.org/rbee.git"
    (problem,) = problems({"hives": [hive(installMethod={"git": {"repo": bad}})]})
    path, reason = problem
    assert path == "hives[0].installMethod.git.repo"
    assert "ghp_s3cr3t" not in reason and "$value" not in reason
    assert reason.startswith("'https://***@example.org/rbee.git' is not allowed")
    release = {"release": {"tag": "v1", "sha256": "a" * 64,
                           "baseUrl": "https://u:pa ss@mirror.example.org"}}
    (problem,) = problems({"hives": [hive(installMethod=release)]})
    assert "pa ss" not in problem[1] and "***@mirror.example.org" in problem[1]


@pytest.mark.parametrize("repo", ["-ofoo@x:y", "--upload-pack=touch@x:y", "-@h:p"])
def test_finding_7_a_repo_that_git_would_read_as_an_option_is_refused(repo: str) -> None:
    (problem,) = problems({"hives": [hive(installMethod={"git": {"repo": repo}})]})
    assert problem[0] == "hives[0].installMethod.git.repo"
    assert "is not allowed; expected a git URL" in problem[1]


def test_finding_7_every_git_call_ends_options_before_the_repo() -> None:
    from rbee_infra.host import scripts

    text = "\n".join(v for k, v in vars(scripts).items() if k.isupper() and isinstance(v, str))
    calls = [line for line in text.splitlines() if '"$repo"' in line and "git " in line]
    assert len(calls) == 2, calls  # ls-remote, and the fetch of the ref
    assert all('-- "$repo"' in line for line in calls), calls


@pytest.mark.parametrize("repo", ["../..", "owner/..", "owner/.", "../name", "-x/name", "a/b/c"])
def test_finding_9_release_repo_is_owner_slash_name(repo: str) -> None:
    release = {"release": {"repo": repo, "tag": "v1", "sha256": "a" * 64}}
    (problem,) = problems({"hives": [hive(installMethod=release)]})
    assert problem[0] == "hives[0].installMethod.release.repo"
    assert problem[1].endswith("is not allowed; expected owner/name")


def test_finding_9_real_repo_names_still_pass() -> None:
    for repo in ("veighnsche/llama-orch", "a-b/c.d_e", "Org1/.github", "x/y..z"):
        release = {"release": {"repo": repo, "tag": "v1", "sha256": "a" * 64}}
        parse_fleet({"hives": [hive(installMethod=release)]})
