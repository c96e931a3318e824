"""Verification, the pure half (`decide/verify`): which check a binary passed, from what VERIFY
printed, with the outputs rbee's real binaries give; the version an install records; the
configured check's validation."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from rbee_infra.base.errors import ConfigError
from rbee_infra.config.fleet import VerifyCheck, parse_fleet
from rbee_infra.config.spec import parse_spec
from rbee_infra.decide import verify

pytestmark = pytest.mark.unit

WORKER = "llm-worker-rbee-cpu"
# rbee's real worker at 6ca9100 (clap 4 derive, no `version`), run as its file name
REAL_USAGE = (
    f"Usage: {WORKER} --worker-id <WORKER_ID> --model <MODEL> --model-ref <MODEL_REF> "
    "--port <PORT> --hive-url <HIVE_URL>"
)
REAL_NO_VERSION = (
    f"error: unexpected argument '--version' found\n\n{REAL_USAGE}\n\n"
    "For more information, try '--help'."
)
REAL_HELP = (
    f"CPU-only Candle-based multi-model worker daemon\n\n{REAL_USAGE}\n\nOptions:\n"
    "      --worker-id <WORKER_ID>  Worker ID (UUID) - assigned by pool-managerd\n"
    "  -h, --help                   Print help"
)


def line(check: str, status: int | str, output: str) -> str:
    return f"@@run\t{check}\t{status}\t{base64.b64encode(output.encode()).decode()}\n"


def metadata(*packages: tuple[str, str, list[str]]) -> str:
    return json.dumps(
        {
            "packages": [
                {
                    "name": name,
                    "version": version,
                    "targets": [{"kind": ["bin"], "name": b} for b in bins]
                    + [{"kind": ["lib"], "name": name.replace("-", "_")}],
                }
                for name, version, bins in packages
            ]
        }
    )


def test_parse_report_reads_runs_sha_and_metadata() -> None:
    meta = metadata(("llm-worker-rbee", "0.1.0", [WORKER]))
    text = (
        line("--version", 2, REAL_NO_VERSION + "\n")
        + line("--help", 0, REAL_HELP)
        + "@@run\tbroken\n"
        + line("--odd", "x", "")
        + f"@@sha256\t{'a' * 64}\n@@metadata\t{meta}\nnoise\n"
    )
    report = verify.parse_report(text)
    assert [(r.check, r.exit_status) for r in report.runs] == [
        ("--version", 2), ("--help", 0), ("--odd", None)
    ]
    assert report.runs[0].output == REAL_NO_VERSION
    assert report.sha256 == "a" * 64 and report.metadata == meta
    assert verify.parse_report("@@run\t--help\t0\t%%%\n").runs[0].output == ""


def test_the_real_worker_passes_by_help() -> None:
    runs = (verify.Run("--version", 2, REAL_NO_VERSION), verify.Run("--help", 0, REAL_HELP))
    verdict = verify.judge(WORKER, verify.Report(runs))
    assert (verdict.ok, verdict.passed, verdict.version_line) == (True, "--help", "")


def test_the_real_hive_passes_by_version() -> None:
    report = verify.Report((verify.Run("--version", 0, "rbee-hive 0.1.0"),))
    verdict = verify.judge("rbee-hive", report)
    assert (verdict.passed, verdict.version_line) == ("--version", "rbee-hive 0.1.0")


def test_a_version_that_names_another_program_falls_back_to_help() -> None:
    # a clap command named unlike its binary (rbee's cpu worker is `llorch-cpu-candled`)
    runs = (verify.Run("--version", 0, "llorch-cpu-candled 0.1.0"), verify.Run("--help", 0, REAL_HELP))
    assert verify.judge(WORKER, verify.Report(runs)).passed == "--help"


def test_clap3_usage_heading_counts_as_a_usage_line() -> None:
    runs = (verify.Run("--version", 2, "error"), verify.Run("--help", 0, "x 0.1\n\nUSAGE:\n    x"))
    assert verify.judge("x", verify.Report(runs)).passed == "--help"


def test_no_check_passes_and_the_message_says_why() -> None:
    runs = (
        verify.Run("--version", 2, REAL_NO_VERSION),
        verify.Run("--help", 3, "help check failed"),
    )
    verdict = verify.judge(WORKER, verify.Report(runs))
    assert not verdict.ok
    assert verdict.describe() == (
        f"{WORKER} --version exited 2 (expected '{WORKER}' in the first line): "
        f"error: unexpected argument '--version' found\n{REAL_USAGE}\n"
        "For more information, try '--help'.\n"
        f"{WORKER} --help exited 3 (expected a usage line): help check failed"
    )
    assert verdict.summary() == (
        f"`{WORKER} --version` exited 2: error: unexpected argument '--version' found; "
        f"`{WORKER} --help` exited 3: help check failed"
    )
    quiet = verify.judge(WORKER, verify.Report((verify.Run("--help", None, ""),)))
    assert quiet.describe() == f"{WORKER} --help exited no exit status (expected a usage line): <no output>"
    assert quiet.summary() == f"`{WORKER} --help` exited -: <no output>"
    nothing = verify.judge(WORKER, verify.Report())
    assert nothing.describe() == nothing.summary() == "the binary did not run (no executable file)"


def test_a_configured_check_is_the_only_one() -> None:
    check = VerifyCheck(args=["--worker-id", "x", "--help"], expect="Options:")
    ok = verify.judge(WORKER, verify.Report((verify.Run("configured", 0, REAL_HELP),)), check)
    assert ok.passed == "configured: --worker-id x --help"
    # --version answering does not count when a check is configured
    other = verify.Report((verify.Run("--version", 0, f"{WORKER} 1.0"),))
    assert not verify.judge(WORKER, other, check).ok
    wrong = verify.judge(WORKER, verify.Report((verify.Run("configured", 0, "hi"),)), check)
    assert wrong.describe() == (
        f"{WORKER} --worker-id x --help exited 0 (expected 'Options:' in the output): hi"
    )
    assert verify.verify_args(check) == ["--worker-id", "x", "--help"]
    assert verify.verify_args(None) == []


def spec(source: dict[str, Any], binary: str = WORKER) -> Any:
    return parse_spec(
        {
            "alias": "h",
            "component": "worker",
            "workerType": "cpu",
            "binary": binary,
            "source": source,
            "connection": {"host": "10.0.0.1", "user": "u"},
        }
    )


def test_the_installed_version_comes_from_the_source() -> None:
    commit = "6ca9100" + "0" * 33
    helped = verify.Verdict(passed="--help")
    answered = verify.Verdict(passed="--version", version_line=f"{WORKER} 0.9.0")
    git = spec({"method": "git", "repo": "https://example.org/r.git", "branch": "main"})
    meta = metadata(("rbee-hive", "0.1.0", ["rbee-hive"]), ("llm-worker-rbee", "0.1.0", [WORKER]))
    assert verify.installed_version(git, helped, commit, meta) == "llm-worker-rbee 0.1.0"
    # the package at the commit wins over what the binary says
    assert verify.installed_version(git, answered, commit, meta) == "llm-worker-rbee 0.1.0"
    # no metadata (a cargo without `metadata`): the --version line, else binary and commit
    assert verify.installed_version(git, answered, commit, "") == f"{WORKER} 0.9.0"
    assert verify.installed_version(git, helped, commit, "not json") == f"{WORKER} 6ca910000000"
    release = spec({"method": "release", "tag": "v0.2.0"})
    assert verify.installed_version(release, answered, "f" * 64, "") == f"{WORKER} 0.9.0"
    assert verify.installed_version(release, helped, "f" * 64, "") == f"{WORKER} v0.2.0"
    local = spec({"method": "local", "path": "/tmp/w"})
    assert verify.installed_version(local, helped, "e" * 64, "") == f"{WORKER} sha256:{'e' * 12}"


@pytest.mark.parametrize(
    "text",
    ["", "[]", '{"packages": 3}', '{"packages": [3, {"targets": [{"name": "x"}]}]}'],
)
def test_package_version_tolerates_odd_metadata(text: str) -> None:
    assert verify.package_version(text, "x") is None


def test_package_version_needs_a_bin_target_of_that_name() -> None:
    meta = metadata(("llm-worker-rbee", "0.1.0", ["llm-worker-rbee-cuda"]))
    assert verify.package_version(meta, WORKER) is None
    assert verify.package_version(meta, "llm_worker_rbee") is None  # a lib, not a bin
    assert verify.package_version(meta, "llm-worker-rbee-cuda") == ("llm-worker-rbee", "0.1.0")


def test_recorded_version_line() -> None:
    assert verify.recorded_version_line({"verifiedBy": "--help", "version": "x 1"}) is None
    assert verify.recorded_version_line({"verifiedBy": "--version", "versionOutput": "x 1"}) == "x 1"
    assert verify.recorded_version_line({"version": "x 0.9"}) == "x 0.9"  # an older receipt


def test_the_verify_setting_is_validated_like_every_field() -> None:
    def fleet(check: Any, where: str = "worker") -> Any:
        hive: dict[str, Any] = {"alias": "a", "hostname": "h", "workers": [{"type": "cpu"}]}
        if where == "worker":
            hive["workers"][0]["verify"] = check
        else:
            hive["verify"] = check
        return parse_fleet({"hives": [hive]})

    good = fleet({"args": ["--help"], "expect": "Usage:"})
    assert good.hives[0].workers[0].verify == VerifyCheck(args=["--help"], expect="Usage:")
    assert fleet({"args": ["-V"], "expect": "rbee-hive"}, "hive").hives[0].verify is not None
    with pytest.raises(ConfigError) as caught:
        fleet({"args": ["$(touch x)", "a b"], "expect": "`id`"})
    assert caught.value.problems == [
        (
            "hives[0].workers[0].verify.args[0]",
            "'$(touch x)' is not allowed; expected an argument of letters, digits and "
            "_ . / : = + @ , - (max 64)",
        ),
        (
            "hives[0].workers[0].verify.args[1]",
            "'a b' is not allowed; expected an argument of letters, digits and "
            "_ . / : = + @ , - (max 64)",
        ),
        (
            "hives[0].workers[0].verify.expect",
            "'`id`' is not allowed; expected up to 128 characters of letters, digits, spaces "
            "and _ . , : ; = + / @ ( ) [ ] < > # % ' -",
        ),
    ]
    for bad in ({"args": [], "expect": "x"}, {"args": ["-" * 65], "expect": "x"},
                {"args": ["x"], "expect": " leading space"}, {"args": ["x"] * 9, "expect": "x"},
                {"args": ["x"], "expect": "x", "shell": "sh"}, {"args": ["x"]}):
        with pytest.raises(ConfigError) as caught:
            fleet(bad)
        assert caught.value.problems[0][0].startswith("hives[0].workers[0].verify"), bad
