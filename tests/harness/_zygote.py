"""Fork server for fresh `python -m pulumi.dynamic` processes.

Run as `python -u -m tests.harness._zygote`. It imports what the provider server imports once,
then for each JSON request line on stdin ({"cwd", "env", "stdout", "stderr"}) forks a child that
runs the SDK's `pulumi.dynamic` main module exactly as `python -m pulumi.dynamic` would, and
answers with the child's pid. A fresh server then costs ~50 ms instead of ~800 ms of imports.

Coverage: the fork server itself runs no rbee_infra code and is started unmeasured (see
`_provider_proc.zygote_env`). Each child measures itself when its own environment asks for it
(`COVERAGE_PROCESS_CONFIG`, as `python -m pulumi.dynamic` started by the engine would see it),
and saves its data before it exits. Nothing depends on whether coverage happened to be running
in the fork server when it forked. The engine driver gives a provider ample time to end after
its SIGINT (`_provider_proc.EXIT_GRACE`): saving the data is a database write, which a slow or
busy disk can make take seconds, and a provider killed before it ends loses it.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import runpy
import signal
import sys
import time
import traceback
from typing import Any

# what `python -m pulumi.dynamic` imports, loaded once here so forked children start fast
PRELOAD = ("dill", "grpc", "pulumi", "pulumi.dynamic", "pulumi.runtime.rpc",
           "pulumi.runtime.proto.provider_pb2_grpc", "google.protobuf.empty_pb2")


def _measure() -> Any:
    """Start coverage in this child when its environment asks for it (None otherwise)."""
    if not (os.environ.get("COVERAGE_PROCESS_CONFIG") or os.environ.get("COVERAGE_PROCESS_START")):
        return None
    import coverage

    return coverage.process_startup(force=True)


def _child(req: dict[str, Any]) -> None:
    code = 1
    cov = None
    try:
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(os.open(req["stderr"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644), 2)
        os.dup2(os.open(req["stdout"], os.O_WRONLY), 1)  # a FIFO the engine reads
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        cov = _measure()
        sys.argv = [sys.executable]
        runpy.run_module("pulumi.dynamic", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        # the harness's own test of a slow disk: what a provider does last takes this long
        time.sleep(float(os.environ.get("RBEE_HARNESS_SLOW_EXIT", "0") or 0))
        atexit._run_exitfuncs()
        if cov is not None:
            cov.stop()
            cov.save()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    # the engine driver ends a provider with SIGINT: never inherit it ignored (see conftest)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for name in PRELOAD:
        importlib.import_module(name)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    for line in sys.stdin:
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(req)
        sys.stdout.write(f"{pid}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
