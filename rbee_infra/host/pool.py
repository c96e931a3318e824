"""One SSH connection per host per provider process, shared by every resource and command.

The dynamic-provider server calls handlers on its own threads with no event loop. Instead of
one `asyncio.run` (and one SSH handshake) per call, handlers submit their coroutine to one
background event loop (`run`), which owns a cache of open connections keyed by target and a
fingerprint of the credentials: resources on the same host share one connection, and their
commands run as channels over it. A connection that dropped is replaced on the next lease;
different credentials (another key, another known_hosts, a pinned host key) never share one.

Nothing here lives on the provider object (which is pickled into state): the loop, its thread
and the cache are module globals, created on first use in the process that runs the handler.
Code that runs on any other event loop (the CLI's `status`, tests calling lifecycle functions
with `asyncio.run`) gets a private connection closed after use, as before.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import AsyncIterator, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rbee_infra.base.errors import ConnectError, HostError
from rbee_infra.config.spec import Connection
from rbee_infra.host.ssh import Session, connect, dial

T = TypeVar("T")

# sshd's default MaxSessions is 10: stay below it (a channel waits for a free slot).
CHANNELS_PER_CONNECTION = 8

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _start_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="rbee-infra-ssh", daemon=True)
            thread.start()
            _loop = loop
        return _loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on the shared loop and wait for it (from a thread with no running loop)."""
    loop = _start_loop()
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


def on_shared_loop() -> bool:
    try:
        return asyncio.get_running_loop() is _loop
    except RuntimeError:
        return False


def credentials_key(c: Connection) -> str:
    """Target + everything that decides who we authenticate as and which host key we trust.
    A hash, so the key material itself is not kept twice in memory as a dict key."""
    data = json.dumps(c.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()


@dataclass
class _Shared:
    session: Session
    channels: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(CHANNELS_PER_CONNECTION)
    )


_open: dict[str, _Shared] = {}
_dialing: dict[str, asyncio.Future[_Shared]] = {}
# A host this process never reached: the engine calls Check one resource at a time, so without
# this every resource on a dead host would wait out its own connect timeouts and retries. A host
# that answered once is dialed again after a drop (its link may be back).
_unreachable: dict[str, ConnectError] = {}
_reached: set[str] = set()


def _relabel(error: HostError, label: str) -> HostError:
    """The error of a dial made for another resource on the same host, named for this one."""
    # not copy.copy: it calls __init__ again with `args`, which HostError subclasses reshape
    mine = type(error).__new__(type(error))
    mine.__dict__.update(error.__dict__)
    mine.host = label
    mine.args = (str(error).replace(error.host, label, 1),)
    return mine


async def _shared(c: Connection, label: str, secrets: Sequence[str]) -> _Shared:
    key = credentials_key(c)
    while True:
        entry = _open.get(key)
        if entry is not None and not entry.session.conn.is_closed():
            return entry
        if entry is not None:
            _open.pop(key, None)  # it dropped: dial again
        if key in _unreachable:
            raise _relabel(_unreachable[key], label)
        pending = _dialing.get(key)
        if pending is None:
            return await _dial_for(key, c, label, secrets)
        try:
            return await asyncio.shield(pending)
        except HostError as error:
            raise _relabel(error, label) from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            cancelling = getattr(task, "cancelling", lambda: 0)()
            if pending.cancelled() and not cancelling:
                continue  # the dialing resource was cancelled, not this one: dial ourselves
            raise


async def _dial_for(key: str, c: Connection, label: str, secrets: Sequence[str]) -> _Shared:
    """Dial once for everyone asking for `key` meanwhile (one handshake per host)."""
    pending: asyncio.Future[_Shared] = asyncio.get_running_loop().create_future()
    _dialing[key] = pending
    try:
        session = await dial(c, label, secrets=secrets)
    except asyncio.CancelledError:
        pending.cancel()
        raise
    except BaseException as error:
        if isinstance(error, ConnectError) and key not in _reached:
            _unreachable[key] = error
        pending.set_exception(error)
        pending.exception()  # retrieved: no "never retrieved" warning when nobody waits
        raise
    finally:
        _dialing.pop(key, None)
    entry = _Shared(session)
    _reached.add(key)
    _open[key] = entry
    pending.set_result(entry)
    return entry


def discard(session: Session) -> None:
    """Forget a connection that failed (it is closed, or about to be): the next lease dials."""
    for key, entry in list(_open.items()):
        if entry.session.conn is session.conn:
            del _open[key]
            entry.session.conn.close()


@asynccontextmanager
async def lease(
    c: Connection, label: str, *, secrets: Sequence[str] = ()
) -> AsyncIterator[Session]:
    """A session on the host's shared connection (on the shared loop), else a private one."""
    if not on_shared_loop():
        async with connect(c, label, secrets=secrets) as private:
            yield private
        return
    entry = await _shared(c, label, secrets)
    base = entry.session
    session = Session(
        conn=base.conn,
        label=label,
        secrets=tuple(s for s in (*secrets, c.private_key_password) if s),
        server_host_key=base.server_host_key,
        handshakes=0,
        channels=entry.channels,
    )
    try:
        yield session
    except ConnectError:
        if base.conn.is_closed():
            discard(base)
        raise


# Per-host memos (see `hostview`): what a read-only probe saw, per target and credentials.
# When a resource changes the host, `forget` marks what it touched as stale in every memo of
# that target: install names, and the marks below for the hive's extras and service.
EXTRAS_MARK = "@extras"
HEALTH_MARK = "@health"
memos: dict[tuple[str, str], dict[str, Any]] = {}


def _target(c: Connection) -> str:
    return f"{c.user}@{c.host}:{c.port}"


def memo(c: Connection) -> dict[str, Any]:
    return memos.setdefault((_target(c), credentials_key(c)), {})


def forget(c: Connection, touched: Iterable[str] | None = None) -> None:
    """`touched` went stale on this host (None: everything)."""
    for key in [k for k in memos if k[0] == _target(c)]:
        if touched is None:
            del memos[key]
            continue
        for entry in memos[key].get("views", []):
            entry.stale.update(touched)


def open_connections() -> int:
    """How many shared connections are open now (for tests and benchmarks)."""
    return sum(1 for e in _open.values() if not e.session.conn.is_closed())
