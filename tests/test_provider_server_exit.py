"""The dynamic-provider server's process ends without Python's teardown once the engine
interrupts it (`rbee_infra.stack.provider_server.exit_without_teardown`), and only that
process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import types
from pathlib import Path

import pytest

from rbee_infra.stack import provider_server

ROOT = Path(__file__).resolve().parent.parent

# The server as the engine starts it (`python -u -m pulumi.dynamic`), with one exit handler
# registered before anything else: the teardown's stand-in, which writes a marker file.
_SERVER = """
import atexit, runpy, sys
atexit.register(lambda: open(sys.argv[1], "w").write("torn down"))
runpy.run_module("pulumi.dynamic", run_name="__main__", alter_sys=True)
"""


def _serve_and_interrupt(tmp_path: Path, *, use_rbee_infra: bool) -> tuple[int, bool]:
    """(exit code, whether the teardown ran) of a server interrupted after one Check."""
    import grpc
    from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

    from tests.harness.startup import _hive_check_request

    marker = tmp_path / f"marker-{use_rbee_infra}"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-u", "-c", _SERVER, str(marker)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=env, cwd=ROOT, start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().decode().strip())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = provider_pb2_grpc.ResourceProviderStub(channel)
            stub.Configure(provider_pb2.ConfigureRequest(acceptSecrets=True), timeout=60)
            if use_rbee_infra:  # unpickles rbee-infra's HiveProvider: imports rbee_infra.stack
                assert stub.Check(_hive_check_request(), timeout=60).failures
        os.killpg(proc.pid, signal.SIGINT)  # as the engine ends a run
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert b"Traceback" not in err, err.decode()
    return proc.returncode, marker.exists()


@pytest.mark.unit
def test_the_provider_server_exits_without_its_teardown(tmp_path: Path) -> None:
    # the SDK's server alone tears down as usual; once it served rbee-infra, it skips that
    assert _serve_and_interrupt(tmp_path, use_rbee_infra=False) == (0, True)
    assert _serve_and_interrupt(tmp_path, use_rbee_infra=True) == (0, False)


@pytest.mark.unit
def test_only_the_provider_server_is_touched() -> None:
    # this process (pytest, under coverage or not) runs no provider server: nothing is installed
    assert provider_server.server_module() is None
    assert not provider_server.exit_without_teardown()


@pytest.mark.unit
def test_a_server_that_died_of_an_exception_still_exits_1() -> None:
    assert provider_server.exit_code(types.ModuleType("sys")) == 0
    died = types.ModuleType("sys")
    died.last_value = RuntimeError("boom")  # type: ignore[attr-defined]
    assert provider_server.exit_code(died) == 1
