"""Hosts the controller cannot reach, behind a bastion it can.

A network namespace made for the test holds the target sshds on its own loopback (which the
controller's loopback is not) and a bastion sshd on one end of a veth pair whose other end is
in the controller's namespace. The fixture repo is served inside the namespace as well, on the
same address and port as outside, so the targets clone from the usual URL.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .fixture_repo import RbeeRepo
from .hosts import Host, HostSet, connect_in, start_hosts


@dataclass
class Behind:
    netns: str
    bastion: Host
    bastion_set: HostSet
    targets: HostSet
    known_hosts: Path  # the targets' and the bastion's keys

    def bastion_accepted(self) -> int:
        """Logins the bastion's sshd accepted so far."""
        return self.bastion.sshd_log.read_text().count("Accepted publickey")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _unused_net() -> str:
    """The first three octets of a /30 for the veth link that no interface here uses yet.
    Drawn with `secrets`, not `random`: pytest-randomly seeds `random` alike before every
    test, so two runs with one seed would draw the same link and route to each other's."""
    used = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True,
                          check=True).stdout
    while True:
        net = f"10.231.{secrets.randbelow(256)}"
        if f" {net}." not in used:
            return net


@contextlib.contextmanager
def namespace() -> Iterator[tuple[str, str]]:
    """A fresh network namespace with its loopback up and a veth link to this one:
    (name, the address of its end of the link)."""
    tag = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(5))
    name, outside, inside = f"rbee-{tag}", f"rb{tag}o", f"rb{tag}i"
    net = _unused_net()
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside, "netns", name)
        _ip("addr", "add", f"{net}.1/30", "dev", outside)
        _ip("link", "set", outside, "up")
        _ip("-n", name, "addr", "add", f"{net}.2/30", "dev", inside)
        _ip("-n", name, "link", "set", inside, "up")
        yield name, f"{net}.2"
    finally:
        subprocess.run(["ip", "link", "del", outside], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@contextlib.contextmanager
def serve_repo_in(netns: str, repo: RbeeRepo) -> Iterator[None]:
    """The fixture repo's git daemon, a second time, inside `netns` on the same port."""
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, "git", "daemon", "--export-all",
         f"--base-path={repo.path.parent}", "--reuseaddr", "--listen=127.0.0.1",
         f"--port={repo.port}", "--enable=upload-pack", str(repo.path.parent)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(250):
            if proc.poll() is not None:
                raise RuntimeError(f"git daemon in {netns} exited with {proc.returncode}")
            if connect_in(netns, "127.0.0.1", repo.port) is not None:
                break
            time.sleep(0.02)
        else:
            raise TimeoutError(f"git daemon in {netns} not ready")
        yield
    finally:
        proc.terminate()
        proc.wait(5)


@contextlib.contextmanager
def behind_bastion(n: int, repo: RbeeRepo) -> Iterator[Behind]:
    """`n` target hosts reachable only through one bastion (which accepts the targets' key)."""
    with namespace() as (netns, address), serve_repo_in(netns, repo):
        targets = start_hosts(n, netns=netns)
        try:
            bastion_set = start_hosts(1, netns=netns, addresses=[address])
            try:
                (bastion,) = bastion_set.hosts
                authorized = bastion.home / ".ssh" / "authorized_keys"
                with authorized.open("a") as f:
                    f.write(targets.client_key_public + "\n")
                known = targets.base_dir / "_client" / "known_hosts_with_bastion"
                known.write_text(
                    targets.known_hosts_path.read_text() + bastion.known_hosts_line() + "\n"
                )
                yield Behind(netns, bastion, bastion_set, targets, known)
            finally:
                bastion_set.close()
        finally:
            targets.close()
