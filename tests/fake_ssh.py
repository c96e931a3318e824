"""A fake SSH transport for unit tests of the execution layer: scripted replies, recorded calls."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from rbee_infra.base.errors import CommandError
from rbee_infra.host import scripts
from rbee_infra.host.ssh import Result, tail

SCRIPT_NAMES = {
    getattr(scripts, name): name
    for name in dir(scripts)
    if name.isupper() and not name.startswith("_")
}

Reply = Result | Callable[[tuple[str, ...]], Result]


@dataclass
class FakeHost:
    """Replies per script name; every call is recorded as (script name, args)."""

    replies: dict[str, Reply] = field(default_factory=dict)
    calls: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    label: str = "hive test"

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def args_of(self, name: str) -> tuple[str, ...]:
        return next(args for n, args in self.calls if n == name)

    async def run(
        self, script: str, *args: str, phase: str, check: bool = True, **_: Any
    ) -> Result:
        name = SCRIPT_NAMES[script]
        self.calls.append((name, args))
        reply = self.replies.get(name, Result(0, "", ""))
        result = reply(args) if callable(reply) else reply
        if check and result.exit_status != 0:
            raise CommandError(self.label, phase, result.exit_status, tail(result.stderr))
        return result


def patch_transport(monkeypatch: Any, host: FakeHost) -> None:
    """Make every `open_session` in the library hand out `host`."""

    @asynccontextmanager
    async def fake_open_session(spec: Any) -> Any:
        host.label = spec.label
        yield host

    import rbee_infra.host.remote
    import rbee_infra.install.lifecycle

    monkeypatch.setattr(rbee_infra.host.remote, "open_session", fake_open_session)
    monkeypatch.setattr(rbee_infra.install.lifecycle, "open_session", fake_open_session)
