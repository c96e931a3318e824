"""The only module that imports asyncssh: connect, run, upload; errors translated to ours."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shlex
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from rbee_infra.base.errors import (
    AuthError,
    CommandError,
    ConnectError,
    HostError,
    HostKeyError,
    PhaseTimeout,
)
from rbee_infra.base.quiet import import_asyncssh
from rbee_infra.base.redact import git_credential, redact_text
from rbee_infra.config.spec import Connection
from rbee_infra.host.known_hosts import entries


class _OnFirstUse:
    """asyncssh, imported when first used (thread-safe: the import system's module locks).
    The Pulumi program imports this module only for the provider classes it pickles, and
    must not pay asyncssh's ~0.25 s of imports on every `pulumi preview`/`up`."""

    def __getattr__(self, name: str) -> Any:
        return getattr(import_asyncssh(), name)


if TYPE_CHECKING:
    import asyncssh
else:
    asyncssh: ModuleType = _OnFirstUse()  # type: ignore[assignment]

STDERR_TAIL_LINES = 20

# SSH handshakes completed by this process, per `user@host:port` (see docs/performance.md).
HANDSHAKES: Counter[str] = Counter()


@dataclass(frozen=True)
class Result:
    exit_status: int | None
    stdout: str
    stderr: str


def script_command(script: str, *args: str) -> str:
    """`sh -c SCRIPT rbee ARGS...`: the script is a constant, values arrive as "$1".."$n"."""
    return shlex.join(["sh", "-c", script, "rbee", *args])


def without_credentials(args: Sequence[str]) -> tuple[list[str], str]:
    """The arguments with every credential-bearing git URL made plain, and the
    git-credential-store lines for the script's standard input: a process's argv (and its
    environment) is readable by every user of the host through /proc."""
    public: list[str] = []
    lines: list[str] = []
    for arg in args:
        split = git_credential(arg)
        if split is None:
            public.append(arg)
            continue
        public.append(split[0])
        if split[1] not in lines:
            lines.append(split[1])
    return public, "".join(f"{line}\n" for line in lines)


def tail(text: str, lines: int = STDERR_TAIL_LINES) -> str:
    kept = [line.rstrip() for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


@dataclass
class Session:
    """One open SSH connection to one host, with what is needed to report on it."""

    conn: asyncssh.SSHClientConnection
    label: str
    secrets: tuple[str, ...] = ()
    server_host_key: str = ""
    handshakes: int = 1
    # a shared connection: bounds the channels open on it at once (sshd's MaxSessions)
    channels: asyncio.Semaphore | None = None

    def _channel(self) -> contextlib.AbstractAsyncContextManager[object]:
        return self.channels if self.channels is not None else contextlib.nullcontext()

    def scrub(self, text: str) -> str:
        return redact_text(text, self.secrets)

    async def run(
        self,
        script: str,
        *args: str,
        phase: str,
        check: bool = True,
        timeout: float | None = None,
        summary: str = "",
        stdin: str | None = None,
    ) -> Result:
        if stdin is None:
            plain, credentials = without_credentials(args)
            command, stdin = script_command(script, *plain), credentials
        else:
            command = script_command(script, *args)
            if any(git_credential(a) for a in args):
                raise ValueError("a credential-bearing URL in the arguments of a script that "
                                 "takes its own standard input")
        try:
            async with self._channel():
                # no input: end of file at once (a script reading stdin must not wait)
                feed: dict[str, Any] = {"input": stdin} if stdin else {"stdin": asyncssh.DEVNULL}
                completed = await asyncio.wait_for(
                    self.conn.run(command, check=False, **feed), timeout=timeout
                )
        except asyncio.TimeoutError:
            raise PhaseTimeout(self.label, phase, timeout or 0) from None
        except (
            asyncssh.ConnectionLost,
            asyncssh.DisconnectError,
            asyncssh.ChannelOpenError,
            OSError,
        ) as error:
            raise ConnectError(self.label, self.scrub(_describe(error)), phase=phase) from None
        if completed.exit_status is None and completed.exit_signal is None:
            # the channel closed with neither an exit status nor a signal: the link dropped
            raise ConnectError(
                self.label, "connection lost before the command finished", phase=phase
            )
        result = Result(
            exit_status=completed.exit_status,
            stdout=self.scrub(_text(completed.stdout)),
            stderr=self.scrub(_text(completed.stderr)),
        )
        if check and result.exit_status != 0:
            raise CommandError(
                self.label,
                phase,
                result.exit_status,
                tail(result.stderr or result.stdout),
                summary,
            )
        return result

    async def download(self, remote: str, local: Path, *, phase: str = "download") -> None:
        try:
            async with self._channel(), self.conn.start_sftp_client() as sftp:
                await sftp.get(remote, str(local))
        except asyncssh.SFTPError as error:
            raise HostError(self.label, phase, f"{remote}: {error.reason}") from None
        except (asyncssh.ConnectionLost, asyncssh.DisconnectError, OSError) as error:
            raise ConnectError(self.label, self.scrub(_describe(error)), phase=phase) from None

    async def upload(self, local: Path, remote: str, *, phase: str = "upload") -> None:
        try:
            async with self._channel(), self.conn.start_sftp_client() as sftp:
                await sftp.put(str(local), remote)
        except asyncssh.SFTPError as error:
            raise HostError(self.label, phase, f"{remote}: {error.reason}") from None
        except (asyncssh.ConnectionLost, asyncssh.DisconnectError, OSError) as error:
            raise ConnectError(self.label, self.scrub(_describe(error)), phase=phase) from None


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


def _describe(error: BaseException) -> str:
    if isinstance(error, asyncssh.Error):
        return error.reason or type(error).__name__
    if isinstance(error, OSError):
        if error.errno:
            return os.strerror(error.errno)
        if error.strerror:
            return error.strerror
    return str(error) or type(error).__name__


def fingerprint(public_key_line: str) -> str:
    try:
        return asyncssh.import_public_key(public_key_line).get_fingerprint("sha256")
    except (asyncssh.KeyImportError, ValueError):
        return "unparseable key"


def key_decrypt_problem(reason: str) -> str:
    """What to tell the operator when asyncssh cannot decrypt a private key. Only a failed
    check of the decrypted bytes means a wrong passphrase; a missing bcrypt (OpenSSH's key
    format derives its key with bcrypt's KDF) or an unknown cipher is not the user's typo."""
    lowered = reason.lower()
    if "bcrypt" in lowered:
        return (
            "the private key is encrypted in OpenSSH format and decrypting it needs the "
            "Python package bcrypt, which is not installed: pip install 'asyncssh[bcrypt]'"
        )
    if "incorrect passphrase" in lowered:
        return "the private key could not be decrypted (wrong passphrase?)"
    return f"the private key could not be decrypted: {reason}"


def _client_keys(c: Connection, label: str) -> list[asyncssh.SSHKey] | None:
    passphrase = c.private_key_password
    try:
        if c.private_key:
            return [asyncssh.import_private_key(c.private_key, passphrase)]
        if c.private_key_path:
            path = os.path.expanduser(c.private_key_path)
            return [asyncssh.read_private_key(path, passphrase)]
    except asyncssh.KeyEncryptionError as error:
        raise AuthError(label, key_decrypt_problem(str(error))) from None
    except asyncssh.KeyImportError as error:
        if "passphrase must be specified" in str(error).lower():
            raise AuthError(
                label, "the private key is encrypted: set rbee:sshPrivateKeyPassword"
            ) from None
        raise AuthError(label, "the private key could not be read (not a supported key)") from None
    except ValueError:
        raise AuthError(label, "the private key could not be read (not a supported key)") from None
    except OSError as error:
        raise AuthError(
            label, f"the private key file could not be read: {error.strerror}"
        ) from None
    return None


def _known_hosts(c: Connection, label: str) -> object:
    if c.host_key:
        try:
            key = asyncssh.import_public_key(c.host_key)
        except (asyncssh.KeyImportError, ValueError):
            raise HostKeyError(label, "the pinned hostKey is not a valid public key") from None
        return ([key], [], [])
    if c.host_key_policy == "tofu":
        # like OpenSSH's accept-new: a host known_hosts lists must match it; only a host it
        # does not list is a first use (the caller records the key it was shown)
        return listed_in_known_hosts(c)
    if not c.known_hosts:
        raise HostKeyError(label, "no known_hosts file and no hostKey given; refusing to connect")
    path = Path(os.path.expanduser(c.known_hosts))
    if not path.is_file():
        raise HostKeyError(
            label,
            f"known_hosts file {c.known_hosts} does not exist; add the host key "
            "(ssh-keyscan, checked out of band) or pin it with hostKey",
        )
    return str(path)


def _known_hosts_text(c: Connection) -> tuple[str, str] | None:
    if not c.known_hosts:
        return None
    path = Path(os.path.expanduser(c.known_hosts))
    try:
        return str(path), path.read_text(errors="replace")
    except OSError:
        return None


def listed_in_known_hosts(c: Connection) -> str | None:
    """The known_hosts file, when it vouches for this host and port: a key of its, or a
    certificate authority for it (then only a key that CA signed is accepted)."""
    found = _known_hosts_text(c)
    if found is None:
        return None
    keys, _, authority = entries(found[1], c.host, c.port)
    return found[0] if keys or authority else None


def revoked_in_known_hosts(c: Connection, key: str) -> bool:
    """Whether the known_hosts file marks this key `@revoked` for the host: refused under
    every policy, as OpenSSH does (a pinned key, or one seen first, too)."""
    found = _known_hosts_text(c)
    return found is not None and " ".join(key.split()[:2]) in entries(found[1], c.host, c.port)[1]


async def _host_key_mismatch(
    c: Connection, label: str, tunnel: asyncssh.SSHClientConnection | None
) -> HostKeyError:
    try:
        shown = await asyncio.wait_for(
            asyncssh.get_server_host_key(c.host, c.port, tunnel=tunnel or ()),
            timeout=c.connect_timeout,
        )
        seen = shown.get_fingerprint("sha256") if shown else "none"
    except (OSError, asyncssh.Error, asyncio.TimeoutError):
        seen = "unknown"
    where = (
        f"pinned key {fingerprint(c.host_key)}" if c.host_key else f"known_hosts {c.known_hosts}"
    )
    return HostKeyError(
        label,
        f"host key for {c.host}:{c.port} ({seen}) does not match {where}; "
        "refusing to connect (if the host was reinstalled, verify and update the key)",
    )


# Jump host connections, per event loop: one per hop chain and credentials, shared by every
# target behind it (a hop's failure is never cached: the next dial tries it again).
_JUMPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Task[Any]]] = (
    weakref.WeakKeyDictionary()
)


async def _through_jumps(c: Connection, label: str) -> asyncssh.SSHClientConnection | None:
    """The last hop's connection (dialed through the ones before it), or None without hops."""
    loop = asyncio.get_running_loop()
    shared = _JUMPS.setdefault(loop, {})
    via: asyncssh.SSHClientConnection | None = None
    chain: list[dict[str, Any]] = []
    for hop in c.jumps:
        hc = c.through(hop)
        chain.append(hc.model_dump(mode="json"))
        key = hashlib.sha256(json.dumps(chain, sort_keys=True).encode()).hexdigest()
        task = shared.get(key)
        if task is not None and task.done() and (
            task.cancelled() or task.exception() is not None or task.result().is_closed()
        ):
            task = None
        if task is None:
            task = loop.create_task(_connect_once(hc, hop.label, tunnel=via))
            shared[key] = task
        try:
            via = await asyncio.shield(task)
        except HostError as error:
            if shared.get(key) is task:
                del shared[key]
            # named for this target, and for the hop that failed
            raise type(error)(label, f"{error.host}: {error.message}") from None
    return via


async def close_jumps() -> None:
    """Close this loop's jump host connections (before an `asyncio.run` ends)."""
    shared = _JUMPS.pop(asyncio.get_running_loop(), {})
    for task in shared.values():
        if task.done() and not task.cancelled() and task.exception() is None:
            task.result().close()
            await task.result().wait_closed()
        elif not task.done():
            task.cancel()


async def _connect_once(
    c: Connection, label: str, *, tunnel: asyncssh.SSHClientConnection | None = None
) -> asyncssh.SSHClientConnection:
    keys = _client_keys(c, label)
    agent = os.path.expanduser(c.agent_socket_path) if c.agent_socket_path else None
    if keys is None and agent is None:
        raise AuthError(label, "no private key, key path or agent socket configured")
    if c.jumps:
        tunnel = await _through_jumps(c, label)
    try:
        conn = await asyncio.wait_for(
            asyncssh.connect(
                c.host,
                port=c.port,
                tunnel=tunnel or (),
                username=c.user,
                client_keys=keys or (),
                agent_path=agent,
                known_hosts=_known_hosts(c, label),
                config=[],
                password=None,
                kbdint_auth=False,
                connect_timeout=c.connect_timeout,
                keepalive_interval=15,
                keepalive_count_max=4,
            ),
            timeout=c.connect_timeout + 5,
        )
    except asyncssh.HostKeyNotVerifiable:
        raise await _host_key_mismatch(c, label, tunnel) from None
    except asyncssh.PermissionDenied:
        raise AuthError(label, f"authentication refused for user {c.user}") from None
    except (asyncio.TimeoutError, TimeoutError):
        raise ConnectError(label, f"timed out after {c.connect_timeout:.0f}s") from None
    except (asyncssh.Error, OSError) as error:
        raise ConnectError(label, f"{_describe(error)} ({c.host}:{c.port})") from None
    shown = conn.get_server_host_key()
    line = shown.export_public_key("openssh").decode().strip() if shown else ""
    if line and revoked_in_known_hosts(c, line):
        conn.close()
        raise HostKeyError(
            label,
            f"host key for {c.host}:{c.port} ({fingerprint(line)}) is marked @revoked in "
            f"{c.known_hosts}; refusing to connect",
        )
    return conn


async def dial(c: Connection, label: str, *, secrets: Sequence[str] = ()) -> Session:
    """Open one connection, retrying transient failures (refused, timeout) with backoff.
    The caller closes `session.conn` (or uses `connect`)."""
    attempt = 0
    while True:
        attempt += 1
        try:
            conn = await _connect_once(c, label)
            break
        except ConnectError:
            if attempt >= c.dial_error_limit:
                raise
            await asyncio.sleep(min(0.5 * 2 ** (attempt - 1), 5.0))
    key = conn.get_server_host_key()
    session = Session(
        conn=conn,
        label=label,
        secrets=tuple(s for s in (*secrets, c.private_key_password) if s),
        server_host_key=key.export_public_key("openssh").decode().strip() if key else "",
        handshakes=attempt,
    )
    HANDSHAKES[f"{c.user}@{c.host}:{c.port}"] += 1
    return session


@asynccontextmanager
async def connect(
    c: Connection, label: str, *, secrets: Sequence[str] = ()
) -> AsyncIterator[Session]:
    """One connection for the length of the block."""
    session = await dial(c, label, secrets=secrets)
    try:
        yield session
    finally:
        session.conn.close()
        await session.conn.wait_closed()
