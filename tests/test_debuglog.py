"""The SDK's debug messages leave the program's event loop (`rbee_infra.stack.debuglog`)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import settings
from pulumi.runtime.proto import engine_pb2

from rbee_infra.stack.debuglog import send_debug_aside


class _Engine:
    """An engine client that records what it is sent; a debug message waits for `go`."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []
        self.go = threading.Event()
        self.threads: set[str] = set()

    def Log(self, request: Any) -> None:
        if request.severity == engine_pb2.DEBUG:
            assert self.go.wait(10)
        self.threads.add(threading.current_thread().name)
        self.sent.append((request.severity, request.message))

    def GetRootResource(self, request: Any) -> str:
        return "root"


def test_a_debug_message_does_not_wait_for_the_engine_and_keeps_its_order() -> None:
    engine = _Engine()
    before = settings.SETTINGS.engine
    settings.SETTINGS.engine = engine
    try:
        send_debug_aside()
        send_debug_aside()  # once is enough: a second call wraps nothing again
        assert settings.get_engine().engine is engine  # type: ignore[union-attr]
        # the engine holds every debug message; logging them returns all the same
        for n in range(5):
            pulumi.log.debug(f"debug {n}")
        pulumi.log.info("info")  # every other severity is sent at once, as before
        assert engine.sent == [(engine_pb2.INFO, "info")]
        assert settings.get_engine().GetRootResource(None) == "root"  # type: ignore[union-attr]
        engine.go.set()
        settings.get_engine()._sender.shutdown(wait=True)  # type: ignore[union-attr]
        assert engine.sent[1:] == [(engine_pb2.DEBUG, f"debug {n}") for n in range(5)]
        assert engine.threads - {threading.current_thread().name}
    finally:
        settings.SETTINGS.engine = before


PROGRAM = """
import sys, time
from pulumi.runtime import settings
from pulumi.runtime.proto import engine_pb2
import pulumi
from rbee_infra.stack.debuglog import send_debug_aside

class Engine:
    def Log(self, request):
        time.sleep(0.01)
        with open(sys.argv[1], "a") as out:
            out.write(request.message + "\\n")

settings.SETTINGS.engine = Engine()
send_debug_aside()
for n in range(20):
    pulumi.log.debug(f"debug {n}")
"""


def test_the_debug_messages_still_queued_are_sent_before_the_program_exits(
    tmp_path: Path,
) -> None:
    received = tmp_path / "received"
    program = tmp_path / "program.py"
    program.write_text(textwrap.dedent(PROGRAM))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run([sys.executable, str(program), str(received)], check=True, timeout=60, env=env)
    assert received.read_text().splitlines() == [f"debug {n}" for n in range(20)]
