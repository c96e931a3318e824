"""Loopback TCP proxy that can add latency, limit bandwidth and cut connections."""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from types import TracebackType

_CHUNK = 16384


class _Conn:
    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client = client
        self.server = server
        self.pumps = 2
        self.dead = False

    def kill(self) -> None:
        """Wake both pumps without sending anything; the final close then sends RST."""
        self.dead = True
        for s in (self.client, self.server):
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RD)


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class TcpProxy:
    """Forward `listen_host:port` (port chosen freely) to `target_host:target_port`.

    `latency` seconds are added to every chunk in each direction; `bandwidth` (bytes/s,
    0 = unlimited) paces each direction. After a cut, live connections are reset and new ones
    are accepted then reset at once, until `restore()`.
    """

    def __init__(self, target_host: str, target_port: int, listen_host: str = "127.0.0.1",
                 *, latency: float = 0.0, bandwidth: int = 0) -> None:
        if not target_host.startswith("127.") or not listen_host.startswith("127."):
            raise ValueError("TcpProxy only forwards between loopback addresses")
        self.target = (target_host, target_port)
        self.latency = latency
        self.bandwidth = bandwidth
        self.bytes_up = 0  # client -> server
        self.bytes_down = 0  # server -> client
        self.connections_total = 0
        self._lock = threading.Lock()
        self._cut = False
        self._cut_at_down: int | None = None
        self._live: set[_Conn] = set()
        self._closed = False
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((listen_host, 0))
        self._listener.listen(128)
        self.host = listen_host
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name="tcp-proxy", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ control

    @property
    def bytes_transferred(self) -> int:
        return self.bytes_up + self.bytes_down

    @property
    def is_cut(self) -> bool:
        return self._cut

    def cut_after_bytes(self, n: int) -> None:
        """Cut everything once `n` more bytes have gone server -> client (counted from now)."""
        with self._lock:
            self._cut_at_down = self.bytes_down + n

    def cut_now(self) -> None:
        with self._lock:
            self._cut = True
            self._cut_at_down = None
            live = list(self._live)
        for c in live:
            c.kill()

    def restore(self) -> None:
        with self._lock:
            self._cut = False
            self._cut_at_down = None

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            live = list(self._live)
        for c in live:
            c.kill()
        self._thread.join(2)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                ready, _, _ = select.select([self._listener], [], [], 0.2)
                if not ready:
                    continue
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections_total += 1
            if self._cut:
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
                server.settimeout(None)
            except OSError:
                _reset(client)
                continue
            conn = _Conn(client, server)
            with self._lock:
                if self._cut:
                    _reset(client)
                    _reset(server)
                    continue
                self._live.add(conn)
            for src, dst, down in ((client, server, False), (server, client, True)):
                threading.Thread(
                    target=self._pump, args=(conn, src, dst, down), daemon=True
                ).start()

    def _pump(self, conn: _Conn, src: socket.socket, dst: socket.socket, down: bool) -> None:
        try:
            while not conn.dead:
                data = src.recv(_CHUNK)
                if conn.dead:
                    return
                if not data:
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                    return
                if self.latency:
                    time.sleep(self.latency)
                if self.bandwidth:
                    time.sleep(len(data) / self.bandwidth)
                cut = False
                with self._lock:
                    if self._cut or conn.dead:
                        return
                    if down and self._cut_at_down is not None:
                        room = self._cut_at_down - self.bytes_down
                        if room <= len(data):
                            data = data[: max(room, 0)]
                            cut = True
                    if down:
                        self.bytes_down += len(data)
                    else:
                        self.bytes_up += len(data)
                if data:
                    dst.sendall(data)
                if cut:
                    self.cut_now()
                    return
        except OSError:
            conn.kill()
        finally:
            with self._lock:
                conn.pumps -= 1
                last = conn.pumps == 0
                if last:
                    self._live.discard(conn)
            if last:
                for s in (conn.client, conn.server):
                    with contextlib.suppress(OSError):
                        s.close()
