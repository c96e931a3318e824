"""Declaring Hive/Worker resources for the engine driver, and reading their effects on a host."""

from __future__ import annotations

import json
from typing import Any

from rbee_infra.stack.providers import HiveProvider, WorkerProvider

from .engine import Decl, RunResult, Secret
from .hosts import Host, HostSet

HIVE_STABLE = ".local/bin/rbee-hive"
RBEE_ROOT = ".local/share/rbee"


def worker_stable(worker_type: str) -> str:
    return f"{RBEE_ROOT}/workers/rbee-worker-{worker_type}"


def connection(hosts: HostSet, host: Host) -> dict[str, Any]:
    return {
        "host": host.address,
        "port": host.port,
        "user": host.user,
        "privateKeyPath": str(hosts.client_key_path),
        "knownHosts": str(hosts.known_hosts_path),
        "connectTimeout": 10,
    }


def hive(
    hosts: HostSet,
    host: Host,
    source: dict[str, Any],
    *,
    name: str = "hive-h1",
    secret_source: bool = False,
    **extra: Any,
) -> Decl:
    """A Hive as the program declares it (connection secret; source secret when it holds a
    credential)."""
    inputs: dict[str, Any] = {
        "alias": "h1",
        "component": "hive",
        "binary": "rbee-hive",
        "features": [],
        "source": Secret(source) if secret_source else source,
        "connection": Secret(connection(hosts, host)),
        "cargo": "cargo",
        "reinstallTrigger": "",
        "buildTimeout": 600,
        "stack": "test",
        "resourceName": name,
        **extra,
    }
    return Decl(name, HiveProvider(), inputs, secret_outputs=("connection",))


def worker(
    hosts: HostSet,
    host: Host,
    worker_type: str,
    source: dict[str, Any],
    *,
    depends_on: tuple[str, ...] = ("hive-h1",),
    secret_source: bool = False,
    **extra: Any,
) -> Decl:
    name = f"worker-h1-{worker_type}"
    inputs: dict[str, Any] = {
        "alias": "h1",
        "component": "worker",
        "workerType": worker_type,
        "binary": f"llm-worker-rbee-{worker_type}",
        "features": [worker_type],
        "source": Secret(source) if secret_source else source,
        "connection": Secret(connection(hosts, host)),
        "cargo": "cargo",
        "checkPlatform": False,  # the fixture's cuda/metal workers build on any host
        "reinstallTrigger": "",
        "buildTimeout": 600,
        "stack": "test",
        "resourceName": name,
        **extra,
    }
    return Decl(
        name, WorkerProvider(), inputs, depends_on=depends_on, secret_outputs=("connection",)
    )


def version(host: Host, path: str) -> str:
    """The first line the binary at `path` prints for `--version` (or its error)."""
    r = host.run(f"'{path}' --version 2>&1", check=False)
    return (r.stdout.splitlines() or [f"<exit {r.returncode}>"])[0]


def worker_about(host: Host, path: str) -> str:
    """The first line a fixture worker at `path` prints for `--help`, which says what was built
    (`expected_worker_about`); like rbee's workers, it has no `--version`."""
    r = host.run(f"'{path}' --help 2>&1", check=False)
    return (r.stdout.splitlines() or [f"<exit {r.returncode}>"])[0]


def link(host: Host, path: str) -> str:
    return host.run(f"readlink '{path}' || true").stdout.strip()


def receipt(host: Host, name: str) -> dict[str, Any]:
    return json.loads((host.home / RBEE_ROOT / "receipts" / f"{name}.json").read_text())


def release_ids(host: Host, name: str) -> list[str]:
    d = host.home / RBEE_ROOT / "releases" / name
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def leftovers(host: Host, *, but_the_build_cache: bool = False) -> list[str]:
    """Anything under ~/.local that is not an empty directory, and rbee's root if present.
    `but_the_build_cache`: what a failed install leaves on purpose (the checkout and cargo
    target dir under build/, and the lock files) is left out, and must be there."""
    r = host.run(
        "find .local -mindepth 1 ! -type d 2>/dev/null; "
        f"[ -e {RBEE_ROOT} ] && echo {RBEE_ROOT}; true"
    )
    found = sorted(line for line in r.stdout.splitlines() if line)
    if not but_the_build_cache:
        return found
    assert any(p.startswith(f"{RBEE_ROOT}/build/") for p in found), found
    kept = (f"{RBEE_ROOT}/build/", f"{RBEE_ROOT}/.lock")
    return [p for p in found if p != RBEE_ROOT and not p.startswith(kept)]


def ok(result: RunResult) -> RunResult:
    assert result.ok, result.errors
    return result


def failed(result: RunResult, name: str) -> str:
    """The error of `name`'s step (the run must have failed on it)."""
    assert not result.ok and name in result.errors, (result.ops(), result.errors)
    return result.errors[name]


def without_prebuilt_hint(error: str, binary: str = "rbee-hive") -> str:
    """A build on the host refused at preflight ends with the other way on: the stack lines
    that install a prebuilt binary instead. Check them; return the message before them."""
    head, sep, hint = error.partition("\nOr install a prebuilt ")
    assert sep, f"no prebuilt-binary lines in: {error}"
    indent = " " * (6 if binary == "rbee-hive" else 10)
    lines = ["installMethod:", "  local:", f"    path: /path/to/{binary}"]
    assert "\n".join(indent + line for line in lines) in hint, hint
    return head
