"""`rbee-infra status` (and `import`) against real sshd hosts with binaries installed by the real
install lifecycle: in sync, drift (changed checksum, config, new commit), an extra install,
a host down. The CLI runs in-process through `rbee_infra.cli.main`, as the console script does.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from rbee_infra import cli
from rbee_infra.config import stackfile
from rbee_infra.config.fleet import FleetConfig
from rbee_infra.config.spec import InstallSpec
from rbee_infra.install import lifecycle
from rbee_infra.status import collect as status
from rbee_infra.status.model import SCHEMA_FILE
from tests.harness.fixture_repo import RbeeRepo, make_rbee_repo
from tests.harness.hosts import (
    HarnessUnavailable,
    HostSet,
    check_available,
    free_port,
    start_hosts,
)

pytestmark = pytest.mark.hosts

STACK = "status"
SCHEMA = json.loads(SCHEMA_FILE.read_text())


@dataclass
class Fleet:
    hosts: HostSet
    repo: RbeeRepo
    project: Path
    conf: Path
    fleet: FleetConfig
    specs: dict[str, InstallSpec]  # "gpu-host/hive", "cpu-host/cpu", ...

    def status(self, *extra: str, capsys: Any) -> tuple[int, dict[str, Any]]:
        code = cli.main(
            ["status", "--project-dir", str(self.project), "--stack", STACK, "--json", *extra]
        )
        doc = json.loads(capsys.readouterr().out)
        jsonschema.validate(doc, SCHEMA)
        return code, doc


def hives_conf(hosts: HostSet, repo_url: str, hive_port: int) -> str:
    gpu, cpu = hosts[0], hosts[1]
    return f"""
[[hive]]
alias = "gpu-host"
hostname = "{gpu.address}"
ssh_user = "{gpu.user}"
ssh_port = {gpu.port}
hive_port = {hive_port}
install_method = {{ git = {{ repo = "{repo_url}", branch = "main" }} }}
workers = [
    {{ type = "cuda", version = "latest", features = ["cuda"] }},
]

[[hive]]
alias = "cpu-host"
hostname = "{cpu.address}"
ssh_user = "{cpu.user}"
ssh_port = {cpu.port}
auto_start = false
install_method = {{ git = {{ repo = "{repo_url}", branch = "main" }} }}
workers = [
    {{ type = "cpu", version = "moving", features = ["cpu"] }},
]
"""


def credentials(hosts: HostSet) -> status.Credentials:
    return status.Credentials(
        private_key_path=str(hosts.client_key_path), known_hosts=str(hosts.known_hosts_path)
    )


def specs_of(fleet: FleetConfig, hosts: HostSet, stack: str = STACK) -> dict[str, InstallSpec]:
    out = {}
    for hive in fleet.hives:
        conn = status.connection_for(fleet, hive, credentials(hosts))
        for spec in status.hive_specs(fleet, hive, conn, stack):
            out[f"{hive.alias}/{spec.worker_type or 'hive'}"] = spec
    return out


async def install_all(specs: list[InstallSpec]) -> None:
    await asyncio.gather(*(lifecycle.install(s, updating=False) for s in specs))


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    try:
        check_available()
    except HarnessUnavailable as error:
        pytest.skip(str(error))
    work = Path(tempfile.mkdtemp(prefix="rbee-status-"))
    work.chmod(0o755)
    repo = make_rbee_repo(work)
    hosts = start_hosts(2)
    try:
        project = work / "project"
        project.mkdir()
        (project / "Pulumi.yaml").write_text(
            "name: rbee-infra\nruntime: python\nstackConfigDir: stacks\n"
        )
        conf = work / "hives.conf"
        conf.write_text(hives_conf(hosts, repo.url, free_port()))
        # the stack config comes from `rbee-infra import`, then gets the SSH settings
        assert cli.main(["import", str(conf), "--stack", STACK, "--project-dir", str(project)]) == 0
        path = stackfile.stack_file(project, STACK)
        doc = stackfile.load(path)
        doc["config"]["rbee:sshPrivateKeyPath"] = str(hosts.client_key_path)
        doc["config"]["rbee:knownHosts"] = str(hosts.known_hosts_path)
        for hive in doc["config"]["rbee:hives"]:
            hive["checkPlatform"] = False  # the fixture's cuda worker builds without a GPU
        stackfile.write(path, doc)
        parsed, _ = cli.load_stack_fleet(path)
        specs = specs_of(parsed, hosts)

        # hosts build concurrently; on one host the hive and its worker share a build dir
        async def per_host() -> None:
            await asyncio.gather(
                install_all([specs["gpu-host/hive"], specs["gpu-host/cuda"]]),
                install_all([specs["cpu-host/hive"], specs["cpu-host/cpu"]]),
            )

        asyncio.run(per_host())
        yield Fleet(hosts, repo, project, conf, parsed, specs)
    finally:
        hosts.close()
        repo.remove()
        shutil.rmtree(work, ignore_errors=True)


def by_alias(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {h["alias"]: h for h in doc["hives"]}


def component(doc: dict[str, Any], alias: str, name: str) -> dict[str, Any]:
    return next(c for c in by_alias(doc)[alias]["components"] if c["name"] == name)


def test_in_sync_reports_versions_and_commits(fleet: Fleet, capsys: Any) -> None:
    code, doc = fleet.status(capsys=capsys)
    assert code == 0
    assert doc["summary"] == {
        "hives": 2,
        "inSync": 2,
        "drift": 0,
        "unreachable": 0,
        "error": 0,
        "exitCode": 0,
    }
    main = fleet.repo.commit_of("main")
    # the hive answers --version; the workers, like rbee's, do not (clap: exit 2) and pass by
    # --help. The version is the package's at the commit (cargo metadata), for both.
    no_version = "error: unexpected argument '--version' found"
    expected = {
        ("gpu-host", "rbee-hive"): ("rbee-hive 0.2.0", "rbee-hive 0.2.0", 0, "--version"),
        ("gpu-host", "rbee-worker-cuda"): ("llm-worker-rbee 0.2.0", no_version, 2, "--help"),
        ("cpu-host", "rbee-hive"): ("rbee-hive 0.2.0", "rbee-hive 0.2.0", 0, "--version"),
        ("cpu-host", "rbee-worker-cpu"): ("llm-worker-rbee 0.2.0", no_version, 2, "--help"),
    }
    for (alias, name), (version, line, code, check) in expected.items():
        c = component(doc, alias, name)
        assert c["state"] == "in-sync", c
        assert c["drift"] == [] and c["error"] is None
        assert c["installed"]["version"] == version
        assert c["installed"]["versionOutput"] == line
        assert c["installed"]["versionExit"] == code
        assert c["installed"]["check"] == c["installed"]["verifiedBy"] == check
        assert c["installed"]["commit"] == main == c["desired"]["commit"]
        assert c["installed"]["stack"] == STACK
    assert component(doc, "cpu-host", "rbee-worker-cpu")["desired"]["ref"] == "moving"
    for hive in doc["hives"]:
        assert hive["reachable"] is True and hive["extras"] == []
        assert hive["facts"]["os"] == "Linux" and hive["facts"]["cargo"].startswith("cargo ")
    # gpu-host has autoStart (rbee's default): its hive runs on hive_port; cpu-host's does not
    gpu_port = fleet.fleet.hives[0].hive_port
    pid = int(fleet.hosts[0].run("cat .local/share/rbee/hive.pid").stdout)
    assert by_alias(doc)["gpu-host"]["service"] == {
        "autoStart": True,
        "mode": "pidfile",
        "state": "running",
        "pid": pid,
        "port": gpu_port,
        "health": None,
    }
    assert by_alias(doc)["cpu-host"]["service"]["state"] == "stopped"
    assert by_alias(doc)["cpu-host"]["service"]["autoStart"] is False

    # people get a table; the same facts, exit code too
    assert cli.main(["status", "--project-dir", str(fleet.project), "--stack", STACK]) == 0
    out = capsys.readouterr().out
    assert "llm-worker-rbee 0.2.0 @ " in out  # the package version, with the commit
    assert f"hive gpu-host: service running (pid {pid}, port {gpu_port}, pidfile)" in out
    assert "2 hive(s): 2 in sync, 0 drift, 0 unreachable, 0 error" in out


def test_hives_conf_mode_sees_the_same_installs(fleet: Fleet, capsys: Any) -> None:
    args = ["status", "--config", str(fleet.conf), "--json", "--no-resolve"]
    args += ["--key", str(fleet.hosts.client_key_path)]
    args += ["--known-hosts", str(fleet.hosts.known_hosts_path)]
    assert cli.main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    jsonschema.validate(doc, SCHEMA)
    assert doc["config"] == {"kind": "hives.conf", "stack": None, "file": str(fleet.conf)}
    assert [h["state"] for h in doc["hives"]] == ["in-sync", "in-sync"]
    assert component(doc, "gpu-host", "rbee-hive")["desired"]["commit"] is None


def test_changed_checksum_is_drift(fleet: Fleet, capsys: Any) -> None:
    host = fleet.hosts[0]
    target = host.run("readlink -f .local/share/rbee/workers/rbee-worker-cuda").stdout.strip()
    host.run(f"cp '{target}' '{target}.orig' && printf 'tampered' >> '{target}'")
    try:
        code, doc = fleet.status(capsys=capsys)
    finally:
        host.run(f"mv -f '{target}.orig' '{target}'")
    assert code == 1
    cuda = component(doc, "gpu-host", "rbee-worker-cuda")
    assert cuda["state"] == "drift"
    assert cuda["drift"] == ["binary changed (sha256 differs from the receipt)"]
    assert (
        cuda["installed"]["sha256"]
        != component(doc, "gpu-host", "rbee-hive")["installed"]["sha256"]
    )
    assert by_alias(doc)["cpu-host"]["state"] == "in-sync"
    assert doc["summary"]["drift"] == 1 and doc["summary"]["exitCode"] == 1
    # and it is gone once the binary is back
    assert fleet.status(capsys=capsys)[0] == 0


def test_config_drift_and_missing_worker(fleet: Fleet, capsys: Any) -> None:
    path = stackfile.stack_file(fleet.project, STACK)
    original = path.read_text()
    doc = stackfile.load(path)
    hives = doc["config"]["rbee:hives"]
    hives[0]["workers"].append({"type": "metal", "version": "latest", "features": ["metal"]})
    hives[1]["installMethod"] = {"method": "git", "repo": fleet.repo.url, "tag": "v0.1.0"}
    stackfile.write(path, doc)
    try:
        code, report = fleet.status(capsys=capsys)
    finally:
        path.write_text(original)
    assert code == 1
    metal = component(report, "gpu-host", "rbee-worker-metal")
    assert metal["state"] == "missing" and metal["installed"] is None
    assert metal["drift"] == ["not installed"]
    url = fleet.repo.url
    hive = component(report, "cpu-host", "rbee-hive")
    assert hive["state"] == "drift"
    assert hive["drift"] == [
        f"source changed: config wants git {url} tag v0.1.0, installed from git {url} branch main"
    ]
    assert hive["desired"]["commit"] == fleet.repo.commit_of("v0.1.0")
    assert component(report, "gpu-host", "rbee-hive")["state"] == "in-sync"


def test_unknown_ref_is_an_error_on_that_worker(fleet: Fleet, capsys: Any) -> None:
    path = stackfile.stack_file(fleet.project, STACK)
    original = path.read_text()
    doc = stackfile.load(path)
    doc["config"]["rbee:hives"][1]["workers"][0]["version"] = "no-such-branch"
    stackfile.write(path, doc)
    try:
        code, report = fleet.status(capsys=capsys)
    finally:
        path.write_text(original)
    assert code == 2
    cpu = component(report, "cpu-host", "rbee-worker-cpu")
    assert cpu["state"] == "error"
    assert cpu["error"] == (
        f"worker cpu-host/cpu: resolve failed: branch 'no-such-branch' not found in "
        f"{fleet.repo.url}"
    )
    assert by_alias(report)["cpu-host"]["state"] == "error"
    assert component(report, "cpu-host", "rbee-hive")["state"] == "in-sync"
    assert report["summary"]["error"] == 1


def test_installs_of_another_stack_are_not_ours(fleet: Fleet, capsys: Any) -> None:
    other = stackfile.stack_file(fleet.project, "other")
    other.write_text(stackfile.stack_file(fleet.project, STACK).read_text())
    code = cli.main(["status", "--project-dir", str(fleet.project), "--stack", "other", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    hive = component(report, "cpu-host", "rbee-hive")
    assert hive["drift"] == ["installed by another resource (hive-cpu-host)"]
    assert hive["installed"]["stack"] == STACK


def test_new_upstream_commit_is_drift(fleet: Fleet, capsys: Any) -> None:
    moved = fleet.repo.advance_branch("moving", "0.3.0")
    try:
        code, current = fleet.status(capsys=capsys)
        skipped, unresolved = fleet.status("--no-resolve", capsys=capsys)
    finally:
        fleet.repo.git("push", "-q", "--force", "origin", "main:moving")
    assert code == 1
    cpu = component(current, "cpu-host", "rbee-worker-cpu")
    main = fleet.repo.commit_of("main")
    assert cpu["drift"] == [f"new commit: moving is now at {moved[:12]}, installed {main[:12]}"]
    assert cpu["desired"]["commit"] == moved
    assert component(current, "cpu-host", "rbee-hive")["state"] == "in-sync"
    # --no-resolve does not ask where the branch is: no commit drift to see
    assert skipped == 0
    assert component(unresolved, "cpu-host", "rbee-worker-cpu")["desired"]["commit"] is None


def test_source_change_is_drift_in_hives_conf_mode(fleet: Fleet, capsys: Any, tmp_path: Path):
    conf = tmp_path / "pinned.conf"
    text = fleet.conf.read_text().replace(
        '{ type = "cpu", version = "moving"', '{ type = "cpu", version = "v0.1.0"'
    )
    conf.write_text(text)
    args = ["status", "--config", str(conf), "--json", "--hive", "cpu-host"]
    args += ["--key", str(fleet.hosts.client_key_path)]
    args += ["--known-hosts", str(fleet.hosts.known_hosts_path)]
    assert cli.main(args) == 1
    doc = json.loads(capsys.readouterr().out)
    assert [h["alias"] for h in doc["hives"]] == ["cpu-host"]
    cpu = component(doc, "cpu-host", "rbee-worker-cpu")
    url = fleet.repo.url
    assert cpu["drift"] == [
        f"source changed: config wants git {url} tag v0.1.0, installed from git {url} branch moving"
    ]
    assert cpu["desired"]["commit"] == fleet.repo.commit_of("v0.1.0")


def test_extra_install_is_reported(fleet: Fleet, capsys: Any) -> None:
    base = fleet.specs["cpu-host/cpu"]
    metal = base.model_copy(
        update={
            "worker_type": "metal",
            "binary": "llm-worker-rbee-metal",
            "features": ["metal"],
            "resource_name": "worker-cpu-host-metal",
        }
    )
    asyncio.run(lifecycle.install(metal, updating=False))
    try:
        code, doc = fleet.status(capsys=capsys)
    finally:
        asyncio.run(lifecycle.remove(metal, None))
    assert code == 1
    cpu_host = by_alias(doc)["cpu-host"]
    assert cpu_host["state"] == "drift"
    assert all(c["state"] == "in-sync" for c in cpu_host["components"])
    assert cpu_host["extras"] == [
        {
            "name": "rbee-worker-metal",
            "paths": [
                "~/.local/share/rbee/receipts/rbee-worker-metal.json",
                "~/.local/share/rbee/releases/rbee-worker-metal",
                "~/.local/share/rbee/workers/rbee-worker-metal",
            ],
            "managed": True,
            "version": "llm-worker-rbee 0.2.0",
        }
    ]
    assert by_alias(doc)["gpu-host"]["state"] == "in-sync"
    # removed again: in sync
    assert fleet.status(capsys=capsys)[0] == 0


def test_a_stopped_hive_service_is_drift(fleet: Fleet, capsys: Any) -> None:
    host = fleet.hosts[0]
    pid = host.run("cat .local/share/rbee/hive.pid").stdout.strip()
    host.run(f"kill {pid}; while kill -0 {pid} 2>/dev/null; do sleep 0.05; done")
    try:
        code, doc = fleet.status(capsys=capsys)
    finally:
        asyncio.run(lifecycle.reconcile_service(fleet.specs["gpu-host/hive"]))
    assert code == 1
    port = fleet.fleet.hives[0].hive_port
    hive = component(doc, "gpu-host", "rbee-hive")
    assert hive["state"] == "drift"
    assert hive["drift"] == [f"service not running on port {port} (autoStart is on)"]
    assert by_alias(doc)["gpu-host"]["service"]["state"] == "stopped"
    assert by_alias(doc)["gpu-host"]["service"]["pid"] is None
    # started again (as `up` does): in sync
    assert fleet.status(capsys=capsys)[0] == 0


def test_one_host_down(fleet: Fleet, capsys: Any) -> None:
    down = fleet.hosts[1]
    down.stop()
    try:
        code, doc = fleet.status(capsys=capsys)
        only_up = cli.main(
            ["status", "--project-dir", str(fleet.project), "--stack", STACK, "--hive", "gpu-host"]
        )
        table = capsys.readouterr().out
    finally:
        down.start()
    assert code == 2
    cpu_host = by_alias(doc)["cpu-host"]
    assert cpu_host["reachable"] is False and cpu_host["state"] == "unreachable"
    assert cpu_host["error"].startswith("hive cpu-host: connect failed: ")
    assert {c["state"] for c in cpu_host["components"]} == {"error"}
    gpu_host = by_alias(doc)["gpu-host"]
    assert gpu_host["state"] == "in-sync"
    assert len(gpu_host["components"]) == 2 and gpu_host["components"][0]["installed"]
    assert doc["summary"]["unreachable"] == 1 and doc["summary"]["exitCode"] == 2
    assert only_up == 0 and "cpu-host" not in table


def test_bad_config_exits_3(fleet: Fleet, capsys: Any) -> None:
    args = ["status", "--project-dir", str(fleet.project), "--stack", STACK]
    assert cli.main([*args, "--hive", "nope"]) == 3
    err = capsys.readouterr().err
    assert "--hive: no hive 'nope' in the config (hives: gpu-host, cpu-host)" in err
    assert cli.main([*args, "--key", "/nonexistent/key"]) == 3
    assert "--key: /nonexistent/key: no such file" in capsys.readouterr().err
    path = stackfile.stack_file(fleet.project, "broken")
    path.write_text(yaml.safe_dump({"config": {"rbee:hives": [{"alias": "x"}]}}))
    assert cli.main(["status", "--project-dir", str(fleet.project), "--stack", "broken"]) == 3
    err = capsys.readouterr().err
    assert "rbee:hives[0].hostname: Field required" in err
