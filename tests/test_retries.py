"""Which connect failures are retried (with backoff, bounded) and which never are."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rbee_infra.base.errors import AuthError, ConnectError, HostKeyError
from rbee_infra.config.spec import Connection
from rbee_infra.host import ssh

pytestmark = pytest.mark.unit

CONN = Connection(host="127.0.0.9", port=2222, user="rbee", known_hosts="/k", dial_error_limit=3)


class FakeConn:
    def get_server_host_key(self) -> None:
        return None


def patched(monkeypatch: pytest.MonkeyPatch, outcomes: list[Any]) -> list[float]:
    calls: list[Any] = []
    sleeps: list[float] = []

    async def connect_once(c: Connection, label: str) -> Any:
        outcome = outcomes[len(calls)]
        calls.append(outcome)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def no_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    monkeypatch.setattr(ssh, "_connect_once", connect_once)
    monkeypatch.setattr(ssh.asyncio, "sleep", no_sleep)
    return sleeps


def test_transient_failures_are_retried_with_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    refused = ConnectError("hive a", "Connection refused")
    sleeps = patched(monkeypatch, [refused, refused, FakeConn()])
    session = asyncio.run(ssh.dial(CONN, "hive a"))
    assert session.handshakes == 3
    assert sleeps == [0.5, 1.0]


def test_retries_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    refused = ConnectError("hive a", "Connection refused")
    sleeps = patched(monkeypatch, [refused, refused, refused, FakeConn()])
    with pytest.raises(ConnectError):
        asyncio.run(ssh.dial(CONN, "hive a"))
    assert len(sleeps) == 2


@pytest.mark.parametrize(
    "error",
    [AuthError("hive a", "authentication refused"), HostKeyError("hive a", "key changed")],
)
def test_auth_and_host_key_failures_are_never_retried(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    sleeps = patched(monkeypatch, [error, FakeConn()])
    with pytest.raises(type(error)):
        asyncio.run(ssh.dial(CONN, "hive a"))
    assert sleeps == []
