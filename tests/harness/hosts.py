"""Real SSH test hosts on loopback: one unix user and one sshd per host (root needed)."""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SSHD = Path("/usr/sbin/sshd")
HOST_PATH = "/usr/local/bin:/usr/bin:/bin"
USER_PREFIX = "rbt"
USER_RE = re.compile(rf"^{USER_PREFIX}[a-z0-9]{{4}}h\d+$")
OWNER_FILE = ".rbee-hosts-owner"
BANNER_TIMEOUT = 10.0
_RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Terminate, then kill when it lingers."""
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def wait_until(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)


class HarnessUnavailable(RuntimeError):
    """The machine cannot run the SSH host harness (not root, no sshd, ...)."""


class HostCommandError(subprocess.CalledProcessError):
    def __str__(self) -> str:
        return (
            f"{super().__str__()}\n--- stdout ---\n{(self.stdout or '')[-4000:]}"
            f"\n--- stderr ---\n{(self.stderr or '')[-4000:]}"
        )


def check_available() -> None:
    if os.geteuid() != 0:
        raise HarnessUnavailable("SSH test hosts need root (they create unix users and run sshd)")
    if not SSHD.exists():
        raise HarnessUnavailable(f"{SSHD} is missing (apt-get install openssh-server)")
    for tool in ("useradd", "userdel", "runuser", "mount", "umount"):
        if shutil.which(tool) is None:
            raise HarnessUnavailable(f"{tool} is not on PATH")


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class KeyPair:
    private_openssh: str
    public_line: str  # "ssh-ed25519 AAAA..."


def generate_ed25519(comment: str = "") -> KeyPair:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    return KeyPair(private, f"{public} {comment}".strip())


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


# --------------------------------------------------------------------------- processes


def _proc_table() -> dict[int, tuple[int, set[int]]]:
    """pid -> (ppid, {real, effective uid}); zombies are left out (they cannot be killed)."""
    table: dict[int, tuple[int, set[int]]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        ppid = -1
        uids: set[int] = set()
        zombie = False
        for line in status.splitlines():
            if line.startswith("State:"):
                zombie = line.split()[1] in ("Z", "X")
            elif line.startswith("PPid:"):
                ppid = int(line.split()[1])
            elif line.startswith("Uid:"):
                uids = {int(x) for x in line.split()[1:3]}
        if not zombie:
            table[int(entry)] = (ppid, uids)
    return table


def descendants(pid: int) -> list[int]:
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for p, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(p)
    out: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _kill(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def kill_uid_processes(uid: int, timeout: float = 5.0) -> None:
    """SIGKILL every process running as `uid`, repeating until none is left (forks race us)."""
    deadline = time.monotonic() + timeout
    while True:
        pids = [p for p, (_, uids) in _proc_table().items() if uid in uids and p != os.getpid()]
        if not pids or time.monotonic() > deadline:
            return
        for p in pids:
            _kill(p)
        time.sleep(0.02)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def connect_in(netns: str, address: str, port: int, read: int = 0) -> bytes | None:
    """Connect to address:port inside network namespace `netns`: None when nothing answers,
    else the first `read` bytes the server sends."""
    probe = f"exec 3<>/dev/tcp/{address}/{port}" + (f" && head -c {read} <&3" if read else "")
    done = subprocess.run(
        ["ip", "netns", "exec", netns, "timeout", "2", "bash", "-c", probe],
        capture_output=True, check=False,
    )
    return done.stdout if done.returncode == 0 else None


def _wait_banner(address: str, port: int, proc: subprocess.Popen[bytes] | None,
                 timeout: float = BANNER_TIMEOUT, netns: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"sshd on {address}:{port} exited with {proc.returncode}")
        if netns is not None:
            if (connect_in(netns, address, port, read=7) or b"").startswith(b"SSH-2.0"):
                return
            time.sleep(0.02)
            continue
        try:
            with socket.create_connection((address, port), timeout=1.0) as s:
                data = b""
                while b"\n" not in data and len(data) < 256:
                    chunk = s.recv(256)
                    if not chunk:
                        break
                    data += chunk
                if data.startswith(b"SSH-2.0"):
                    return
                last = RuntimeError(f"unexpected banner {data!r}")
        except OSError as e:
            last = e
        time.sleep(0.01)
    raise TimeoutError(f"sshd on {address}:{port} not ready after {timeout}s: {last}")


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- mounts


def mounts_under(base: Path) -> list[Path]:
    prefix = str(base.resolve()).rstrip("/") + "/"
    found: list[Path] = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) < 2:
                continue
            point = parts[1].replace("\\040", " ")
            if point.startswith(prefix) or point == prefix.rstrip("/"):
                found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def unmount(path: Path) -> None:
    r = subprocess.run(["umount", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, text=True)


# --------------------------------------------------------------------------- hosts


class _SshdControl:
    """Mutable part of a Host: its sshd process."""

    def __init__(self, config: Path, log: Path, netns: str | None = None) -> None:
        self.config = config
        self.log = log
        self.netns = netns  # a network namespace the sshd runs in (see tests/harness/netns.py)
        self.proc: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()

    def spawn(self) -> subprocess.Popen[bytes]:
        inside = ["ip", "netns", "exec", self.netns] if self.netns else []
        self.proc = subprocess.Popen(
            [*inside, str(SSHD), "-D", "-f", str(self.config), "-E", str(self.log)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self.proc

    def stop(self, drop_connections: bool = True) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            if drop_connections:
                for pid in descendants(proc.pid):
                    _kill(pid)
            stop_process(proc)
        self.proc = None


@dataclass(frozen=True, eq=False)
class Host:
    name: str
    address: str
    port: int
    user: str
    uid: int
    gid: int
    home: Path
    host_key_public: str
    sshd_config: Path
    sshd_log: Path
    _ctl: _SshdControl = field(repr=False, compare=False)

    @property
    def running(self) -> bool:
        return self._ctl.proc is not None and self._ctl.proc.poll() is None

    @property
    def sshd_pid(self) -> int | None:
        return self._ctl.proc.pid if self.running and self._ctl.proc else None

    def stop(self, *, drop_connections: bool = True) -> None:
        """Stop this host's sshd; new connections are refused. By default also cuts the
        established SSH sessions (their per-connection sshd processes are killed)."""
        with self._ctl.lock:
            self._ctl.stop(drop_connections)

    def start(self) -> None:
        with self._ctl.lock:
            if self.running:
                return
            proc = self._ctl.spawn()
            _wait_banner(self.address, self.port, proc, netns=self._ctl.netns)

    def env(self) -> dict[str, str]:
        return {
            "HOME": str(self.home),
            "USER": self.user,
            "LOGNAME": self.user,
            "PATH": HOST_PATH,
            "SHELL": "/bin/bash",
            "LANG": "C.UTF-8",
        }

    def run(
        self, cmd: str, check: bool = True, *, timeout: float | None = 300.0,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `cmd` with sh as this host's user, locally (no SSH), cwd = home."""
        r = subprocess.run(
            [_RUNUSER, "-u", self.user, "--", "sh", "-c", cmd],
            cwd=self.home,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and r.returncode != 0:
            raise HostCommandError(r.returncode, cmd, r.stdout, r.stderr)
        return r

    def known_hosts_line(self, address: str | None = None, port: int | None = None) -> str:
        addr = address or self.address
        p = port or self.port
        target = addr if p == 22 else f"[{addr}]:{p}"
        return f"{target} {self.host_key_public}"

    def processes(self) -> list[int]:
        return [p for p, (_, uids) in _proc_table().items() if self.uid in uids]


def rotate_host_key(host: Host) -> None:
    """The host gets a new host key (as after a reinstall, or an impostor on its address)."""
    found = re.search(r"^HostKey (.+)$", host.sshd_config.read_text(), re.M)
    assert found is not None
    key = found.group(1)
    host.stop()
    Path(key).unlink()
    Path(key + ".pub").unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    host.start()


def write_known_hosts(path: Path, hosts: Sequence[Host]) -> Path:
    path.write_text("".join(h.known_hosts_line() + "\n" for h in hosts))
    return path


@dataclass
class HostSet:
    base_dir: Path
    hosts: list[Host]
    client_key_path: Path
    client_key_pem: str
    client_key_public: str
    unauthorized_key_path: Path
    unauthorized_key_pem: str
    known_hosts_path: Path
    _closed: bool = field(default=False, repr=False)

    def __getitem__(self, i: int) -> Host:
        return self.hosts[i]

    def __iter__(self) -> Iterator[Host]:
        return iter(self.hosts)

    def __len__(self) -> int:
        return len(self.hosts)

    def by_name(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def write_known_hosts(self, path: Path, hosts: Sequence[Host] | None = None) -> Path:
        return write_known_hosts(path, self.hosts if hosts is None else hosts)

    def connect_kwargs(self, host: Host, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for asyncssh.connect() to reach `host` with the authorized key."""
        kw: dict[str, Any] = {
            "host": host.address,
            "port": host.port,
            "username": host.user,
            "client_keys": [str(self.client_key_path)],
            "known_hosts": str(self.known_hosts_path),
            "agent_path": None,
            "config": [],
        }
        kw.update(overrides)
        return kw

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        errors: list[str] = []
        for h in self.hosts:
            try:
                h._ctl.stop(drop_connections=True)
            except Exception as e:
                errors.append(f"stop {h.name}: {e}")
        for h in self.hosts:
            kill_uid_processes(h.uid)
        for m in mounts_under(self.base_dir):
            unmount(m)
        for h in self.hosts:
            kill_uid_processes(h.uid, timeout=1.0)
            err = _delete_user(h.user)
            if err:
                errors.append(err)
        shutil.rmtree(self.base_dir, ignore_errors=True)
        if errors:
            raise RuntimeError("host teardown problems: " + "; ".join(errors))

    def __enter__(self) -> HostSet:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _delete_user(user: str) -> str | None:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return None
    r = subprocess.run(["userdel", "-f", "-r", user], capture_output=True, text=True)
    with contextlib.suppress(KeyError):
        pwd.getpwnam(user)
        return f"userdel {user}: rc={r.returncode} {r.stderr.strip()}"
    if subprocess.run(["getent", "group", user], capture_output=True).returncode == 0:
        subprocess.run(["groupdel", user], capture_output=True)
    return None


def reap_stale_users() -> None:
    """Remove users left by a harness process that died without teardown."""
    for entry in pwd.getpwall():
        if not USER_RE.match(entry.pw_name):
            continue
        owner = Path(entry.pw_dir).parent / OWNER_FILE
        try:
            pid = int(owner.read_text().strip())
        except (OSError, ValueError):
            pid = None
        if pid is not None and _pid_alive(pid):
            continue
        if pid is None and Path(entry.pw_dir).parent.exists():
            continue  # possibly a set being created right now
        kill_uid_processes(entry.pw_uid, timeout=1.0)
        base = Path(entry.pw_dir).parent
        for m in mounts_under(base):
            unmount(m)
        _delete_user(entry.pw_name)
        if pid is not None:
            shutil.rmtree(base, ignore_errors=True)


def _sshd_config(address: str, port: int, key: Path, pid_file: Path, user: str) -> str:
    return "\n".join([
        f"ListenAddress {address}:{port}",
        f"HostKey {key}",
        f"PidFile {pid_file}",
        "PubkeyAuthentication yes",
        "AuthorizedKeysFile .ssh/authorized_keys",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes yes",
        "PermitRootLogin no",
        f"AllowUsers {user}",
        "Subsystem sftp internal-sftp",
        f"SetEnv PATH={HOST_PATH}",
        "MaxStartups 100:30:200",
        "MaxSessions 64",
        "LogLevel VERBOSE",
        "",
    ])


def _gitconfig(user: str) -> str:
    return (
        "[safe]\n\tdirectory = *\n"
        f"[user]\n\tname = {user}\n\temail = {user}@rbee-test.invalid\n"
        "[init]\n\tdefaultBranch = main\n"
    )


def _create_user(user: str, home: Path, authorized: str) -> tuple[int, int]:
    subprocess.run(
        ["useradd", "-m", "-d", str(home), "-s", "/bin/bash", "-U", "-p", "*", user],
        check=True, capture_output=True, text=True,
    )
    pw = pwd.getpwnam(user)
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(authorized + "\n")
    (home / ".gitconfig").write_text(_gitconfig(user))
    for p in (ssh_dir, ssh_dir / "authorized_keys", home / ".gitconfig"):
        os.chown(p, pw.pw_uid, pw.pw_gid)
    os.chmod(ssh_dir / "authorized_keys", 0o600)
    return pw.pw_uid, pw.pw_gid


def start_hosts(
    n: int = 3,
    *,
    base_dir: Path | None = None,
    netns: str | None = None,
    addresses: Sequence[str] | None = None,
) -> HostSet:
    """Create `n` users with one sshd each on 127.0.0.(11..), ready when this returns.

    `base_dir` must be traversable by other users (pytest's tmp_path is not); by default a
    fresh directory under the system temp dir is used. With `netns` the sshds run inside that
    network namespace (on its own loopback, or on `addresses`).
    """
    check_available()
    reap_stale_users()
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="rbee-hosts-", dir=base_dir))
    base.chmod(0o755)
    (base / OWNER_FILE).write_text(str(os.getpid()))
    run_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(4))
    client = generate_ed25519("rbee-test-client")
    stranger = generate_ed25519("rbee-test-unauthorized")
    keys_dir = base / "_client"
    keys_dir.mkdir(mode=0o700)
    client_path = keys_dir / "id_ed25519"
    _write_private(client_path, client.private_openssh)
    (keys_dir / "id_ed25519.pub").write_text(client.public_line + "\n")
    stranger_path = keys_dir / "unauthorized_ed25519"
    _write_private(stranger_path, stranger.private_openssh)
    hs = HostSet(
        base_dir=base, hosts=[], client_key_path=client_path,
        client_key_pem=client.private_openssh, client_key_public=client.public_line,
        unauthorized_key_path=stranger_path, unauthorized_key_pem=stranger.private_openssh,
        known_hosts_path=keys_dir / "known_hosts",
    )
    try:
        procs: list[tuple[Host, subprocess.Popen[bytes]]] = []
        for i in range(1, n + 1):
            host = _make_host(
                base, i, f"{USER_PREFIX}{run_id}h{i}", client.public_line,
                address=addresses[i - 1] if addresses else None, netns=netns,
            )
            hs.hosts.append(host)
            procs.append((host, host._ctl.spawn()))
        hs.write_known_hosts(hs.known_hosts_path)
        for host, proc in procs:
            try:
                _wait_banner(host.address, host.port, proc, netns=netns)
            except (RuntimeError, TimeoutError) as e:
                log = host.sshd_log.read_text() if host.sshd_log.exists() else ""
                raise RuntimeError(f"{host.name}: {e}\n{log[-2000:]}") from e
    except BaseException:
        with contextlib.suppress(Exception):
            hs.close()
        raise
    return hs


def _make_host(
    base: Path, i: int, user: str, authorized: str, *, address: str | None = None,
    netns: str | None = None,
) -> Host:
    address = address or f"127.0.0.{10 + i}"
    home = base / user
    uid, gid = _create_user(user, home, authorized)
    sdir = base / "_sshd" / f"host{i}"
    sdir.mkdir(parents=True, mode=0o700)
    key = generate_ed25519()
    key_path = sdir / "ssh_host_ed25519_key"
    _write_private(key_path, key.private_openssh)
    port = free_port(address if netns is None else "127.0.0.1")
    config = sdir / "sshd_config"
    config.write_text(_sshd_config(address, port, key_path, sdir / "sshd.pid", user))
    log = base / f"host{i}-sshd.log"
    return Host(
        name=f"host{i}", address=address, port=port, user=user, uid=uid, gid=gid, home=home,
        host_key_public=key.public_line, sshd_config=config, sshd_log=log,
        _ctl=_SshdControl(config, log, netns),
    )


@contextlib.contextmanager
def running_hosts(n: int = 3, *, base_dir: Path | None = None) -> Iterator[HostSet]:
    hs = start_hosts(n, base_dir=base_dir)
    try:
        yield hs
    finally:
        hs.close()


def mount_tmpfs(host: Host, subdir: str, size: str = "20m") -> Path:
    """Mount a tmpfs of `size`, owned by the host user, at home/subdir (created if missing)."""
    target = host.home / subdir
    host.run(f"mkdir -p '{target}'")
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},uid={host.uid},gid={host.gid},mode=0755",
         "tmpfs", str(target)],
        check=True, capture_output=True, text=True,
    )
    return target


def unmount_tmpfs(host: Host, subdir: str) -> None:
    unmount(host.home / subdir)
