"""The dynamic-provider server started ahead (tools/pulumi/pulumi-dynamic-warm.py) and the
launcher the engine starts (tools/pulumi/pulumi-resource-pulumi-python): the launcher hands
itself over to a waiting server, which then answers the engine as the provider would, with the
launcher's environment and directory; without one the launcher starts the server itself; an
interrupt ends both, a launcher killed outright takes the server with it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools" / "pulumi"
LAUNCHER = TOOLS / "pulumi-resource-pulumi-python"
WARM = TOOLS / "pulumi-dynamic-warm.py"

pytestmark = pytest.mark.unit


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, TMPDIR=str(tmp_path), PULUMI_PYTHON_CMD=sys.executable, **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("PULUMI_RUNTIME_VIRTUALENV", None)
    return env


def _socket(tmp_path: Path) -> Path:
    """Where the launcher looks: this process is its parent, as the engine would be."""
    folder = tmp_path / f"pulumi-python-warm-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / f"{os.getpid()}.sock"


@contextlib.contextmanager
def _served(
    tmp_path: Path, *modules: str, **extra: str
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A server started ahead, as the language host starts it (with its pending marker)."""
    path = _socket(tmp_path)
    Path(f"{path}.pending").touch(mode=0o600)
    server = subprocess.Popen(
        [sys.executable, "-u", str(WARM), "serve", str(path),
         *(modules or ("rbee_infra.config.spec",))],
        env=_env(tmp_path, **extra), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not path.exists():
            if server.poll() is not None:
                assert server.stderr is not None
                raise AssertionError(f"the warm server exited: {server.stderr.read().decode()}")
            assert time.monotonic() < deadline, "the warm server never listened"
            time.sleep(0.02)
        yield server, path
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()


@pytest.fixture
def warm(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    with _served(tmp_path) as served:
        yield served


def _launch(tmp_path: Path, cwd: Path, **extra: str) -> tuple[subprocess.Popen[bytes], int]:
    """The launcher as the engine starts it (its own process group); its port."""
    launcher = subprocess.Popen(
        [str(LAUNCHER)], env=_env(tmp_path, **extra), cwd=cwd, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    assert launcher.stdout is not None
    line = launcher.stdout.readline().decode().strip()
    assert line.isdigit(), (line, launcher.stderr.read() if launcher.stderr else b"")
    return launcher, int(line)


def _probe(port: int) -> dict[str, Any]:
    """A Check of the probe provider, which answers with what its process sees."""
    import asyncio

    import grpc
    from pulumi.dynamic.dynamic import PROVIDER_KEY, serialize_provider
    from pulumi.runtime import rpc
    from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

    from tests.warm_probe import ProcessProbe

    loop = asyncio.new_event_loop()
    try:
        news = loop.run_until_complete(
            rpc.serialize_properties({PROVIDER_KEY: serialize_provider(ProcessProbe())}, {})
        )
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = provider_pb2_grpc.ResourceProviderStub(channel)
            stub.Configure(provider_pb2.ConfigureRequest(acceptSecrets=True), timeout=60)
            answer = stub.Check(provider_pb2.CheckRequest(
                urn="urn:pulumi:s::p::pulumi-python:dynamic:Resource::probe", news=news),
                timeout=60)  # fmt: skip
        return dict(rpc.deserialize_properties(answer.inputs))
    finally:
        loop.close()


def _interrupt(launcher: subprocess.Popen[bytes]) -> int:
    os.killpg(launcher.pid, signal.SIGINT)  # how the engine ends a provider
    return launcher.wait(timeout=30)


def test_the_launcher_hands_over_to_the_server_started_ahead(
    warm: tuple[subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    server, path = warm
    workdir = tmp_path / "project"
    workdir.mkdir()
    launcher, port = _launch(tmp_path, workdir, WARM_PROBE="from the engine")
    seen = _probe(port)
    # the server started ahead answered, as the launcher's process would have
    assert seen["pid"] == server.pid
    assert seen["marker"] == "from the engine" and seen["cwd"] == str(workdir)
    assert seen["preloaded"] is True  # imported while it waited
    assert not path.exists() and not Path(f"{path}.pending").exists()  # handed over
    assert _interrupt(launcher) == 0
    assert server.wait(timeout=30) == 0


def test_without_a_server_the_launcher_starts_one(tmp_path: Path) -> None:
    launcher, port = _launch(tmp_path, ROOT, WARM_PROBE="cold")
    seen = _probe(port)
    assert seen["pid"] == launcher.pid and seen["marker"] == "cold"
    assert seen["preloaded"] is False
    assert _interrupt(launcher) == 0


def test_a_launcher_killed_outright_takes_the_server_with_it(
    warm: tuple[subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    server, _ = warm
    launcher, port = _launch(tmp_path, ROOT)
    assert _probe(port)["pid"] == server.pid
    os.killpg(launcher.pid, signal.SIGKILL)  # the engine's last resort
    launcher.wait(timeout=30)
    assert server.wait(timeout=30) == -signal.SIGKILL


def test_a_server_nobody_took_leaves_with_its_language_host(tmp_path: Path) -> None:
    path = _socket(tmp_path)
    host = subprocess.Popen(  # a stand-in language host that starts the server and exits
        [sys.executable, "-c", "import subprocess, sys, time; p = subprocess.Popen(sys.argv[1:]);"
         " print(p.pid, flush=True); time.sleep(3)",
         sys.executable, "-u", str(WARM), "serve", str(path)],
        env=_env(tmp_path), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert host.stdout is not None
    server_pid = int(host.stdout.readline())
    assert host.wait(timeout=30) == 0
    deadline = time.monotonic() + 10
    while _alive(server_pid):
        assert time.monotonic() < deadline, "the warm server outlived its language host"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_a_socket_another_user_could_have_placed_is_not_used(
    warm: tuple[subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    server, path = warm
    path.parent.chmod(0o755)  # the hand-over carries the passphrase: a private directory only
    launcher, port = _launch(tmp_path, ROOT)
    assert _probe(port)["pid"] == launcher.pid  # started its own
    assert path.exists() and server.poll() is None  # the waiting one was not touched
    assert _interrupt(launcher) == 0


def test_the_projects_preload_imports_and_leaves_the_stack_to_the_server() -> None:
    """Pulumi.yaml's providerPreload: every module imports, and none imports rbee_infra.stack,
    whose import sets up the running provider server (error messages, the fast exit): in the
    server started ahead it must come after the hand-over, with the first call."""
    import yaml

    settings = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    modules = settings["runtime"]["options"]["providerPreload"]
    assert "asyncssh" in modules and "rbee_infra.install.lifecycle" in modules
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('rbee_infra.stack'))))"
    )
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=ROOT, env=_env(ROOT),
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    assert done.stdout.strip() == "[]"


def test_a_socket_path_beyond_the_unix_limit_still_hands_over(tmp_path: Path) -> None:
    """A unix socket's path holds at most 108 bytes; under a long TMPDIR the server binds and
    the launcher connects by the name relative to the socket's directory."""
    deep = tmp_path / ("t" * 60) / ("m" * 60)
    deep.mkdir(parents=True)
    with _served(deep) as (server, path):
        assert len(str(path)) > 108
        workdir = tmp_path / "project"
        workdir.mkdir()
        launcher, port = _launch(deep, workdir, WARM_PROBE="long path")
        seen = _probe(port)
        assert seen["pid"] == server.pid and seen["cwd"] == str(workdir)
        assert _interrupt(launcher) == 0


def _asked(path: Path, hosts: list[dict[str, Any]], module: str = "tests.warm_probe") -> None:
    """The program's request to read ahead, as the program makes it (`ask_to_read_ahead`),
    for `module` (the program's own is rbee_infra.host.hostview)."""
    from rbee_infra.stack import program

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PULUMI_PYTHON_WARM_SOCKET", str(path))
        patch.setattr(program, "READ_AHEAD_MODULE", module)
        program.ask_to_read_ahead(hosts)


def _read(path: Path, timeout: float = 60) -> Any:
    import json

    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().endswith("\n"):
        assert time.monotonic() < deadline, f"{path} was never written"
        time.sleep(0.02)
    return json.loads(path.read_text())


def test_a_program_asks_the_server_to_read_ahead_before_the_hand_over(tmp_path: Path) -> None:
    """The program sends the hosts; the server, still waiting for the launcher, calls its
    preloaded module's `read_ahead` with them (a host whose value is known only later, such as
    a secret's Output, is left out), then is handed over as before: the provider that answers
    is the process that read ahead."""
    out = tmp_path / "read-ahead.json"
    late = {"alias": "late", "connection": {"privateKey": object()}, "installs": []}
    with _served(tmp_path, "tests.warm_probe", WARM_PROBE_OUT=str(out)) as (server, path):
        _asked(path, [{"alias": "a", "connection": {"host": "127.0.0.9"}, "installs": []}, late])
        seen = _read(out)
        assert seen == {"pid": server.pid, "payload": {"hosts": [
            {"alias": "a", "connection": {"host": "127.0.0.9"}, "installs": []}]}}  # fmt: skip
        assert path.exists() and server.poll() is None  # still waiting for the launcher
        launcher, port = _launch(tmp_path, ROOT)
        assert _probe(port)["pid"] == server.pid
        assert _interrupt(launcher) == 0


def test_a_read_ahead_goes_only_to_a_preloaded_module_and_a_private_socket(
    tmp_path: Path,
) -> None:
    out = tmp_path / "read-ahead.json"
    hosts = [{"alias": "a", "connection": {}, "installs": []}]
    with _served(tmp_path, "tests.warm_probe", WARM_PROBE_OUT=str(out)) as (server, path):
        _asked(path, hosts, module="rbee_infra.host.hostview")  # not in this server's preload
        path.parent.chmod(0o755)  # a directory another user could have placed the socket in
        _asked(path, hosts)
        path.parent.chmod(0o700)
        time.sleep(1)
        assert not out.exists()  # neither was called
        _asked(path, hosts)  # the server still takes a request, and then the launcher
        assert _read(out)["payload"] == {"hosts": hosts}
        launcher, port = _launch(tmp_path, ROOT)
        assert _probe(port)["pid"] == server.pid
        assert _interrupt(launcher) == 0
