"""The dynamic-provider server's exit, without the interpreter's slow teardown.

The engine ends a run by interrupting the provider process (SIGINT) and waits for it to exit.
The SDK's server (`python -m pulumi.dynamic`) then stops its gRPC server and returns, and
Python joins the handler threads still running a call, runs the exit handlers, and tears
down every module and object it loaded (gRPC, pydantic, asyncssh, open SSH connections):
~0.2-0.3 s on every `preview` and `up`, all of it after the work is done.

`install` registers an exit handler that ends the process as soon as the handler threads are
joined: Python joins them before it runs any exit handler, so a call still running when the
engine interrupts finishes as before; only the teardown is skipped. The output streams and
logging are flushed first; the exit handlers registered before this one do not run (coverage,
which the test suite runs in the server too, saves its data on `os._exit`: its `_exit` patch).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from types import ModuleType

SERVER_MAIN = "pulumi.dynamic.__main__"
_installed = False


def in_provider_server(main: ModuleType | None) -> bool:
    """`python -m pulumi.dynamic`, or the server the language host starts ahead
    (tools/pulumi/pulumi-dynamic-warm.py, which marks itself)."""
    if getattr(main, "DYNAMIC_PROVIDER_SERVER", False) is True:
        return True
    spec = getattr(main, "__spec__", None)
    return getattr(spec, "name", None) == SERVER_MAIN


def exit_code(module: ModuleType) -> int:
    """1 when the main thread died of an exception (Python records it as `last_value` before
    exiting with 1), else 0: the server's own ending, after the interrupt, returns."""
    return 1 if getattr(module, "last_value", None) is not None else 0


def _exit_now() -> None:
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(exit_code(sys))


def install() -> bool:
    """In the provider server's process (and only there), exit without the teardown."""
    global _installed
    if _installed or not in_provider_server(sys.modules.get("__main__")):
        return False
    atexit.register(_exit_now)
    _installed = True
    return True
