"""What is installed on a host, checked over real SSH (not through the library under test)."""

from __future__ import annotations

import json
import shlex
import subprocess

from .hosts import Host, HostSet

HIVE = ".local/bin/rbee-hive"
ROOT = ".local/share/rbee"


def ssh(hosts: HostSet, host: Host, command: str) -> subprocess.CompletedProcess[str]:
    """Run `command` on `host` with the OpenSSH client, host key checked."""
    return subprocess.run(
        [
            "ssh", "-q", "-F", "none", "-i", str(hosts.client_key_path),
            "-o", f"UserKnownHostsFile={hosts.known_hosts_path}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes",
            "-p", str(host.port), f"{host.user}@{host.address}", command,
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )


def _version(hosts: HostSet, host: Host, path: str) -> str:
    r = ssh(hosts, host, f"{shlex.quote(path)} --version")
    assert r.returncode == 0, f"{host.name}: {path} --version exited {r.returncode}: {r.stderr}"
    return r.stdout.strip()


def _receipt(hosts: HostSet, host: Host, name: str) -> dict:
    r = ssh(hosts, host, f"cat {ROOT}/receipts/{name}.json")
    assert r.returncode == 0, f"{host.name}: no receipt for {name}"
    return json.loads(r.stdout)


def assert_hive_installed(
    hosts: HostSet, host: Host, *, version: str | None = None, commit: str | None = None
) -> None:
    line = _version(hosts, host, HIVE)
    if version is not None:
        assert line == f"rbee-hive {version}", f"{host.name}: {line!r}"
    if commit is not None:
        assert _receipt(hosts, host, "rbee-hive")["commit"] == commit


def assert_worker_installed(
    hosts: HostSet,
    host: Host,
    worker_type: str,
    *,
    features: list[str] | None = None,
    version: str | None = None,
) -> None:
    line = _version(hosts, host, f"{ROOT}/workers/rbee-worker-{worker_type}")
    name, got_version, got_features = line.split(" ")
    assert name == f"llm-worker-rbee-{worker_type}", line
    if version is not None:
        assert got_version == version, line
    if features is not None:
        assert got_features == "features=" + (",".join(features) or "none"), line


def assert_nothing_installed(hosts: HostSet, host: Host) -> None:
    """No rbee binary, release, receipt, job or checkout on the host (a `.local/bin` left
    empty is fine)."""
    r = ssh(
        hosts, host,
        f"ls -A {HIVE} {ROOT} 2>/dev/null; find .local -mindepth 1 ! -type d 2>/dev/null; true",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"{host.name} still has: {r.stdout.split()}"
