"""A dynamic-provider server started ahead of time, handed to the engine when it asks for one.

The engine starts the provider of `pulumi.dynamic` resources (`pulumi-resource-pulumi-python`)
only when the program registers its first such resource, and that process then imports the
Python SDK (~0.25 s) and the provider's own modules before it answers: all of it after the
program's start-up, on the critical path of every `preview` and `up`. When the project asks for
it (runtime option `providerPreload`), the language host starts this server beside the program
(`serve`): it imports the SDK's provider server and the listed modules while the program runs,
then waits on a unix socket private to the user. When the engine starts the provider plugin,
the launcher connects (`attach`) and hands over its standard streams, environment, directory
and arguments; this server takes them and runs the SDK's provider server
(`python -m pulumi.dynamic`) as that process would, and the launcher stays as its stand-in for
the engine: the engine's interrupt (its way to end the provider) is passed on, the launcher
exits when the server has, and a launcher killed outright takes the server with it. No socket,
a refused connection or a failed hand-over: the launcher starts the provider as before.

A program may also ask the server, while both run, to read ahead: it connects to the socket
(`PULUMI_PYTHON_WARM_SOCKET`, set by the language host) and sends `READ_AHEAD`, a length and a
JSON object `{"module": ..., "payload": ...}`; the server calls `read_ahead(payload)` of that
module, if it is one it preloaded, on a thread of its own, and goes on waiting for the launcher.
Whatever that call reads or opens (the hosts' state, SSH connections) is the provider's once
the server is handed over; it must only read and must never raise.

`serve SOCKET MODULE...` (language host) / `attach SOCKET PYTHON ARG...` (launcher, `python -S
-E`: standard library only; PYTHON starts the server itself when there is no warm one).
"""

import contextlib
import json
import os
import signal
import socket
import stat
import struct
import sys
import threading

_HEADER = struct.Struct("!I")
STOP = b"stop"
READ_AHEAD = b"READ"  # a program's request; a hand-over starts with its length instead


def _cold(python, args):
    os.execvp(python, [python, "-u", "-m", "pulumi.dynamic", *args])


def _read_exactly(conn, size, first=b""):
    data = first
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the hand-over was cut short")
        data += chunk
    return data


def _private(path):
    """Whether the socket's directory is this user's alone: the hand-over carries the whole
    environment (the passphrase, credentials), so it goes to no socket another user could have
    put there."""
    folder = os.lstat(os.path.dirname(path))
    return (
        stat.S_ISDIR(folder.st_mode)
        and folder.st_uid == os.getuid()
        and not folder.st_mode & 0o077
    )


@contextlib.contextmanager
def _beside(path):
    """The socket's name relative to its directory, entered for the call: a unix socket's path
    must fit in 108 bytes, and a long TMPDIR gives a longer one."""
    here = os.getcwd()
    os.chdir(os.path.dirname(path))
    try:
        yield os.path.basename(path)
    finally:
        os.chdir(here)


def attach(path, python, args):
    """The launcher's side: hand this process's streams to the warm server and stand in for it
    until it exits; without one, start the provider server here."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if not _private(path):
            raise PermissionError(f"{os.path.dirname(path)} is not private to this user")
        with _beside(path) as name:
            conn.connect(name)
        payload = json.dumps({"env": dict(os.environ), "cwd": os.getcwd(), "argv": args})
        data = payload.encode()
        socket.send_fds(conn, [_HEADER.pack(len(data))], [0, 1, 2])
        conn.sendall(data)
        if conn.recv(16) != b"ok":
            raise ConnectionError("the warm server refused the hand-over")
    except OSError:
        conn.close()
        _cold(python, args)

    def stop(_signum, _frame):
        with contextlib.suppress(OSError):
            conn.sendall(STOP)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while conn.recv(64):  # the server closes it by exiting
        pass
    os._exit(0)


def _watch(conn):
    """The launcher asks to stop (the engine interrupted it): interrupt this process as the
    engine would have. The launcher gone (killed outright): go too."""
    while True:
        try:
            data = conn.recv(64)
        except OSError:
            data = b""
        if not data:
            os.kill(os.getpid(), signal.SIGKILL)
        if STOP in data:
            os.kill(os.getpid(), signal.SIGINT)


def _read_ahead(conn, modules):
    """A program's READ_AHEAD: its module's `read_ahead(payload)` on a thread of its own."""
    try:
        size = _HEADER.unpack(_read_exactly(conn, _HEADER.size))[0]
        request = json.loads(_read_exactly(conn, size))
    except (OSError, ValueError):
        return
    finally:
        conn.close()
    module = request.get("module") if isinstance(request, dict) else None
    hook = getattr(sys.modules.get(module), "read_ahead", None) if module in modules else None
    if callable(hook):
        threading.Thread(target=hook, args=(request.get("payload"),), daemon=True).start()


def _accept(listener, modules, parent, handed):
    """Take connections until the launcher's: a program's read-ahead requests are served as
    they come (the listed modules are imported by then); the hand-over goes to `handed`."""
    listener.settimeout(0.5)
    while True:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            if os.getppid() != parent:  # the language host is gone without handing us over
                os._exit(0)
            continue
        conn.settimeout(5)  # both the launcher and a program send at once
        try:
            header, fds, _, _ = socket.recv_fds(conn, _HEADER.size, 3)
            header = _read_exactly(conn, _HEADER.size, header)
        except OSError:
            conn.close()
            continue
        if header == READ_AHEAD and not fds:
            _read_ahead(conn, modules)
            continue
        handed.put((conn, header, fds))
        return


def serve(path, modules):
    """The language host's side: import ahead, wait for the launcher, become the server."""
    import importlib
    import queue

    os.setsid()  # the language host's interrupt is not this server's once it is handed over
    parent = os.getppid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with _beside(path) as name:
        listener.bind(name)
    listener.listen(8)

    def load(names):
        for name in names:
            # a module that cannot load here fails (or not) when the provider imports it
            with contextlib.suppress(Exception):
                importlib.import_module(name)

    load(modules)  # what a read-ahead needs first, the SDK's server after
    handed = queue.Queue(1)
    threading.Thread(
        target=_accept, args=(listener, modules, parent, handed), daemon=True
    ).start()
    load(("pulumi.dynamic", "pulumi.runtime.proto.provider_pb2_grpc"))
    conn, header, fds = handed.get()
    os.unlink(path)
    listener.close()
    conn.settimeout(30)
    request = json.loads(_read_exactly(conn, _HEADER.unpack(header)[0]))
    conn.settimeout(None)
    for target, fd in zip((0, 1, 2), fds, strict=True):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    # never an environment without the user's settings (HOME, SSH_AUTH_SOCK): a read ahead
    # may be reading it on another thread
    os.environ.update(request["env"])
    for name in set(os.environ) - set(request["env"]):
        os.environ.pop(name, None)
    sys.argv = ["pulumi.dynamic", *request["argv"]]
    conn.sendall(b"ok")
    with contextlib.suppress(OSError):  # handed over: no longer the language host's to stop
        os.unlink(path + ".pending")
    threading.Thread(target=_watch, args=(conn,), daemon=True).start()
    import runpy

    runpy.run_module("pulumi.dynamic", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    mode, where, *rest = sys.argv[1:]
    if mode == "serve":
        serve(where, rest)
    else:
        attach(where, rest[0], rest[1:])
