"""Status, the pure half: the assessment of probe results, exit codes, the JSON schema file,
the human rendering, and that status derives exactly the resources the program declares."""

from __future__ import annotations

import io
import json
from typing import Any

import jsonschema
import pulumi
import pytest

from rbee_infra.config.fleet import VerifyCheck, parse_fleet
from rbee_infra.decide import plan, verify
from rbee_infra.decide.facts import InstalledBinary
from rbee_infra.stack.program import declare_fleet, read_stack_config
from rbee_infra.status import collect as status
from rbee_infra.status import render as status_render
from rbee_infra.status.model import SCHEMA_FILE, ConfigSource, StatusReport, schema_text
from tests.program_mocks import install_mocks, unwrap

pytestmark = pytest.mark.unit

REPO = "https://example.org/rbee/llama-orch.git"
COMMIT = "3f2a9c1d0b7e" + "0" * 28
NEWER = "9" * 40
SHA = "a" * 64


def fleet_data() -> dict[str, Any]:
    return {
        "hives": [
            {
                "alias": "gpu-host",
                "hostname": "10.1.0.5",
                "sshUser": "vince",
                "installMethod": {"git": {"repo": REPO, "branch": "main"}},
                "reinstallTrigger": "r1",
                "workers": [
                    {"type": "cuda", "features": ["cuda"]},
                    {"type": "cpu", "version": "v0.1.0", "reinstallTrigger": "w2"},
                    {"type": "metal", "binary": "custom-metal", "features": ["metal", "x"]},
                ],
            }
        ]
    }


def specs(stack: str = "dev") -> dict[str, Any]:
    fleet = parse_fleet(fleet_data())
    hive = fleet.hives[0]
    creds = status.Credentials(private_key_path="~/.ssh/id_ed25519")
    conn = status.connection_for(fleet, hive, creds)
    return {s.worker_type or "hive": s for s in status.hive_specs(fleet, hive, conn, stack)}


def receipt_for(spec: Any, *, commit: str = COMMIT, **changes: Any) -> dict[str, Any]:
    rid = plan.release_id(spec, commit)
    data = json.loads(
        plan.receipt(
            spec,
            iid=plan.install_id(spec),
            rid=rid,
            commit=commit,
            version=f"{spec.binary} 0.2.0",
            sha256=SHA,
            installed_at="2026-01-01T00:00:00+00:00",
            verified_by="--version",
            version_line=f"{spec.binary} 0.2.0",
        )
    )
    data.update(changes)
    return data


def installed(spec: Any, receipt: dict[str, Any] | None, sha: str = SHA) -> InstalledBinary:
    rid = (receipt or {}).get("releaseId", "x")
    link = f"../share/rbee/releases/{spec.install_name}/{rid}/{spec.binary}"
    return InstalledBinary(spec.install_name, "symlink", link, sha, receipt)


def ok_version(spec: Any) -> verify.Report:
    return verify.Report((verify.Run("--version", 0, f"{spec.binary} 0.2.0"),))


# a worker shaped like rbee's: no --version (clap's usage error), --help works
NO_VERSION = verify.Run(
    "--version", 2, "error: unexpected argument '--version' found\n\nUsage: x --port <PORT>"
)
HELPED = verify.Report((NO_VERSION, verify.Run("--help", 0, "About\n\nUsage: x --port <PORT>")))


def test_status_declares_what_the_program_declares() -> None:
    config = {f"rbee:{k}": v for k, v in fleet_data().items()}
    recorder = install_mocks(config)

    @pulumi.runtime.test
    def program() -> Any:
        exports = declare_fleet(*read_stack_config())
        return pulumi.Output.all(*(h["hive"]["path"] for h in exports.values()))

    program()
    derived = specs(stack="test").values()  # the mocks' stack is "test"
    installs = [r.name for r in recorder.resources if "component" in r.inputs]  # not kick-offs
    assert sorted(s.resource_name for s in derived) == sorted(installs)
    for spec in derived:
        inputs = recorder.by_name(spec.resource_name).inputs
        assert unwrap(inputs["source"]) == plan.source_display(spec)
        assert inputs["binary"] == spec.binary
        assert inputs["features"] == spec.features
        assert inputs["reinstallTrigger"] == spec.reinstall_trigger
        assert inputs["stack"] == spec.stack
        assert inputs.get("workerType") == spec.worker_type
        assert inputs["cargo"] == spec.cargo


def test_in_sync() -> None:
    spec = specs()["cuda"]
    result = status.assess(
        spec, installed(spec, receipt_for(spec)), ok_version(spec), commit=COMMIT, stack_known=True
    )
    assert (result.state, result.drift, result.error) == ("in-sync", [], None)
    assert result.installed is not None and result.installed.version_output == (
        "llm-worker-rbee-cuda 0.2.0"
    )
    assert result.path == "~/.local/share/rbee/workers/rbee-worker-cuda"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing", "not installed"),
        ("checksum", "binary changed (sha256 differs from the receipt)"),
        ("features", "features changed: config wants [cuda], installed [cpu]"),
        (
            "source",
            f"source changed: config wants git {REPO} branch main, "
            f"installed from git {REPO} tag v0.1.0",
        ),
        ("commit", f"new commit: main is now at {NEWER[:12]}, installed {COMMIT[:12]}"),
        ("trigger", "reinstall trigger changed"),
        (
            "version-exit",
            "the binary does not run: `llm-worker-rbee-cuda --version` exited 3: version check "
            "failed; `llm-worker-rbee-cuda --help` exited 3: help check failed",
        ),
        (
            "help-usage",
            "the binary does not run: `llm-worker-rbee-cuda --version` exited 2: error: "
            "unexpected argument '--version' found; `llm-worker-rbee-cuda --help` exited 0: "
            "About",
        ),
        (
            "version-line",
            "`--version` says 'llm-worker-rbee-cuda 0.3.0', the receipt recorded "
            "'llm-worker-rbee-cuda 0.2.0'",
        ),
        ("unmanaged", "unmanaged binary present"),
        ("hand-made", "hand-made binary present"),
        ("other", "installed by another resource (worker-elsewhere)"),
    ],
)
def test_drift(case: str, expected: str) -> None:
    spec = specs()["cuda"]
    receipt = receipt_for(spec)
    found: InstalledBinary | None = installed(spec, receipt)
    version: verify.Report | None = ok_version(spec)
    commit = COMMIT
    if case == "missing":
        found, version = None, None
    elif case == "checksum":
        found = installed(spec, receipt, sha="b" * 64)
    elif case == "features":
        receipt["features"] = ["cpu"]
    elif case == "source":
        receipt["source"] = {"method": "git", "repo": REPO, "tag": "v0.1.0"}
    elif case == "commit":
        commit = NEWER
    elif case == "trigger":
        receipt["releaseId"] = "3f2a9c1d0b7e-cuda-rdeadbe"
    elif case == "version-exit":
        runs = (verify.Run("--version", 3, "version check failed"),)
        version = verify.Report((*runs, verify.Run("--help", 3, "help check failed")))
    elif case == "help-usage":  # --help exits 0, but prints no usage line
        version = verify.Report((NO_VERSION, verify.Run("--help", 0, "About\nno usage here")))
    elif case == "version-line":
        version = verify.Report((verify.Run("--version", 0, "llm-worker-rbee-cuda 0.3.0"),))
    elif case == "unmanaged":
        found = installed(spec, None)
    elif case == "hand-made":
        found = InstalledBinary(spec.install_name, "file", "", SHA, None)
    elif case == "other":
        receipt.update(installId="someone-else", resource="worker-elsewhere")
    result = status.assess(spec, found, version, commit=commit, stack_known=True)
    assert result.drift == [expected]
    assert result.state == ("missing" if case == "missing" else "drift")


def test_hives_conf_mode_accepts_any_stack_but_not_another_resource() -> None:
    spec = specs(stack="")["hive"]
    theirs = spec.model_copy(update={"stack": "prod"})
    receipt = receipt_for(theirs)
    found = installed(theirs, receipt)
    mine = status.assess(spec, found, ok_version(spec), commit=COMMIT, stack_known=False)
    assert mine.state == "in-sync"
    strict = status.assess(spec, found, ok_version(spec), commit=COMMIT, stack_known=True)
    assert strict.drift == ["installed by another resource (hive-gpu-host)"]


def test_binary_missing_behind_a_receipt() -> None:
    spec = specs()["hive"]
    gone = InstalledBinary(spec.install_name, "missing", "", None, receipt_for(spec))
    result = status.assess(spec, gone, None, commit=None, stack_known=True)
    assert (result.state, result.drift, result.installed) == ("missing", ["binary missing"], None)


def test_resolve_error_makes_the_component_an_error() -> None:
    spec = specs()["hive"]
    message = "hive gpu-host: resolve failed (exit 128): git ls-remote\nfatal: nope"
    result = status.assess(
        spec,
        installed(spec, receipt_for(spec)),
        ok_version(spec),
        commit=None,
        stack_known=True,
        error=message,
    )
    assert (result.state, result.error) == ("error", message)


def test_a_worker_without_version_is_in_sync_by_help() -> None:
    spec = specs()["cuda"]
    receipt = receipt_for(spec, version="llm-worker-rbee 0.2.0", verifiedBy="--help")
    receipt.pop("versionOutput")
    result = status.assess(spec, installed(spec, receipt), HELPED, commit=COMMIT, stack_known=True)
    assert (result.state, result.drift) == ("in-sync", [])
    assert result.installed is not None
    assert (result.installed.check, result.installed.verified_by) == ("--help", "--help")
    assert (result.installed.version_exit, result.installed.version) == (2, "llm-worker-rbee 0.2.0")
    assert result.installed.version_output == "error: unexpected argument '--version' found"


def test_an_older_receipt_compares_its_version_with_the_version_line() -> None:
    spec = specs()["hive"]
    old = receipt_for(spec)
    for key in ("verifiedBy", "versionOutput"):
        old.pop(key)
    same = status.assess(spec, installed(spec, old), ok_version(spec), commit=COMMIT, stack_known=True)
    assert same.drift == [] and same.installed is not None and same.installed.verified_by is None
    newer = verify.Report((verify.Run("--version", 0, "rbee-hive 0.3.0"),))
    moved = status.assess(spec, installed(spec, old), newer, commit=COMMIT, stack_known=True)
    assert moved.drift == [
        "`--version` says 'rbee-hive 0.3.0', the receipt recorded 'rbee-hive 0.2.0'"
    ]


def test_a_configured_check_replaces_version_and_help() -> None:
    spec = specs()["cpu"].model_copy(
        update={"verify": VerifyCheck(args=["--selftest"], expect="self test ok")}
    )
    receipt = receipt_for(spec, verifiedBy="configured: --selftest")
    receipt.pop("versionOutput")
    passed = verify.Report((verify.Run("configured", 0, "self test ok"),))
    found = installed(spec, receipt)
    result = status.assess(spec, found, passed, commit=COMMIT, stack_known=True)
    assert result.drift == [] and result.installed is not None
    assert result.installed.check == "configured: --selftest"
    assert result.installed.version_output is None and result.installed.version_exit is None
    failing = verify.Report((verify.Run("configured", 1, "self test failed"),))
    result = status.assess(spec, found, failing, commit=COMMIT, stack_known=True)
    assert result.drift == [
        "the binary does not run: `llm-worker-rbee-cpu --selftest` exited 1: self test failed"
    ]


def test_extra_names_group_paths_by_install() -> None:
    grouped = status.extra_names(
        [
            ".local/share/rbee/receipts/rbee-worker-rocm.json",
            ".local/share/rbee/releases/rbee-worker-rocm",
            ".local/share/rbee/workers/rbee-worker-rocm",
            ".local/bin/rbee-hive.pre-rbee-infra",
        ]
    )
    assert list(grouped) == ["rbee-hive.pre-rbee-infra", "rbee-worker-rocm"]
    assert len(grouped["rbee-worker-rocm"]) == 3


def report_of(states: list[str]) -> StatusReport:
    hives = []
    for i, state in enumerate(states):
        spec = specs()["hive"]
        comp = status.assess(
            spec,
            installed(spec, receipt_for(spec)),
            ok_version(spec),
            commit=COMMIT,
            stack_known=True,
        )
        if state == "drift":
            comp = comp.model_copy(update={"state": "drift", "drift": ["binary missing"]})
        hives.append(
            status.HiveStatus(
                alias=f"h{i}",
                host="10.0.0.1",
                port=22,
                user="u",
                reachable=state != "unreachable",
                state=state,
                error="hive h: connect failed: refused" if state == "unreachable" else None,
                components=[comp],
                extras=[],
            )
        )
    source = ConfigSource(kind="stack", stack="dev", file="stacks/Pulumi.dev.yaml")
    return StatusReport(config=source, summary=status.summarize(hives), hives=hives)


@pytest.mark.parametrize(
    ("states", "code"),
    [
        (["in-sync", "in-sync"], 0),
        (["in-sync", "drift"], 1),
        (["drift", "unreachable"], 2),
        (["error", "in-sync"], 2),
        ([], 0),
    ],
)
def test_exit_codes(states: list[str], code: int) -> None:
    report = report_of(states)
    assert report.summary.exit_code == code
    jsonschema.validate(json.loads(report.to_json()), json.loads(SCHEMA_FILE.read_text()))


def test_schema_file_is_current() -> None:
    assert SCHEMA_FILE.read_text() == schema_text(), (
        "regenerate with: python -m rbee_infra.status.model"
    )


def test_schema_rejects_what_scripts_must_not_see() -> None:
    doc = json.loads(report_of(["in-sync"]).to_json())
    schema = json.loads(SCHEMA_FILE.read_text())
    doc["hives"][0]["state"] = "fine"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


def test_render_lists_every_problem() -> None:
    out = io.StringIO()
    status_render.render(report_of(["in-sync", "drift", "unreachable"]), file=out)
    text = out.getvalue()
    assert "hive h1: binary missing" in text
    assert "hive h: connect failed: refused" in text
    assert "3 hive(s): 1 in sync, 1 drift, 1 unreachable, 0 error" in text


def test_secrets_in_the_stack_file_are_left_out(
    tmp_path: Any, monkeypatch: Any, capsys: Any
) -> None:
    from rbee_infra import cli
    from rbee_infra.config import stackfile

    (tmp_path / "Pulumi.yaml").write_text("name: rbee-infra\nruntime: python\n")
    doc = {
        "config": {
            "rbee:sshPrivateKey": {"secure": "v1:AAAA"},
            "rbee:commands": [{"hive": "a", "name": "x"}],  # read by the program, not status
            "rbee:hives": [
                {
                    "alias": "a",
                    "hostname": "10.0.0.1",
                    "sshUser": "u",
                    "connection": {"host": "10.0.0.1", "privateKey": {"secure": "v1:BBBB"}},
                }
            ],
        }
    }
    (tmp_path / "Pulumi.dev.yaml").write_text(stackfile.dump(doc))
    data, secrets = stackfile.fleet_data(doc)
    assert secrets == ["sshPrivateKey", "hives[0].connection.privateKey"]
    assert data["hives"][0]["connection"] == {"host": "10.0.0.1"}
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/id_* to fall back on
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    assert cli.main(["status", "--project-dir", str(tmp_path)]) == 3
    assert capsys.readouterr().err == (
        "rbee-infra: invalid configuration:\n  --key: rbee:sshPrivateKey is a Pulumi secret "
        "that status cannot decrypt; pass the same key as --key PATH\n"
    )
