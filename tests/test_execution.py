"""The execution layer against a fake SSH transport: the order of remote steps, the arguments
they get, and the errors raised when a step fails (host, phase, exit code, stderr tail)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from rbee_infra.base import layout
from rbee_infra.base.errors import CommandError, HostError, PhaseTimeout, VerifyError
from rbee_infra.config.spec import parse_spec
from rbee_infra.decide import plan
from rbee_infra.host.ssh import Result
from rbee_infra.install import lifecycle
from tests.fake_ssh import FakeHost, patch_transport

pytestmark = pytest.mark.unit

COMMIT = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "ghp_s3cr3ttoken"


def spec(**extra: Any) -> Any:
    props = {
        "alias": "gpu-host",
        "component": "hive",
        "binary": "rbee-hive",
        "source": {"method": "git", "repo": f"https://{TOKEN}@example.org/r.git", "tag": "v0.2.0"},
        "connection": {"host": "127.0.0.9", "port": 2222, "user": "rbee", "knownHosts": "/k"},
        "stack": "dev",
        "resourceName": "hive-gpu-host",
    }
    props.update(extra)
    return parse_spec(props)


# a host that passes preflight: git, flock, a Rust toolchain, free space
CAPABLE = (
    "tool\tgit\t/usr/bin/git\ntool\tflock\t/usr/bin/flock\n"
    "cargo\tcargo 1.80.0\nrustc\trustc 1.80.0\ndisk\tdata\t10485760\ndisk\tbin\t10485760\n"
)


def probe_reply(receipt: dict[str, Any] | None = None, link: str = "") -> Result:
    rec = base64.b64encode(json.dumps(receipt).encode()).decode() if receipt else ""
    kind = "symlink" if link else "missing"
    sha = "a" * 64 if link else "-"
    item = f"item\trbee-hive\t{kind}\t{link}\t{sha}\t{rec}\n"
    return Result(0, f"home\t/home/rbee\n{CAPABLE}{item}", "")


def runs(*items: tuple[str, int, str], sha: str = "b" * 64, metadata: str = "") -> Result:
    """VERIFY's reply: its runs of the binary, the sha256, the cargo metadata."""
    out = "".join(
        f"@@run\t{check}\t{code}\t{base64.b64encode(text.encode()).decode()}\n"
        for check, code, text in items
    )
    out += f"@@sha256\t{sha}\n" if sha else ""
    out += f"@@metadata\t{metadata}\n" if metadata else ""
    return Result(0, out, "")


METADATA = json.dumps(
    {
        "packages": [
            {"name": "rbee-hive", "version": "0.2.0", "targets": [{"kind": ["bin"], "name": "rbee-hive"}]},
            {
                "name": "llm-worker-rbee",
                "version": "0.1.0",
                "targets": [{"kind": ["bin"], "name": "llm-worker-rbee-cpu"}],
            },
        ]
    }
)


def happy_host(**overrides: Result) -> FakeHost:
    replies = {
        "PROBE": probe_reply(),
        "RESOLVE": Result(0, f"aaaa\trefs/tags/v0.2.0\n{COMMIT}\trefs/tags/v0.2.0^{{}}\n", ""),
        "START_JOB": Result(0, "started\n", ""),
        "WAIT_JOB": Result(0, f"exit\t0\nphase\tinstall\ncommit\t{COMMIT}\n", ""),
        "VERIFY": runs(("--version", 0, "rbee-hive 0.2.0\n"), metadata=METADATA),
    }
    replies.update(overrides)
    return FakeHost(replies=replies)


def test_install_runs_probe_resolve_build_verify_activate(monkeypatch: pytest.MonkeyPatch) -> None:
    host = happy_host()
    patch_transport(monkeypatch, host)
    s = spec()
    result = asyncio.run(lifecycle.install(s, updating=False))
    assert host.names() == ["PROBE", "RESOLVE", "START_JOB", "WAIT_JOB", "VERIFY", "ACTIVATE"]
    assert host.args_of("RESOLVE")[1:] == ("refs/tags/v0.2.0", "refs/tags/v0.2.0^{}")
    rid = f"{COMMIT[:12]}"
    assert result.release_id == rid and result.commit == COMMIT
    assert result.version == "rbee-hive 0.2.0" and result.sha256 == "b" * 64
    assert result.verified_by == "--version"
    assert result.outputs()["verifiedBy"] == "--version"
    assert result.install_path == "/home/rbee/.local/bin/rbee-hive"
    # one round trip: the release's binary, its name, its sha256, the build's cargo metadata
    job = host.args_of("START_JOB")[0]
    assert host.args_of("VERIFY") == (
        "20", f".local/share/rbee/releases/rbee-hive/{rid}/rbee-hive", "rbee-hive", "1",
        f"{job}/metadata.json",
    )
    activate = host.args_of("ACTIVATE")
    assert activate[3:6] == (
        ".local/bin/rbee-hive",
        f"../share/rbee/releases/rbee-hive/{rid}/rbee-hive",
        ".local/share/rbee/receipts/rbee-hive.json",
    )
    receipt = json.loads(activate[6])
    assert receipt["installId"] == plan.install_id(s) and receipt["commit"] == COMMIT
    assert (receipt["version"], receipt["verifiedBy"]) == ("rbee-hive 0.2.0", "--version")
    assert receipt["versionOutput"] == "rbee-hive 0.2.0"
    assert TOKEN not in activate[6]
    assert activate[9:] == (rid,)  # nothing else to keep on a first install


def test_update_keeps_the_previous_release_for_rollback(monkeypatch: pytest.MonkeyPatch) -> None:
    s = spec()
    mine = {"installId": plan.install_id(s), "sha256": "a" * 64}
    host = happy_host(PROBE=probe_reply(mine, "../share/rbee/releases/rbee-hive/old1/rbee-hive"))
    patch_transport(monkeypatch, host)
    asyncio.run(lifecycle.install(s, updating=True))
    assert host.args_of("ACTIVATE")[9:] == (COMMIT[:12], "old1")


def test_failed_build_cleans_up_and_reports_phase_exit_and_tail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = happy_host(
        WAIT_JOB=Result(0, "exit\t101\nphase\tbuild\n", ""),
        JOB_LOG=Result(
            0, "== build\n   Compiling rbee-hive\nerror[E0425]: cannot find value\n", ""
        ),
    )
    patch_transport(monkeypatch, host)
    with pytest.raises(CommandError) as caught:
        asyncio.run(lifecycle.install(spec(), updating=False))
    error = caught.value
    assert (error.host, error.phase, error.exit_status) == ("hive gpu-host", "build", 101)
    assert str(error) == (
        "hive gpu-host: build failed (exit 101): cargo build --release --bin rbee-hive\n"
        "error[E0425]: cannot find value"
    )
    assert host.names()[-1] == "REMOVE"
    remove = host.args_of("REMOVE")
    # the cleanup never waits for another resource's build (its build lock: "now")
    assert remove[3] == "abort-create" and remove[11:] == ("now", COMMIT[:12])


def test_failed_verify_never_activates_and_keeps_the_build_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = happy_host(
        VERIFY=runs(("--version", 3, "version check failed\n"), ("--help", 3, "help check failed"))
    )
    patch_transport(monkeypatch, host)
    with pytest.raises(VerifyError) as caught:
        asyncio.run(lifecycle.install(spec(), updating=True))
    assert "ACTIVATE" not in host.names()
    remove = host.args_of("REMOVE")
    # only the failed release goes (REMOVE removes a checkout only when deleting)
    assert remove[3] == "abort-update" and remove[11:] == ("now", COMMIT[:12])
    assert str(caught.value) == (
        "hive gpu-host: verify failed: rbee-hive --version exited 3 "
        "(expected 'rbee-hive' in the first line): version check failed\n"
        "rbee-hive --help exited 3 (expected a usage line): help check failed"
    )


CPU_WORKER = {"component": "worker", "workerType": "cpu", "binary": "llm-worker-rbee-cpu"}


def worker_spec(**extra: Any) -> Any:
    return spec(**CPU_WORKER, features=["cpu"], resourceName="worker-gpu-host-cpu", **extra)


def worker_probe() -> Result:
    item = "item\trbee-worker-cpu\tmissing\t\t-\t\n"
    return Result(0, f"home\t/home/rbee\n{CAPABLE}{item}", "")


REAL_NO_VERSION = (
    "error: unexpected argument '--version' found\n\nUsage: llm-worker-rbee-cpu --worker-id "
    "<WORKER_ID> --model <MODEL> --model-ref <MODEL_REF> --port <PORT> --hive-url <HIVE_URL>\n\n"
    "For more information, try '--help'.\n"
)
REAL_HELP = "CPU-only Candle-based multi-model worker daemon\n\nUsage: llm-worker-rbee-cpu [OPTIONS]\n"


def test_a_worker_without_version_is_verified_by_help_and_records_the_package_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = happy_host(
        PROBE=worker_probe(),
        VERIFY=runs(("--version", 2, REAL_NO_VERSION), ("--help", 0, REAL_HELP), metadata=METADATA),
    )
    patch_transport(monkeypatch, host)
    result = asyncio.run(lifecycle.install(worker_spec(), updating=False))
    assert (result.version, result.verified_by) == ("llm-worker-rbee 0.1.0", "--help")
    receipt = json.loads(host.args_of("ACTIVATE")[6])
    assert (receipt["version"], receipt["verifiedBy"], receipt["commit"]) == (
        "llm-worker-rbee 0.1.0", "--help", COMMIT
    )
    assert "versionOutput" not in receipt


def test_a_configured_check_reaches_the_host_as_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = happy_host(
        PROBE=worker_probe(), VERIFY=runs(("configured", 0, "self test: ok\n"))
    )
    patch_transport(monkeypatch, host)
    check = {"args": ["--self-test", "--quick"], "expect": "self test: ok"}
    result = asyncio.run(lifecycle.install(worker_spec(verify=check), updating=False))
    assert host.args_of("VERIFY")[2:3] + host.args_of("VERIFY")[5:] == (
        "llm-worker-rbee-cpu", "--self-test", "--quick"
    )
    assert result.verified_by == "configured: --self-test --quick"
    # no cargo metadata (a build job of an older version): the binary and the commit
    assert result.version == f"llm-worker-rbee-cpu {COMMIT[:12]}"


def test_a_binary_without_a_sha256_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    host = happy_host(VERIFY=runs(("--version", 0, "rbee-hive 0.2.0"), sha=""))
    patch_transport(monkeypatch, host)
    with pytest.raises(VerifyError) as caught:
        asyncio.run(lifecycle.install(spec(), updating=False))
    assert str(caught.value) == (
        "hive gpu-host: verify failed: could not read the sha256 of "
        f".local/share/rbee/releases/rbee-hive/{COMMIT[:12]}/rbee-hive"
    )
    assert "ACTIVATE" not in host.names() and host.args_of("REMOVE")[3] == "abort-create"


def test_a_verify_that_times_out_removes_only_its_release(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def hang(_: tuple[str, ...]) -> Result:
        raise PhaseTimeout("hive gpu-host", "verify", 60)

    host = happy_host(VERIFY=hang)  # type: ignore[arg-type]
    patch_transport(monkeypatch, host)
    with pytest.raises(PhaseTimeout):
        asyncio.run(lifecycle.install(spec(), updating=False))
    remove = host.args_of("REMOVE")
    assert remove[3] == "abort-create" and remove[11:] == ("now", COMMIT[:12])


def test_unknown_ref_is_a_resolve_error(monkeypatch: pytest.MonkeyPatch) -> None:
    host = happy_host(RESOLVE=Result(0, "", ""))
    patch_transport(monkeypatch, host)
    with pytest.raises(HostError) as caught:
        asyncio.run(lifecycle.install(spec(), updating=False))
    assert str(caught.value) == (
        "hive gpu-host: resolve failed: tag 'v0.2.0' not found in https://***@example.org/r.git"
    )
    assert host.names() == ["PROBE", "RESOLVE"]


def test_reused_job_skips_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    host = happy_host(START_JOB=Result(0, "reuse\n", ""))
    patch_transport(monkeypatch, host)
    asyncio.run(lifecycle.install(spec(), updating=False))
    assert "WAIT_JOB" not in host.names()


def test_job_dir_is_per_install_and_build_inputs() -> None:
    a = layout.job_dir("iid1", COMMIT, "rbee-hive", "", "", "False")
    assert a.startswith(".local/share/rbee/jobs/iid1/")
    assert a != layout.job_dir("iid1", COMMIT, "rbee-hive", "cpu", "", "False")


def test_a_long_build_reports_that_it_is_alive(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The install waits for the build job at most 30 s at a time and reports, between waits,
    the job's phase, the crates cargo compiled so far and its age."""
    waits = iter([
        Result(0, "exit\trunning\nphase\tbuild\ncompiled\t212\nstarted\t1000\nnow\t1185\n", ""),
        Result(0, f"exit\t0\nphase\tinstall\ncommit\t{COMMIT}\n", ""),
    ])
    host = happy_host(WAIT_JOB=lambda args: next(waits))
    patch_transport(monkeypatch, host)
    asyncio.run(lifecycle.install(spec(), updating=False))
    assert next(a for n, a in host.calls if n == "WAIT_JOB")[1] == "30"
    assert "hive gpu-host: building rbee-hive: 212 crates compiled, 3m 05s (phase build)" in (
        capsys.readouterr().err
    )
