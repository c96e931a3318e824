"""Checks of the test harness itself: hosts, fixture repo, proxy, snapshots, engine driver."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import asyncssh
import pytest

from tests.harness._selfcheck_provider import FileProvider
from tests.harness.engine import Decl, Engine, Ref, Secret
from tests.harness.fixture_repo import (
    RbeeRepo,
    expected_version_line,
    expected_worker_about,
    worker_usage,
)
from tests.harness.fixtures import requires_root
from tests.harness.hosts import HostSet, mount_tmpfs, running_hosts, unmount_tmpfs
from tests.harness.proxy import TcpProxy
from tests.harness.snapshot import diff_snapshots, snapshot_home

PROVIDER = FileProvider()


async def _ssh_run(hs: HostSet, idx: int, cmd: str, **overrides: object) -> str:
    async with asyncssh.connect(**hs.connect_kwargs(hs[idx], **overrides)) as conn:
        return (await conn.run(cmd, check=True)).stdout or ""


# --------------------------------------------------------------------------- hosts


@requires_root
@pytest.mark.hosts
def test_three_hosts_up_fast_ssh_works_and_teardown_is_complete() -> None:
    t0 = time.monotonic()
    with running_hosts(3) as hs:
        assert time.monotonic() - t0 < 2.0
        assert len({(h.address, h.port) for h in hs}) == 3
        assert all(h.address != "127.0.0.1" and len(h.user) <= 32 for h in hs)

        async def all_hosts() -> list[str]:
            return await asyncio.gather(
                *(_ssh_run(hs, i, "id -un; echo $PATH; pwd; git config --get safe.directory")
                  for i in range(3))
            )

        for h, out in zip(hs, asyncio.run(all_hosts()), strict=True):
            user, path, cwd, safe = out.split("\n")[:4]
            assert (user, path, cwd, safe) == (
                h.user, "/usr/local/bin:/usr/bin:/bin", str(h.home), "*")
        assert (hs.client_key_path.stat().st_mode & 0o777) == 0o600
        lines = hs.known_hosts_path.read_text().splitlines()
        assert lines[0] == f"[{hs[0].address}]:{hs[0].port} {hs[0].host_key_public}"
        assert hs[0].host_key_public.startswith("ssh-ed25519 AAAA")

        h = hs[0]
        h.run("setsid nohup sleep 300 >/dev/null 2>&1 &")
        mount_tmpfs(h, "scratch", size="1m")
        users = [x.user for x in hs]
        uids = [x.uid for x in hs]
        base = hs.base_dir
        assert h.processes()
    for user in users:
        with pytest.raises(KeyError):
            pwd.getpwnam(user)
    assert not base.exists()
    assert str(base) not in Path("/proc/self/mounts").read_text()
    for uid in uids:
        assert not _live_pids_of(uid)


def _live_pids_of(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields["State"].split()[0] != "Z" and str(uid) in fields["Uid"].split()[:2]:
            pids.append(int(entry.name))
    return pids


@requires_root
@pytest.mark.hosts
def test_host_key_and_client_key_are_verified(hosts: HostSet, tmp_path: Path) -> None:
    wrong = tmp_path / "known_hosts"
    # host2's key claimed for host1's endpoint
    wrong.write_text(hosts[1].known_hosts_line(hosts[0].address, hosts[0].port) + "\n")
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        asyncio.run(_ssh_run(hosts, 0, "true", known_hosts=str(wrong)))
    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(_ssh_run(hosts, 0, "true", client_keys=[str(hosts.unauthorized_key_path)]))
    only2 = hosts.write_known_hosts(tmp_path / "only2", [hosts[1]])
    assert asyncio.run(_ssh_run(hosts, 1, "echo ok", known_hosts=str(only2))) == "ok\n"
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        asyncio.run(_ssh_run(hosts, 2, "true", known_hosts=str(only2)))


@requires_root
@pytest.mark.hosts
def test_stop_makes_host_unreachable_and_start_brings_it_back(hosts1: HostSet) -> None:
    h = hosts1[0]

    async def cut_session() -> None:
        async with asyncssh.connect(**hosts1.connect_kwargs(h)) as conn:
            assert (await conn.run("echo up", check=True)).stdout == "up\n"
            h.stop()
            with pytest.raises((asyncssh.Error, OSError)):
                await asyncio.wait_for(conn.run("echo again", check=True), 5)

    asyncio.run(cut_session())
    assert not h.running
    with pytest.raises(OSError):
        asyncio.run(_ssh_run(hosts1, 0, "true"))
    h.start()
    assert asyncio.run(_ssh_run(hosts1, 0, "echo back")) == "back\n"


@requires_root
@pytest.mark.hosts
def test_run_as_user_and_tmpfs_disk_full(hosts1: HostSet) -> None:
    h = hosts1[0]
    out = h.run('id -u; echo "$HOME"; pwd').stdout.split()
    assert out == [str(h.uid), str(h.home), str(h.home)]
    assert h.run("exit 7", check=False).returncode == 7
    mount_tmpfs(h, "full", size="1m")
    r = h.run("dd if=/dev/zero of=full/blob bs=64k count=64", check=False)
    assert r.returncode != 0 and "No space left on device" in r.stderr
    assert h.run("stat -c %U full").stdout.strip() == h.user
    unmount_tmpfs(h, "full")
    h.run("dd if=/dev/zero of=full/blob bs=64k count=64 2>/dev/null")


@requires_root
@pytest.mark.hosts
def test_snapshot_sees_changes_but_not_ssh_dir(hosts1: HostSet) -> None:
    h = hosts1[0]
    h.run("mkdir -p a/b && echo hi > a/b/f && ln -s a/b/f link")
    before = snapshot_home(h)
    assert before["a/b/f"].startswith("f:3:")
    assert before["link"].startswith("l:")
    assert diff_snapshots(before, snapshot_home(h)) == []
    h.run("echo x >> .ssh/authorized_keys")
    assert diff_snapshots(before, snapshot_home(h)) == []
    h.run("echo changed > a/b/f && touch new")
    changes = diff_snapshots(before, snapshot_home(h))
    assert "+ new" in changes
    assert any(c.startswith("~ a/b/f:") for c in changes)


# --------------------------------------------------------------------------- fixture repo


@requires_root
@pytest.mark.hosts
def test_host_user_clones_builds_and_runs_rbee(hosts1: HostSet, rbee_repo: RbeeRepo) -> None:
    h = hosts1[0]
    h.run(f"git clone -q {rbee_repo.url} rbee")
    assert h.run("git -C rbee rev-parse HEAD").stdout.strip() == rbee_repo.commit_of("main")
    h.run("cd rbee && cargo build -q --release --bin rbee-hive "
          "&& cargo build -q --release --bin llm-worker-rbee-cuda --features cuda")
    assert h.run("rbee/target/release/rbee-hive --version").stdout == (
        expected_version_line("rbee-hive", "0.2.0") + "\n")
    # the workers are shaped like rbee's: no --version, five required arguments, clap's
    # usage error (exit 2), and --help with a usage line (exit 0)
    no_version = h.run("rbee/target/release/llm-worker-rbee-cuda --version", check=False)
    assert (no_version.returncode, no_version.stdout, no_version.stderr) == (
        2,
        "",
        "error: unexpected argument '--version' found\n\n"
        + worker_usage("llm-worker-rbee-cuda")
        + "\n\nFor more information, try '--help'.\n",
    )
    bare = h.run("rbee/target/release/llm-worker-rbee-cuda", check=False)
    assert bare.returncode == 2
    assert bare.stderr.startswith(
        "error: the following required arguments were not provided:\n  --worker-id <WORKER_ID>\n"
    )
    helped = h.run("rbee/target/release/llm-worker-rbee-cuda --help")
    assert helped.stdout.splitlines()[:3] == [
        expected_worker_about("0.2.0", ("cuda",)), "", worker_usage("llm-worker-rbee-cuda")
    ]
    # clap names the program after argv[0]: run through a link, the usage names the link
    h.run("ln -s rbee/target/release/llm-worker-rbee-cuda rbee-worker-cuda")
    assert worker_usage("rbee-worker-cuda") in h.run("./rbee-worker-cuda --help").stdout
    hive_help = h.run("rbee/target/release/rbee-hive --help").stdout
    assert "\nUsage: rbee-hive [OPTIONS]\n" in hive_help
    usage = h.run("rbee/target/release/rbee-hive --listen 0.0.0.0", check=False)
    assert (usage.returncode, usage.stderr) == (
        2, "usage: rbee-hive [--version] [-p|--port PORT] [--hive-id ID] [--queen-url URL]\n"
    )

    port = _free_port()
    h.run(f"rbee/target/release/rbee-hive -p {port} --hive-id h >hive.log 2>&1 & "
          "echo $! > hive.pid")
    assert _http_get("127.0.0.1", port, "/health").endswith("\r\n\r\nok")
    assert _http_get("127.0.0.1", port, "/").startswith("HTTP/1.1 404 Not Found\r\n")
    h.run("kill $(cat hive.pid)")

    h.run("git -C rbee checkout -q v0.1.0 && cd rbee && cargo build -q --release "
          "--bin llm-worker-rbee-cpu")
    about = h.run("rbee/target/release/llm-worker-rbee-cpu --help").stdout.splitlines()[0]
    assert about == expected_worker_about("0.1.0")

    broken = h.run(f"git clone -q -b broken {rbee_repo.file_url} broken && cd broken "
                   "&& cargo build -q --release --bin rbee-hive", check=False)
    assert broken.returncode == 101 and "error" in broken.stderr

    h.run(f"git clone -q -b bad-version {rbee_repo.url} bad && cd bad "
          "&& cargo build -q --release --bin rbee-hive --bin llm-worker-rbee-metal "
          "--features metal")
    # bad-version: no check passes (the hive's --version and --help, the worker's --help)
    for binary, flag in (("rbee-hive", "--version"), ("rbee-hive", "--help"),
                         ("llm-worker-rbee-metal", "--help")):
        r = h.run(f"bad/target/release/{binary} {flag}", check=False)
        assert (r.returncode, r.stdout, r.stderr) == (3, "", f"{flag[2:]} check failed\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http_get(host: str, port: int, path: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1) as s:
                s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
                return data.decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_repo_refs_and_moving_branch(fresh_rbee_repo: RbeeRepo) -> None:
    repo = fresh_rbee_repo
    tags = repo.tags
    assert set(tags) == {"v0.1.0", "v0.2.0"}
    assert tags["v0.2.0"] == repo.commit_of("main") == repo.commit_of("moving")
    assert set(repo.branches) == {
        "main", "broken", "bad-version", "moving", "no-listen", "unhealthy"
    }
    sha = repo.advance_branch("moving", version="0.2.1")
    assert sha == repo.commit_of("moving") != repo.commit_of("main")
    remote = subprocess.run(["git", "ls-remote", repo.url, "refs/heads/moving"],
                            capture_output=True, text=True, check=True).stdout
    assert remote.split()[0] == sha
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["git", "clone", "-q", "-b", "moving", repo.url, tmp], check=True)
        assert 'version = "0.2.1"' in Path(tmp, "Cargo.toml").read_text()
        assert not Path(tmp, "Cargo.lock").exists()
        assert "Cargo.lock" in Path(tmp, ".gitignore").read_text()


def test_the_repo_answers_64_hosts_asking_at_once(rbee_repo: RbeeRepo) -> None:
    # `git daemon` alone listens with a backlog of 5: 64 at once lost some to resets
    def ask() -> str:
        done = subprocess.run(["git", "ls-remote", rbee_repo.url, "refs/tags/v0.1.0^{}"],
                              capture_output=True, text=True, timeout=60, check=False)
        return done.stdout.split()[0] if done.returncode == 0 else done.stderr

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(64) as pool:
        answers = list(pool.map(lambda _: ask(), range(64)))
    assert answers == [rbee_repo.commit_of("v0.1.0")] * 64


# --------------------------------------------------------------------------- proxy


class _BulkServer:
    """Sends `size` bytes to each client after reading one line."""

    def __init__(self, size: int) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.size = size
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(100)
                conn.sendall(b"x" * self.size)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


def _fetch(port: int) -> bytes:
    data = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"go\n")
            while chunk := s.recv(65536):
                data += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    return data


def test_proxy_latency_cut_and_restore() -> None:
    server = _BulkServer(200_000)
    with TcpProxy("127.0.0.1", server.port) as proxy:
        assert len(_fetch(proxy.port)) == 200_000
        proxy.latency = 0.2
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
            s.sendall(b"go\n")
            assert s.recv(10)
        assert time.monotonic() - t0 >= 0.4  # request and first reply chunk each delayed
        proxy.latency = 0.0
        proxy.cut_after_bytes(50_000)
        before = proxy.bytes_down
        got = _fetch(proxy.port)
        # exactly 50,000 bytes went through; the reset may discard some the client had not
        # read yet (the kernel drops unread data on RST), so it sees at most that
        assert proxy.bytes_down - before == 50_000 and len(got) <= 50_000
        assert proxy.is_cut
        assert _fetch(proxy.port) == b""  # new connections are reset while cut
        proxy.restore()
        assert len(_fetch(proxy.port)) == 200_000
        assert proxy.bytes_transferred >= 450_000
    server.close()


def test_proxy_cuts_a_git_clone(rbee_repo: RbeeRepo, tmp_path: Path) -> None:
    with TcpProxy("127.0.0.1", rbee_repo.port) as proxy:
        url = f"git://127.0.0.1:{proxy.port}/rbee.git"
        proxy.cut_after_bytes(3000)
        r = subprocess.run(["git", "clone", "-q", url, str(tmp_path / "a")],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
        proxy.restore()
        subprocess.run(["git", "clone", "-q", url, str(tmp_path / "b")], check=True, timeout=30)


# --------------------------------------------------------------------------- engine driver


def _file(d: Path, name: str, content: str, **extra: object) -> dict[str, object]:
    return {"dir": str(d), "name": name, "content": content, **extra}


def _mutating(calls: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [c for c in calls if c[0] in ("Create", "Update", "Delete", "Read")]


def test_engine_lifecycle(engine: Engine, tmp_path: Path) -> None:
    d = tmp_path / "files"
    d.mkdir()
    decls = [
        Decl("a", PROVIDER, _file(d, "a.txt", "A", count=3)),
        Decl("b", PROVIDER, _file(d, "b.txt", Ref("a", "path"))),
    ]
    plan = engine.preview(decls)
    assert plan.ops() == {"a": "create", "b": "create"} and plan.ok
    assert _mutating(engine.calls) == []
    assert not list(d.iterdir())

    up = engine.up(decls)
    assert up.ok, up.errors
    assert up.ops() == {"a": "create", "b": "create"}
    assert (d / "b.txt").read_text() == str(d / "a.txt")
    st = engine.state()
    assert st["a"].outputs["count"] == 3.0 and st["a"].outputs["count_type"] == "float"
    assert st["b"].depends_on == ["a"]
    assert "__provider" in st["a"].inputs and "__provider" in st["a"].outputs
    assert set(up.durations) == {"a", "b"}

    # like the engine's snapshot manager, a same step that changes nothing recorded writes
    # no checkpoint; one whose inputs changed (without a diff) does
    written = engine.state_path.read_bytes()
    os.utime(engine.state_path, (0, 0))
    assert engine.up(decls).ops() == {"a": "same", "b": "same"}
    assert engine.state_path.stat().st_mtime == 0 and engine.state_path.read_bytes() == written
    decls[0].inputs["sleep"] = 0.01  # not compared by the provider's diff
    assert engine.up(decls).ops() == {"a": "same", "b": "same"}
    assert engine.state_path.stat().st_mtime > 0
    assert engine.state()["a"].inputs["sleep"] == 0.01

    decls[0].inputs["content"] = "A2"
    plan = engine.preview(decls)
    # a's "path" output is unknown while a is to be updated, so b may change too
    assert plan.ops() == {"a": "update", "b": "update"}
    step_a = next(s for s in plan.steps if s.name == "a")
    assert step_a.detailed_changes == {"content": ("A", "A2")}
    assert (d / "a.txt").read_text() == "A"
    assert engine.up(decls).ops() == {"a": "update", "b": "same"}
    assert (d / "a.txt").read_text() == "A2"

    # a replace (create-before-delete) changes a's path, so b updates
    decls[0].inputs["name"] = "a-new.txt"
    calls_before = len(engine.calls)
    plan = engine.preview(decls)
    step_a = next(s for s in plan.steps if s.name == "a")
    assert (step_a.op, step_a.replaces) == ("replace", ["name"])
    assert plan.ops()["b"] == "update"  # b's input is unknown until a is replaced
    up = engine.up(decls)
    assert up.ops() == {"a": "replace", "b": "update"}, up.errors
    methods = [m for m, n in engine.calls[calls_before:] if n == "a" and m != "Check"]
    assert methods[-2:] == ["Create", "Delete"]
    assert sorted(p.name for p in d.iterdir()) == ["a-new.txt", "b.txt"]
    assert (d / "b.txt").read_text() == str(d / "a-new.txt")

    # delete-before-replace
    decls[0].inputs.update(name="a3.txt", dbr=True)
    start = len(engine.calls)
    assert engine.up(decls).ops() == {"a": "replace", "b": "update"}
    methods = [m for m, n in engine.calls[start:] if n == "a" and m in ("Create", "Delete")]
    assert methods == ["Delete", "Create"]

    # drop b from the program: deleted
    up = engine.up(decls[:1])
    assert up.ops() == {"a": "same", "b": "delete"}
    assert set(engine.state()) == {"a"}

    # drift + refresh: edited content is read back; a removed file drops the resource
    (d / "a3.txt").write_text("drifted")
    assert engine.refresh().ok
    assert engine.state()["a"].outputs["content"] == "drifted"
    (d / "a3.txt").unlink()
    ref = engine.refresh()
    assert ref.ok and engine.state() == {}

    engine.up(decls[:1])
    down = engine.destroy()
    assert down.ops() == {"a": "delete"} and engine.state() == {}
    assert not (d / "a3.txt").exists()


def test_engine_failures_keep_state_like_the_engine(engine: Engine, tmp_path: Path) -> None:
    d = tmp_path / "files"
    d.mkdir()
    decls = [
        Decl("ok", PROVIDER, _file(d, "ok.txt", "1")),
        Decl("bad", PROVIDER, _file(d, "bad.txt", "1", fail_create=True)),
        Decl("child", PROVIDER, _file(d, "child.txt", "1"), depends_on=("bad",)),
        Decl("invalid", PROVIDER, _file(d, "inv.txt", 42)),
    ]
    up = engine.up(decls)
    assert not up.ok
    assert up.ops() == {"ok": "create"}
    assert "Traceback" in up.errors["bad"]
    assert up.error_summary("bad") == "RuntimeError: create refused for bad.txt"
    assert up.errors["child"] == "skipped: dependency bad failed"
    assert up.errors["invalid"] == "check failed: content: content must be a string"
    assert set(engine.state()) == {"ok"}
    assert ("Create", "child") not in engine.calls

    decls = [Decl("ok", PROVIDER, _file(d, "ok.txt", "2", fail_update=True))]
    up = engine.up(decls)
    assert up.error_summary("ok") == "RuntimeError: update refused for ok.txt"
    assert engine.state()["ok"].outputs["content"] == "1"

    (d / ".fail-delete").touch()
    up = engine.destroy()
    assert up.error_summary("ok") == "RuntimeError: delete refused for ok.txt"
    assert set(engine.state()) == {"ok"}
    (d / ".fail-delete").unlink()
    assert engine.destroy().ok and engine.state() == {}


def test_engine_secrets_are_encrypted_at_rest(engine: Engine, tmp_path: Path) -> None:
    d = tmp_path / "files"
    d.mkdir()
    decls = [Decl("s", PROVIDER, _file(d, "s.txt", "public", token=Secret("hunter2")),
                  secret_outputs=("path",))]
    assert engine.up(decls).ok
    text = engine.state_path.read_text()
    assert "hunter2" not in text
    raw = json.loads(text)["resources"][0]
    for props, key in ((raw["outputs"], "token"), (raw["outputs"], "path"),
                       (raw["inputs"], "token"), (raw["inputs"], "__provider")):
        assert set(props[key]) == {"4dabf18193072939515e22adb298388d", "ciphertext"}
    assert raw["id"] == str(d / "s.txt")  # ids are never secret, as in Pulumi
    assert raw["outputs"]["content"] == "public"
    entry = engine.state()["s"]
    assert entry.outputs["token"] == "hunter2"
    assert {"token", "path", "__provider"} <= entry.secret_outputs
    assert (engine.key_path.stat().st_mode & 0o777) == 0o600


def test_engine_runs_independent_steps_concurrently(engine: Engine, tmp_path: Path) -> None:
    d = tmp_path / "files"
    d.mkdir()
    decls = [Decl(f"r{i}", PROVIDER, _file(d, f"{i}.txt", "x", sleep=0.5)) for i in range(4)]
    engine.preview([])  # warm the provider server so timing covers the creates only
    t0 = time.monotonic()
    up = engine.up(decls)
    elapsed = time.monotonic() - t0
    assert up.ok and elapsed < 1.9, elapsed
    assert all(0.5 <= t < 1.9 for t in up.durations.values())


@pytest.mark.parametrize("start_mode", ["fork", "spawn"])
def test_engine_kill_mid_up_leaves_pending_operation(tmp_path: Path, start_mode: str) -> None:
    with Engine(tmp_path / "state.json", start_mode=start_mode) as engine:
        _kill_mid_up(engine, tmp_path)


def _kill_mid_up(engine: Engine, tmp_path: Path) -> None:
    d = tmp_path / "files"
    d.mkdir()
    decls = [Decl("slow", PROVIDER, _file(d, "slow.txt", "x", sleep=3))]
    fut = engine.up_async(decls)
    engine.wait_for_call("Create", "slow", timeout=20)
    time.sleep(0.2)
    pid = engine.provider_pid()
    engine.kill_provider()
    up = fut.result(timeout=20)
    assert not up.ok and "slow" in up.errors
    assert pid is not None and not os.path.exists(f"/proc/{pid}")
    assert [op["type"] for op in engine.pending_operations()] == ["creating"]
    assert engine.state() == {}

    decls[0].inputs["sleep"] = 0
    up = engine.up(decls)
    assert up.ok, up.errors
    assert up.warnings and "pending operation" in up.warnings[0]
    assert engine.pending_operations() == []
    assert up.ops() == {"slow": "create"}
    assert "=== provider server start" in engine.provider_log_path.read_text()



def test_a_forked_provider_records_its_coverage_whatever_the_fork_server_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The suite's coverage of the providers comes from these forked servers. Here the fork
    server runs unmeasured, was started with SIGINT ignored (a suite run in the background of a
    shell), and the disk is slow: a child must still measure itself from its own environment,
    end on the driver's interrupt, and be given the time to save before it is killed (before,
    every forked provider's data was lost in such a run, and the total fell under the
    floor)."""
    from coverage import CoverageData
    from coverage.config import CoverageConfig

    from rbee_infra.stack.providers import HiveProvider
    from tests.harness import _provider_proc
    from tests.harness.engine import REPO_ROOT

    config = CoverageConfig()
    config.data_file = str(tmp_path / "cov" / ".coverage")
    config.parallel = True
    config.patch = ["_exit"]  # as the suite's (pyproject): the provider ends with os._exit
    config.source = [str(REPO_ROOT / "rbee_infra")]
    (tmp_path / "cov").mkdir()
    paths = [str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    unmeasured = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    unmeasured["PYTHONPATH"] = os.pathsep.join(paths)
    monkeypatch.setattr(_provider_proc, "_ZYGOTES", {})
    # started with SIGINT ignored, as a suite run in the background of a shell is
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _provider_proc.prewarm(unmeasured, REPO_ROOT)  # the fork server this engine will use
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        # and its disk is slow: what it does last, saving, takes seconds
        env = {"COVERAGE_PROCESS_CONFIG": config.serialize(), "RBEE_HARNESS_SLOW_EXIT": "2"}
        with Engine(tmp_path / "state.json", env=env) as engine:
            plan = engine.preview([Decl("hive-x", HiveProvider(), {"alias": "bad alias!"})])
            assert "alias" in plan.errors["hive-x"]  # the provider ran rbee_infra's validation
    finally:
        _provider_proc._close_zygotes()
    # only this engine's provider servers write here
    files = sorted((tmp_path / "cov").glob(".coverage.*"))
    assert files, "the forked provider server saved no coverage data"
    measured = set()
    for f in files:
        data = CoverageData(str(f))
        data.read()
        measured |= {Path(name).name for name in data.measured_files() if data.lines(name)}
    assert {"providers.py", "spec.py"} <= measured
