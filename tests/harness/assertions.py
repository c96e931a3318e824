"""What is installed on a host, checked over real SSH (not through the library under test)."""

from __future__ import annotations

import json
import re
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


def _version(hosts: HostSet, host: Host, path: str, flag: str = "--version") -> str:
    r = ssh(hosts, host, f"{shlex.quote(path)} {flag}")
    assert r.returncode == 0, f"{host.name}: {path} {flag} exited {r.returncode}: {r.stderr}"
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
    """Like rbee's workers, the fixture's have no `--version`: their `--help` says what was
    built (`fixture_repo.expected_worker_about`) and its usage names the program."""
    path = f"{ROOT}/workers/rbee-worker-{worker_type}"
    lines = _version(hosts, host, path, "--help").splitlines()
    about = re.fullmatch(
        r"Fixture worker daemon shaped like rbee's \(llm-worker-rbee (\S+), features=(\S+)\)",
        lines[0],
    )
    usage = f"Usage: rbee-worker-{worker_type} "
    assert about is not None and any(ln.startswith(usage) for ln in lines), lines
    if version is not None:
        assert about[1] == version, lines[0]
    if features is not None:
        assert about[2] == (",".join(features) or "none"), lines[0]


def assert_nothing_installed(hosts: HostSet, host: Host, *, but_the_build_cache: bool = False) -> None:
    """No rbee binary, release, receipt, job or checkout on the host (a `.local/bin` left
    empty is fine). `but_the_build_cache`: after a failed install, the build cache (the
    checkout and cargo target dir under build/) and the lock files are there, and only they."""
    if but_the_build_cache:
        r = ssh(hosts, host, f"ls -A {ROOT}; find .local -mindepth 1 ! -type d ! -path '{ROOT}/*'")
        assert r.returncode == 0, r.stderr
        names = set(r.stdout.split())
        assert "build" in names, f"{host.name}: no build cache: {sorted(names)}"
        left = names - {"build", ".lock", ".lock.holder", ".lock.build", ".lock.build.holder"}
        assert left == set(), f"{host.name} still has: {sorted(left)}"
        return
    r = ssh(
        hosts, host,
        f"ls -A {HIVE} {ROOT} 2>/dev/null; find .local -mindepth 1 ! -type d 2>/dev/null; true",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"{host.name} still has: {r.stdout.split()}"
