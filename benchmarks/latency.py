"""A network round trip for hosts on loopback: a TCP proxy in front of each sshd that holds
every chunk for a fixed time in each direction, so that a tool's round trips cost what they
would to hosts across a network. Benchmark 10 runs rbee-infra and pyinfra through it.

`delayed(lab, hosts, rtt_ms)` yields a copy of the lab whose hosts are the proxies (same
address, another port, the same host keys in a known_hosts of their own); the hosts themselves
are unchanged. Only the SSH connections are delayed: the hosts' own traffic (the lab's git
server) and everything between the tools' processes stays on plain loopback.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence

from benchmarks.common import Lab
from tests.harness.hosts import Host, free_port

CHUNK = 65536


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy reader to writer, each chunk `delay` seconds after it arrived, in order."""
    held: collections.deque[tuple[float, bytes]] = collections.deque()
    arrived = asyncio.Event()
    done = False

    async def deliver() -> None:
        while True:
            while not held:
                if done:
                    return
                arrived.clear()
                await arrived.wait()
            due, chunk = held.popleft()
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if not chunk:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            writer.write(chunk)
            await writer.drain()

    sender = asyncio.ensure_future(deliver())
    try:
        while True:
            chunk = await reader.read(CHUNK)
            held.append((time.monotonic() + delay, chunk))
            arrived.set()
            if not chunk:
                break
        done = True
        await sender
    except (OSError, asyncio.IncompleteReadError):
        sender.cancel()
    finally:
        with contextlib.suppress(OSError):
            writer.close()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _relay(target: Host, delay: float) -> Handler:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            host_r, host_w = await asyncio.open_connection(target.address, target.port)
        except OSError:
            client_w.close()
            return
        try:
            await asyncio.gather(
                _pump(client_r, host_w, delay), _pump(host_r, client_w, delay),
                return_exceptions=True,
            )  # fmt: skip
        except asyncio.CancelledError:  # the proxy stops (`_stop`): end as a closed link
            for writer in (client_w, host_w):
                writer.close()

    return handle


@contextlib.contextmanager
def delayed(lab: Lab, hosts: Sequence[Host], rtt_ms: float) -> Iterator[Lab]:
    """The lab with `hosts` behind proxies that add `rtt_ms` to every round trip."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="latency", daemon=True)
    thread.start()
    delay = rtt_ms / 2000.0
    proxied: list[Host] = []
    servers: list[asyncio.Server] = []
    try:
        for host in hosts:
            port = free_port(host.address)
            start = asyncio.start_server(_relay(host, delay), host.address, port)
            servers.append(asyncio.run_coroutine_threadsafe(start, loop).result(30))
            proxied.append(dataclasses.replace(host, port=port))
        known = lab.tmp / f"known_hosts-{rtt_ms:g}ms"
        known.write_text("".join(f"{h.known_hosts_line()}\n" for h in proxied))
        yield dataclasses.replace(
            lab, hosts=dataclasses.replace(lab.hosts, hosts=proxied, known_hosts_path=known)
        )
    finally:
        asyncio.run_coroutine_threadsafe(_stop(servers), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def _stop(servers: Sequence[asyncio.Server]) -> None:
    """Close the proxies and end the connections still open through them."""
    for server in servers:
        server.close()
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
