"""Trust on first use, per host for the whole stack (hostKeyPolicy "tofu").

Each resource keeps the key it trusts in its own inputs (`trustedHostKey`; the kick-off keeps
one per host), so the pin survives in the stack's state. Within one provider process (one
deployment) the engine checks resources one at a time in the program's order: the kick-off,
then each hive, then its workers. Every pin a check finds is recorded here, and a resource
with no pin of its own (a worker just added to a pinned host, a hive new to a pinned host)
takes the host's: it never trusts a new key where any resource of the stack already pinned one.

Like the provider's connections, this lives in the process, never on the pickled provider.
"""

from __future__ import annotations

import threading

from rbee_infra.base.errors import HostKeyError
from rbee_infra.config.spec import Connection, InstallSpec

_pins: dict[tuple[str, int], str] = {}
_lock = threading.Lock()


def target(c: Connection) -> tuple[str, int]:
    """A host as SSH knows it: the same machine whoever logs in (its host key is the same)."""
    return (c.host.lower(), c.port)


def pinned(c: Connection) -> str | None:
    with _lock:
        return _pins.get(target(c))


def record(c: Connection, key: str, label: str) -> None:
    """Remember `key` as the host's pin; a different pin already recorded is a conflict: two
    resources of the stack trust different keys for one host, and neither may go on."""
    with _lock:
        known = _pins.setdefault(target(c), key)
    if _same(known, key):
        return
    from rbee_infra.host.ssh import fingerprint

    raise HostKeyError(
        label,
        f"host key for {c.host}:{c.port} ({fingerprint(key)}) differs from the key another "
        f"resource of this stack pinned ({fingerprint(known)}); refusing to connect (if the "
        "host was reinstalled, verify its key and set it as hostKey)",
    )


def _same(a: str, b: str) -> bool:
    return a.split()[:2] == b.split()[:2]


def first_use(spec: InstallSpec) -> bool:
    """Under "tofu", no key fixed by config and none pinned by this resource yet."""
    c = spec.connection
    return c.host_key_policy == "tofu" and not c.host_key and not spec.trusted_host_key


def adopt(spec: InstallSpec, label: str) -> str | None:
    """The host's pin for a resource that has none of its own (recorded by another resource
    of the stack), else None. A pin of its own is recorded; one that differs from the host's
    raises HostKeyError."""
    c = spec.connection
    if c.host_key_policy != "tofu" or c.host_key:
        return None
    if spec.trusted_host_key:
        record(c, spec.trusted_host_key, label)
        return None
    return pinned(c)
