"""Start, reach and stop `python -m pulumi.dynamic` provider server processes."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

import grpc
from pulumi.runtime._grpc_settings import _GRPC_CHANNEL_OPTIONS
from pulumi.runtime.proto import provider_pb2_grpc

START_MODES = ("fork", "spawn")
EXIT_GRACE = 30.0


class ServerStartError(RuntimeError):
    pass


def hear_interrupts() -> None:
    """Undo an interrupt ignored by whoever started this process. A suite or benchmark started
    with SIGINT ignored (the background job of a non-interactive shell: how a CI runner may
    start `.ci/run`) passes that on to every process it starts, and Python installs no handler
    for a signal ignored at its start. The provider servers then never end on the interrupt
    that ends a deployment (the engine's, the engine driver's): they are killed after the
    grace, losing what they do at exit (saving the coverage they measured: every forked
    provider's data, 88.8 % against the 90 % floor), and every run waits out the grace. With
    Python's handler back, the children get the default at exec and run the same however this
    process was started. Call it from the main thread."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def zygote_env(env: dict[str, str]) -> dict[str, str]:
    """The fork server's environment: the providers' own, without coverage's start-up request.
    The fork server measures nothing of its own; each child it forks starts coverage from its
    request's environment (see _zygote.py)."""
    return {k: v for k, v in env.items() if not k.startswith("COVERAGE_PROCESS_")}


class _Zygote:
    """A pre-imported Python that forks fresh provider servers (see _zygote.py)."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "tests.harness._zygote"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=zygote_env(env), cwd=cwd, text=True, start_new_session=True,
        )
        self.fifo_dir = Path(tempfile.mkdtemp(prefix="rbee-provider-fifo-"))
        self.lock = threading.Lock()
        self.count = 0

    def alive(self) -> bool:
        return self.proc.poll() is None

    def fork(self, env: dict[str, str], cwd: Path, log_path: Path) -> tuple[int, Path]:
        with self.lock:
            self.count += 1
            fifo = self.fifo_dir / f"out-{self.count}"
            os.mkfifo(fifo)
            req = {"cwd": str(cwd), "env": env, "stdout": str(fifo), "stderr": str(log_path)}
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            raise ServerStartError("provider fork server did not answer")
        return int(line), fifo

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.fifo_dir, ignore_errors=True)


_ZYGOTES: dict[tuple[str, str, str], _Zygote] = {}
_ZYGOTES_LOCK = threading.Lock()


def _zygote_for(env: dict[str, str], cwd: Path) -> _Zygote:
    # children inherit sys.path from the zygote, so it must match the requested PYTHONPATH
    key = (sys.executable, env.get("PYTHONPATH", ""), str(cwd))
    with _ZYGOTES_LOCK:
        z = _ZYGOTES.get(key)
        if z is None or not z.alive():
            z = _ZYGOTES[key] = _Zygote(env, cwd)
        return z


def prewarm(env: dict[str, str], cwd: Path) -> None:
    _zygote_for(env, cwd)


@atexit.register
def _close_zygotes() -> None:
    with _ZYGOTES_LOCK:
        for z in _ZYGOTES.values():
            z.close()
        _ZYGOTES.clear()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return False


class ProviderProcess:
    """One provider server process: the port it printed, a gRPC stub, and its log."""

    def __init__(self, env: dict[str, str], cwd: Path, log_path: Path,
                 mode: str = "fork") -> None:
        if mode not in START_MODES:
            raise ValueError(f"start mode must be one of {START_MODES}")
        self.mode = mode
        self.log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - closed in shutdown()
        self.log.write(f"=== provider server start ({mode}) "
                       f"{time.strftime('%H:%M:%S')} ===\n".encode())
        self.log.flush()
        self.port: int | None = None
        self.channel: grpc.Channel | None = None
        self.stub: provider_pb2_grpc.ResourceProviderStub | None = None
        self.accept_secrets = False
        self._ready = threading.Event()
        self._popen: subprocess.Popen[bytes] | None = None
        if mode == "spawn":
            self._popen = subprocess.Popen(
                [sys.executable, "-u", "-m", "pulumi.dynamic"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log,
                env=env, cwd=cwd, start_new_session=True,
            )
            self.pid = self._popen.pid
            out = self._popen.stdout
            assert out is not None
            threading.Thread(target=self._pump, args=(out,), daemon=True).start()
        else:
            self.pid, fifo = _zygote_for(env, cwd).fork(env, cwd, log_path)
            threading.Thread(target=self._pump_fifo, args=(fifo,), daemon=True).start()

    def _pump_fifo(self, fifo: Path) -> None:
        try:
            out = open(fifo, "rb")  # noqa: SIM115 - read until the process exits
        except OSError:
            self._ready.set()
            return
        with contextlib.suppress(OSError):
            fifo.unlink()
        with out:
            self._pump(out)

    def _pump(self, out: IO[bytes]) -> None:
        first = out.readline()
        try:
            self.port = int(first.strip())
        except ValueError:
            self._write_log(first)
        self._ready.set()
        for line in out:
            self._write_log(line)

    def _write_log(self, data: bytes) -> None:
        with contextlib.suppress(ValueError, OSError):
            self.log.write(data)
            self.log.flush()

    def alive(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        return _pid_alive(self.pid)

    def connect(self, timeout: float = 60.0) -> provider_pb2_grpc.ResourceProviderStub:
        if self.stub is not None:
            return self.stub
        if not self._ready.wait(timeout) or self.port is None:
            raise ServerStartError("the provider server did not print its port; see its log")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}",
                                             options=_GRPC_CHANNEL_OPTIONS)
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)
        return self.stub

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            # a forked child may not have called setsid() yet
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, sig)
        except PermissionError:
            pass

    def _wait(self, timeout: float) -> bool:
        if self._popen is not None:
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while _pid_alive(self.pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def kill(self) -> None:
        """SIGKILL the whole process group at once (no chance to clean up)."""
        self._signal_group(signal.SIGKILL)
        self._wait(10)
        # calls in flight must fail on the dead socket, as the engine's did, not on our close
        threading.Timer(1.0, self._close_channel).start()

    def shutdown(self, grace: float = EXIT_GRACE) -> None:
        """SIGINT the process group, then SIGKILL after `grace` seconds. A provider ends in
        well under a second; the grace is long because what it does last (under the suite's
        coverage, saving its data: a database write) can take seconds on a slow or busy disk,
        and a process killed first loses it."""
        self._close_channel()
        if self.alive():
            self._signal_group(signal.SIGINT)
            self._wait(grace)
        self._signal_group(signal.SIGKILL)
        self._wait(10)
        with contextlib.suppress(OSError):
            self.log.close()

    def _close_channel(self) -> None:
        if self.channel is not None:
            self.channel.close()
        self.channel = None
        self.stub = None
