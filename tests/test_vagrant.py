"""The Vagrant playground: vagrant/Vagrantfile and stacks/Pulumi.vagrant.yaml agree."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pulumi
import pytest
import yaml

from rbee_infra.base.errors import ConfigError
from rbee_infra.config.fleet import FleetConfig, GitSource, parse_fleet
from rbee_infra.stack import program
from tests.program_mocks import install_mocks, kickoff_hosts, unwrap

ROOT = Path(__file__).resolve().parent.parent
VAGRANTFILE = ROOT / "vagrant" / "Vagrantfile"
STACK = ROOT / "stacks" / "Pulumi.vagrant.yaml"

_HOST = re.compile(
    r'\{\s*name:\s*"(?P<name>[^"]+)",\s*ip:\s*"(?P<ip>[^"]+)",\s*'
    r"memory:\s*(?P<memory>\d+),\s*cpus:\s*(?P<cpus>\d+)\s*\}"
)


def vagrant_hosts() -> dict[str, dict[str, object]]:
    text = VAGRANTFILE.read_text()
    return {
        m["name"]: {"ip": m["ip"], "memory": int(m["memory"]), "cpus": int(m["cpus"])}
        for m in _HOST.finditer(text)
    }


def stack_fleet() -> FleetConfig:
    config = yaml.safe_load(STACK.read_text())["config"]
    assert all(key.startswith("rbee:") for key in config), sorted(config)
    return parse_fleet({key.removeprefix("rbee:"): value for key, value in config.items()})


@pytest.mark.unit
def test_vagrantfile_defines_the_two_hosts_of_the_issue() -> None:
    text = VAGRANTFILE.read_text()
    assert vagrant_hosts() == {
        "gpu-host": {"ip": "192.168.56.10", "memory": 4096, "cpus": 2},
        "cpu-host": {"ip": "192.168.56.11", "memory": 2048, "cpus": 1},
    }
    assert 'config.vm.box = "ubuntu/jammy64"' in text  # Ubuntu 22.04
    assert 'node.vm.network "private_network", ip: host[:ip]' in text
    assert "vb.memory = host[:memory]" in text and "vb.cpus = host[:cpus]" in text
    # git and a build toolchain system-wide; Rust (rustup) as the ssh user, not root
    assert re.search(r"apt-get install .*\bgit\b.*\bbuild-essential\b", text)
    assert "sh.rustup.rs" in text
    assert re.search(r'type: "shell", privileged: false,\s*inline: PROVISION_USER', text)


@pytest.mark.unit
def test_vagrant_stack_validates_and_matches_the_vagrantfile() -> None:
    fleet = stack_fleet()
    hosts = vagrant_hosts()
    assert {hive.alias: hive.hostname for hive in fleet.hives} == {
        name: host["ip"] for name, host in hosts.items()
    }
    by_alias = {hive.alias: hive for hive in fleet.hives}
    assert [w.type for w in by_alias["gpu-host"].workers] == ["cuda"]
    assert [w.type for w in by_alias["cpu-host"].workers] == ["cpu"]
    for hive in fleet.hives:
        assert hive.ssh_user == "vagrant"
        assert hive.ssh_port == 22
        # rustup's cargo, which a non-interactive SSH command does not find on PATH
        assert hive.cargo == f"/home/{hive.ssh_user}/.cargo/bin/cargo"
        assert isinstance(hive.install_method, GitSource)
    assert fleet.host_key_policy == "strict"
    assert fleet.ssh_private_key_path == "~/.ssh/id_ed25519"


@pytest.mark.unit
def test_vagrant_stack_declares_a_hive_and_its_worker_on_each_vm() -> None:
    config = yaml.safe_load(STACK.read_text())["config"]
    recorder = install_mocks(config)
    pulumi.runtime.test(program.main)()
    assert sorted(r.name for r in recorder.resources) == [
        "build-kickoff",
        "hive-cpu-host",
        "hive-gpu-host",
        "worker-cpu-host-cpu",
        "worker-gpu-host-cuda",
    ]
    kickoff = {h["alias"]: h for h in kickoff_hosts(recorder)}
    for name, host in vagrant_hosts().items():
        conn = kickoff[name]["connection"]
        assert (conn["host"], conn["port"], conn["user"]) == (host["ip"], 22, "vagrant")
        on_host = [
            r for r in recorder.resources if f"-{name}" in r.name and "component" in r.inputs
        ]
        assert len(on_host) == 2, name
        for resource in on_host:
            conn = unwrap(resource.inputs["connection"])
            assert (conn["host"], conn["port"], conn["user"]) == (host["ip"], 22, "vagrant")
            assert conn["privateKeyPath"] == "~/.ssh/id_ed25519"
            assert resource.inputs["cargo"] == "/home/vagrant/.cargo/bin/cargo"
    cuda = recorder.by_name("worker-gpu-host-cuda")
    assert (cuda.inputs["binary"], cuda.inputs["features"]) == ("llm-worker-rbee-cuda", ["cuda"])


@pytest.mark.unit
def test_vagrant_stack_rejects_a_broken_edit_naming_the_field() -> None:
    config = yaml.safe_load(STACK.read_text())["config"]
    config["rbee:hives"][1]["workers"][0]["type"] = "CPU!"
    with pytest.raises(ConfigError, match=r"hives\[1\]\.workers\[0\]\.type"):
        parse_fleet({key.removeprefix("rbee:"): value for key, value in config.items()})


@pytest.mark.unit
@pytest.mark.skipif(
    shutil.which("ruby") is None, reason="ruby is not installed (apt-get install ruby)"
)
def test_vagrantfile_is_valid_ruby(tmp_path: Path) -> None:
    def ruby_check(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ruby", "-c", str(path)], capture_output=True, text=True, timeout=60)

    result = ruby_check(VAGRANTFILE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Syntax OK"
    # the check has teeth: the same file without its last `end` is refused
    broken = tmp_path / "Vagrantfile"
    broken.write_text(VAGRANTFILE.read_text().rstrip().removesuffix("end"))
    refused = ruby_check(broken)
    assert refused.returncode != 0
    assert "syntax error" in refused.stderr
