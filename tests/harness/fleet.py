"""Stack config for the harness hosts, and the resources the real program declares from it.

`make_fleet` writes what an operator writes (`rbee:hives` ...); `declare` runs
`rbee_infra.stack.program` under Pulumi's mocks and turns each registration (inputs, serialized
provider, dependencies, secret outputs) into a `Decl` the engine driver replays.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Sequence
from typing import Any

import dill
import pulumi

from rbee_infra.stack.program import declare_fleet, read_stack_config
from tests.program_mocks import OUTPUT_REF, install_mocks, is_secret, unwrap

from .engine import Decl, Ref, Secret
from .fixture_repo import RbeeRepo
from .hosts import HostSet

WORKER_TYPES = ("cpu", "cuda", "metal")


def make_fleet(
    hosts: HostSet,
    repo: RbeeRepo,
    *,
    hives: int | None = None,
    workers_per_hive: int = 0,
    ref: dict[str, str] | None = None,
    worker_types: Sequence[str] = WORKER_TYPES,
    **settings: Any,
) -> dict[str, Any]:
    """Valid stack config: hive i on harness host i, with the first M worker types."""
    count = len(hosts.hosts) if hives is None else hives
    source = {"git": {"repo": repo.url, **(ref or {"tag": "v0.1.0"})}}
    config: dict[str, Any] = {
        "rbee:hives": [
            {
                "alias": host.name,
                "hostname": host.address,
                "sshUser": host.user,
                "sshPort": host.port,
                "installMethod": copy.deepcopy(source),
                "workers": [{"type": t} for t in worker_types[:workers_per_hive]],
                # hives run as services only in tests/test_service.py (ports would collide:
                # every host's hive listens on 127.0.0.1), and the fixture's cuda/metal
                # workers build on any host
                "autoStart": False,
                "checkPlatform": False,
            }
            for host in hosts.hosts[:count]
        ],
        "rbee:sshPrivateKeyPath": str(hosts.client_key_path),
        "rbee:knownHosts": str(hosts.known_hosts_path),
        "rbee:connectTimeout": 10,
        "rbee:buildTimeout": 600,
    }
    config.update(settings)
    return config


def hive_config(config: dict[str, Any], alias: str) -> dict[str, Any]:
    return next(h for h in config["rbee:hives"] if h["alias"] == alias)


def _engine_value(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(OUTPUT_REF):
        resource, key = value[len(OUTPUT_REF):].rsplit(":", 1)
        return Ref(resource, key)
    return Secret(unwrap(value)) if is_secret(value) else value


def declare(
    config: dict[str, Any], secret_keys: tuple[str, ...] = (), *, stack: str = "test"
) -> list[Decl]:
    """The program's resources for `config` on `stack`, in declaration order, as engine
    Decls."""
    recorder = install_mocks(config, secret_keys, stack=stack)

    @pulumi.runtime.test
    def program() -> Any:
        declare_fleet(*read_stack_config())

    program()
    by_urn = {r.urn: r.name for r in recorder.resources}
    decls = []
    for r in recorder.resources:
        # as the program sent them (`settings` and all): the provider's Check spreads them
        inputs = {k: _engine_value(v) for k, v in r.sent.items() if k != "__provider"}
        provider = dill.loads(base64.b64decode(unwrap(r.sent["__provider"])))
        decls.append(
            Decl(
                r.name,
                provider,
                inputs,
                # a read (the program's StackReference to its own stack) is no resource here
                depends_on=tuple(by_urn[u] for u in r.dependencies if u in by_urn),
                secret_outputs=tuple(r.secret_outputs),
            )
        )
    return decls


def up_ok(engine: Any, config: dict[str, Any]) -> Any:
    """`up` of the program's resources for `config`, which must succeed."""
    result = engine.up(declare(config))
    assert result.ok, result.errors
    return result
