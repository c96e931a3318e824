"""Drive the peers of rbee-infra on the lab's hosts: a hand-written parallel sh+ssh script,
ansible-playbook and pyinfra (both from PyPI: `pip install -e '.[bench]'`).

Each installs the same hive and two workers, from the same repo and tag, with the same cargo,
into its own directory (`~/.rbee-peer-<tool>`), so the tools never see each other's files.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.common import BINARIES, TAG, Lab, answers, ssh_command, versions
from tests.harness.hosts import Host

HERE = Path(__file__).resolve().parent


class PeerError(RuntimeError):
    pass


def peer_paths(tool: str) -> tuple[str, ...]:
    return tuple(f".rbee-peer-{tool}/bin/{name}" for name, _, _ in BINARIES)


def check_installed(lab: Lab, host: Host, tool: str) -> None:
    """The peer's three binaries run (`--version`, else `--help`; checked over SSH)."""
    lines = versions(lab, host, peer_paths(tool))
    for line, (_, binary, _) in zip(lines, BINARIES, strict=True):
        if not answers(line, binary):
            raise PeerError(f"{tool} on {host.name}: {binary} --version/--help said {line!r}")


def _check(tool: str, proc: subprocess.CompletedProcess[str]) -> None:
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise PeerError(f"{tool} exited {proc.returncode}:\n{tail}")


# --------------------------------------------------------------------------- sh + ssh


def bash_install(lab: Lab, hosts: Sequence[Host], cargo: str) -> float:
    """Every host at once: one `ssh host sh -s` per host running peers/install.sh."""
    script = (HERE / "install.sh").read_text()
    items = [f"{name}:{binary}:{features}" for name, binary, features in BINARIES]
    args = [".rbee-peer-bash", lab.repo.url, TAG, cargo, *items]
    start = time.monotonic()
    procs = [
        subprocess.Popen(
            [*ssh_command(lab, host), "sh", "-s", "--", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for host in hosts
    ]  # fmt: skip
    outcomes = [p.communicate(script, timeout=900) for p in procs]
    seconds = time.monotonic() - start
    for host, proc, (out, err) in zip(hosts, procs, outcomes, strict=True):
        if proc.returncode != 0:
            raise PeerError(f"sh+ssh on {host.name} exited {proc.returncode}: {err or out}")
    return seconds


# --------------------------------------------------------------------------- ansible


ANSIBLE_CFG = """[defaults]
inventory = {inventory}
forks = {forks}
gathering = explicit
host_key_checking = True
interpreter_python = /usr/bin/python3
retry_files_enabled = False
local_tmp = {tmp}/local
nocows = True

[ssh_connection]
pipelining = True
control_path_dir = {tmp}/cp
ssh_args = -F none -o ControlMaster=auto -o ControlPersist=120s -o BatchMode=yes
  -o IdentitiesOnly=yes -o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes
"""


def _ansible_dir(lab: Lab, hosts: Sequence[Host], cargo: str) -> Path:
    where = lab.tmp / "ansible"
    (where / "cp").mkdir(parents=True, exist_ok=True)
    (where / "local").mkdir(exist_ok=True)
    lines = ["[rbee]"]
    for host in hosts:
        lines.append(
            f"{host.name} ansible_host={host.address} ansible_port={host.port} "
            f"ansible_user={host.user} ansible_ssh_private_key_file={lab.hosts.client_key_path}"
        )
    binaries = ", ".join(
        f'{{"name": "{n}", "bin": "{b}", "features": "{f}"}}' for n, b, f in BINARIES
    )
    lines += [
        "",
        "[rbee:vars]",
        f"repo={lab.repo.url}",
        f"tag={TAG}",
        f"cargo={cargo}",
        f"binaries=[{binaries}]",
    ]
    inventory = where / f"inventory-{len(hosts)}.ini"
    inventory.write_text("\n".join(lines) + "\n")
    cfg = where / f"ansible-{len(hosts)}.cfg"
    cfg.write_text(
        ANSIBLE_CFG.format(
            inventory=inventory, forks=max(len(hosts), 5), tmp=where,
            known_hosts=lab.hosts.known_hosts_path,
        )
    )  # fmt: skip
    return cfg


def ansible_run(lab: Lab, hosts: Sequence[Host], cargo: str) -> tuple[float, int]:
    """One `ansible-playbook` run; (seconds, tasks reported changed)."""
    exe = shutil.which("ansible-playbook")
    if exe is None:
        raise PeerError("ansible-playbook is not installed (pip install -e '.[bench]')")
    cfg = _ansible_dir(lab, hosts, cargo)
    env = {**os.environ, "ANSIBLE_CONFIG": str(cfg), "ANSIBLE_NOCOLOR": "1"}
    start = time.monotonic()
    proc = subprocess.run(
        [exe, str(HERE / "playbook.yml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    seconds = time.monotonic() - start
    _check("ansible-playbook", proc)
    changed = sum(int(m) for m in re.findall(r"\bchanged=(\d+)", proc.stdout))
    return seconds, changed


# --------------------------------------------------------------------------- pyinfra


def _pyinfra_inventory(lab: Lab, hosts: Sequence[Host], cargo: str) -> Path:
    where = lab.tmp / "pyinfra"
    where.mkdir(parents=True, exist_ok=True)
    entries = []
    for host in hosts:
        data = {
            "ssh_port": host.port,
            "ssh_user": host.user,
            "ssh_key": str(lab.hosts.client_key_path),
            "ssh_known_hosts_file": str(lab.hosts.known_hosts_path),
            "ssh_strict_host_key_checking": "yes",
            "ssh_look_for_keys": False,
            "ssh_allow_agent": False,
            "repo": lab.repo.url,
            "tag": TAG,
            "cargo": cargo,
        }
        entries.append(f"    ({host.address!r}, {data!r}),")
    inventory = where / f"inventory_{len(hosts)}.py"
    inventory.write_text("rbee = [\n" + "\n".join(entries) + "\n]\n")
    return inventory


def pyinfra_run(lab: Lab, hosts: Sequence[Host], cargo: str) -> tuple[float, int]:
    """One `pyinfra` run; (seconds, operations that changed something)."""
    exe = shutil.which("pyinfra")
    if exe is None:
        raise PeerError("pyinfra is not installed (pip install -e '.[bench]')")
    inventory = _pyinfra_inventory(lab, hosts, cargo)
    start = time.monotonic()
    proc = subprocess.run(
        [exe, "-y", "--no-wait", str(inventory), str(HERE / "pyinfra_deploy.py")],
        capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    seconds = time.monotonic() - start
    _check("pyinfra", proc)
    output = proc.stdout + proc.stderr
    if failed := _pyinfra_column(output, 4):
        # pyinfra exits 0 when some hosts fail: such a run did less than the others
        errors = [line.strip() for line in output.splitlines() if "Error" in line]
        raise PeerError(f"pyinfra: {failed} operations failed:\n" + "\n".join(errors[:10]))
    return seconds, _pyinfra_column(output, 3)


def _pyinfra_changes(output: str) -> int:
    """Operations that changed something: the "Success" column of pyinfra's "Grand total"
    line ("No Change" is counted apart)."""
    return _pyinfra_column(output, 3)


def _pyinfra_column(output: str, index: int) -> int:
    """A number of pyinfra's "Grand total" line (3: Success, 4: Error)."""
    for line in output.splitlines():
        words = line.split()
        if words[:2] == ["Grand", "total"] and len(words) > index:
            return int(words[index]) if words[index].isdigit() else 0
    raise PeerError("pyinfra printed no results table")
