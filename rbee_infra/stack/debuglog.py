"""The SDK's debug messages, sent to the engine off the program's event loop.

The Python SDK logs about four debug messages per resource it registers ("registering
resource", "resource registration successful", ...), each a blocking gRPC call to the engine
made on the thread that runs the program's event loop, which every Output waits on. The
engine shows them only under `pulumi ... --debug`. At 64 hosts (193 resources) they held that
thread for 0.6 s of a 7 s preview (docs/performance.md). Here they go through one thread of
their own, in the order they were logged; every other severity is sent as before, at once.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pulumi.runtime import settings
from pulumi.runtime.proto import engine_pb2


class _DebugAside:
    """The engine's client; `Log` of a debug message queues it and returns."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        # one thread: the messages keep their order. Its queue is drained at interpreter exit
        # (concurrent.futures joins its workers then), so none is lost when the program ends.
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pulumi-debug")

    def Log(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if request.severity == engine_pb2.DEBUG:
            self._sender.submit(self.engine.Log, request, *args, **kwargs)
            return None
        return self.engine.Log(request, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


def send_debug_aside() -> None:
    """Route the SDK's debug messages through their own thread (once per program)."""
    engine = settings.get_engine()
    if engine is not None and not isinstance(engine, _DebugAside):
        settings.SETTINGS.engine = _DebugAside(engine)
