"""What a `pulumi preview`/`up` pays before any host work, measured on fresh processes.

- `program_start`: a fresh Python runs the Pulumi program (as the project's `__main__.py`
  does) under the SDK's mocks, up to its first resource registration.
- `provider_start`: a fresh `python -u -m pulumi.dynamic` (the SDK's provider server, as the
  CLI starts it) answers Configure, then a first Check of a Hive whose inputs need no host
  (a validation failure): its imports, the unpickling of the provider and the spec models.

Each returns the seconds from spawning the process, and the modules the process had imported
then, so a test can keep heavy imports out and a benchmark can time the start-up.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

# A stack of one hive and one worker, enough to reach the program's first registration.
PROGRAM_CONFIG = {
    "rbee:hives": [
        {
            "alias": "h1",
            "hostname": "10.0.0.1",
            "sshUser": "rbee",
            "workers": [{"type": "cpu"}],
        }
    ],
    "rbee:sshPrivateKeyPath": "~/.ssh/id_ed25519",
    "rbee:knownHosts": "~/.ssh/known_hosts",
}

_PROGRAM = textwrap.dedent(
    """
    import asyncio, json, os, sys, time

    import pulumi
    from pulumi.runtime.mocks import MockMonitor


    class FirstRegistration(pulumi.runtime.Mocks):
        def new_resource(self, args):
            if args.typ != "pulumi:pulumi:Stack":
                out = {"at": time.time(), "modules": sorted(sys.modules)}
                sys.stdout.write(json.dumps(out) + "\\n")
                sys.stdout.flush()
                os._exit(0)
            return args.name, {}

        def call(self, args):
            return {}


    asyncio.set_event_loop(asyncio.new_event_loop())
    mocks = FirstRegistration()
    pulumi.runtime.set_mocks(mocks, project="rbee-infra", stack="probe", preview=True,
                             monitor=MockMonitor(mocks))
    config = json.loads(sys.argv[1])
    pulumi.runtime.set_all_config(
        {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}, []
    )
    from rbee_infra.stack.program import main  # as the project's __main__.py

    main()
    asyncio.get_event_loop().run_until_complete(asyncio.sleep(60))
    sys.exit("the program registered no resource")
    """
)


@dataclass(frozen=True)
class Start:
    seconds: float
    modules: frozenset[str]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def program_start(config: dict[str, Any] | None = None) -> Start:
    """Seconds from spawning the program's process to its first resource registration."""
    data = json.dumps(PROGRAM_CONFIG if config is None else config)
    t0 = time.time()
    out = subprocess.run(
        [sys.executable, "-c", _PROGRAM, data],
        capture_output=True, text=True, timeout=120, env=_env(), check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"the program probe failed:\n{out.stderr[-3000:]}")
    report = json.loads(out.stdout.strip().splitlines()[-1])
    return Start(report["at"] - t0, frozenset(report["modules"]))


def _hive_check_request() -> Any:
    """A Check of a Hive with no connection: it fails validation without touching a host."""
    from pulumi.dynamic.dynamic import PROVIDER_KEY, serialize_provider
    from pulumi.runtime import rpc
    from pulumi.runtime.proto import provider_pb2

    from rbee_infra.stack.providers import HiveProvider

    news = {PROVIDER_KEY: serialize_provider(HiveProvider()), "alias": "h1", "component": "hive"}
    loop = asyncio.new_event_loop()
    try:
        wire = loop.run_until_complete(rpc.serialize_properties(news, {}))
    finally:
        loop.close()
    return provider_pb2.CheckRequest(
        urn="urn:pulumi:probe::rbee-infra::pulumi-python:dynamic:Resource::hive-h1",
        olds=None, news=wire,
    )  # fmt: skip


def provider_start() -> tuple[Start, float]:
    """(seconds from spawning the provider server to its answer to the first Check, and the
    modules it had imported then; seconds to its port, i.e. the SDK's own start-up)."""
    import grpc
    from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

    request = _hive_check_request()
    t0 = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.dynamic"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=REPO,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().decode().strip() or 0)
        ready = time.time() - t0
        if not port:
            raise RuntimeError(f"the provider server did not start: {proc.stderr.read()[-3000:]!r}")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = provider_pb2_grpc.ResourceProviderStub(channel)
            stub.Configure(provider_pb2.ConfigureRequest(acceptSecrets=True), timeout=60)
            answer = stub.Check(request, timeout=60)
            seconds = time.time() - t0
            if not answer.failures:
                raise RuntimeError("the probe's Check was expected to fail validation")
            # what the server had imported by then: a second Check, of a one-off provider
            modules = _server_modules(stub)
    finally:
        proc.kill()
        proc.wait()
    return Start(seconds, modules), ready


def _server_modules(stub: Any) -> frozenset[str]:
    from pulumi.dynamic.dynamic import PROVIDER_KEY, serialize_provider
    from pulumi.runtime import rpc
    from pulumi.runtime.proto import provider_pb2

    news = {PROVIDER_KEY: serialize_provider(_modules_provider())}
    loop = asyncio.new_event_loop()
    try:
        wire = loop.run_until_complete(rpc.serialize_properties(news, {}))
    finally:
        loop.close()
    answer = stub.Check(provider_pb2.CheckRequest(urn="urn:x::y::z::m", news=wire), timeout=60)
    return frozenset(json.loads(answer.failures[0].reason))


def _modules_check(self: Any, _olds: dict[str, Any], news: dict[str, Any]) -> Any:
    import json
    import sys

    from pulumi.dynamic import CheckFailure, CheckResult

    return CheckResult(news, [CheckFailure("modules", json.dumps(sorted(sys.modules)))])


def _modules_provider() -> Any:
    from pulumi.dynamic import ResourceProvider

    # a class of `__main__` is pickled by value; its check (by reference) imports only this
    # module, whose own imports are the standard library's
    cls = type("ModulesProvider", (ResourceProvider,), {"check": _modules_check,
                                                        "__module__": "__main__"})
    return cls()
