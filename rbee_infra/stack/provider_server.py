"""The dynamic-provider server's process: what the engine shows when a handler fails (an
expected error's message, a bug's traceback), and its exit without Python's teardown.

The SDK's dynamic-provider server (`python -m pulumi.dynamic`) wraps every handler in
`_abort_with_traceback`, which answers any exception with
`context.abort(UNKNOWN, traceback.format_exc())`: the engine prints that text as the
resource's error, so a failed build read as 40 lines of Python frames (the SDK's wrapper, the
providers, the pool) before the message. rbee-infra's own errors (`RbeeError`: a failed build,
preflight, connection, lock or verification) are expected and their message says everything;
only an unexpected exception (a bug) should bring its traceback.

The server runs as `__main__` and cannot be imported (importing `pulumi.dynamic.__main__`
would run a second server). `quiet_expected_errors` finds the running server's module in
`sys.modules` by what it defines, and gives it a `traceback` whose `format_exc()` is the
message alone for an `RbeeError` and the full traceback for anything else. Anywhere else (the
Pulumi program, tests) it does nothing.

The exit: the engine ends a run by interrupting the provider process (SIGINT) and waits for it.
The SDK's server then stops its gRPC server and returns, and Python joins the handler threads
still running a call, runs the exit handlers, and tears down every module and object it loaded
(gRPC, pydantic, asyncssh, open SSH connections): 0.2-0.35 s on every `preview` and `up`, all
of it after the work is done. `exit_without_teardown` registers an exit handler that ends the
process once the handler threads are joined (Python joins them before any exit handler runs,
so a call still running when the engine interrupts finishes as before). Exit handlers
registered after it run first (the kick-off's report of the builds left running); those
registered before it do not (coverage, which the test suite runs in the server, saves its
data on `os._exit` all the same: its `_exit` patch). The output streams and logging are
flushed first.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import traceback
import types
from typing import Any

from rbee_infra.base.errors import RbeeError

# how the SDK's server module is known: as the program run (`python -m pulumi.dynamic`) or,
# where something imported it, by its own name
SERVER_MODULES = ("__main__", "pulumi.dynamic.__main__")
SERVER_MARKS = ("_abort_with_traceback", "DynamicResourceProviderServicer")


class ExpectedErrorsAsMessages(types.ModuleType):
    """`traceback`, except that `format_exc()` of an `RbeeError` is its message."""

    def __init__(self, real: types.ModuleType) -> None:
        super().__init__("traceback", real.__doc__)
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def format_exc(self, limit: int | None = None, chain: bool = True) -> str:
        error = sys.exc_info()[1]
        if isinstance(error, RbeeError):
            return str(error)
        return self.real.format_exc(limit, chain)


def server_module() -> types.ModuleType | None:
    """The SDK's provider server module running in this process, if any."""
    for name in SERVER_MODULES:
        module = sys.modules.get(name)
        # its namespace, not getattr: a module's own __getattr__ must not run here
        namespace = getattr(module, "__dict__", None) or {}
        if all(mark in namespace for mark in SERVER_MARKS):
            return module
    return None


def quiet_expected_errors() -> bool:
    """Make the running provider server report an `RbeeError` as its message alone.
    Idempotent; False where no provider server runs (the program, a test process)."""
    module = server_module()
    if module is None:
        return False
    current = module.__dict__.get("traceback")
    if not isinstance(current, ExpectedErrorsAsMessages):
        module.__dict__["traceback"] = ExpectedErrorsAsMessages(
            current if isinstance(current, types.ModuleType) else traceback
        )
    return True


_exiting_fast = False


def exit_code(sys_module: types.ModuleType) -> int:
    """1 when the main thread died of an exception (Python records it as `last_value` before
    exiting with 1), else 0: the server's own ending, after the interrupt, returns."""
    return 1 if getattr(sys_module, "last_value", None) is not None else 0


def _exit_now() -> None:
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(exit_code(sys))


def exit_without_teardown() -> bool:
    """In the provider server's process (and only there), end it without the teardown.
    Idempotent; False where no provider server runs."""
    global _exiting_fast
    if _exiting_fast or server_module() is None:
        return False
    atexit.register(_exit_now)
    _exiting_fast = True
    return True
