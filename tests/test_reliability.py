"""Faults and hostile input on real hosts: each asserts a clear error or success after retry,
the previous install intact, consistent state, and that a rerun converges. Every fault is
recorded for the fault table the session prints (tried, survived, data lost)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness.assertions import assert_hive_installed
from tests.harness.engine import Engine
from tests.harness.fixture_repo import RbeeRepo
from tests.harness.fleet import declare, hive_config, make_fleet
from tests.harness.hosts import Host, HostSet, rotate_host_key, wait_until
from tests.harness.installs import version, worker
from tests.harness.proxy import TcpProxy
from tests.metrics import record

pytestmark = pytest.mark.hosts

SLOW_CARGO = """#!/bin/sh
# test instrumentation: a cargo that logs each build and takes a while
if [ "${1:-}" = build ]; then
  trap 'echo "sig TERM $(date +%s.%N) $$" >> "$HOME/cargo-calls.log"; exit 143' TERM
  trap 'echo "sig INT $(date +%s.%N) $$" >> "$HOME/cargo-calls.log"; exit 130' INT
  trap 'echo "sig PIPE $(date +%s.%N) $$" >> "$HOME/cargo-calls.log"; exit 141' PIPE
  echo "start $(date +%s.%N) $$" >> "$HOME/cargo-calls.log"
  sleep "$(cat "$HOME/cargo-sleep" 2>/dev/null || echo 2)"
  /usr/bin/cargo "$@"; rc=$?
  echo "end $(date +%s.%N) $$" >> "$HOME/cargo-calls.log"
  exit $rc
fi
exec /usr/bin/cargo "$@"
"""


def install_slow_cargo(host: Host, seconds: float = 2.0) -> str:
    host.run(f"cat > slow-cargo && chmod +x slow-cargo && echo {seconds} > cargo-sleep",
             input=SLOW_CARGO)
    return "~/slow-cargo"


def cargo_calls(host: Host) -> list[tuple[str, float]]:
    text = host.run("cat cargo-calls.log 2>/dev/null || true").stdout
    return [(p[0], float(p[-2])) for p in (line.split() for line in text.splitlines())]


def builds_started(host: Host) -> int:
    return sum(1 for kind, _ in cargo_calls(host) if kind == "start")


def proxied(hosts: HostSet, host: Host, proxy: TcpProxy, tmp_path: Path) -> dict[str, Any]:
    """Stack config that reaches `host` through `proxy`, its host key still verified."""
    known = tmp_path / "known_hosts_proxy"
    known.write_text(host.known_hosts_line("127.0.0.1", proxy.port) + "\n")
    return {"hostname": "127.0.0.1", "sshPort": proxy.port}, known


def fault(name: str, survived: bool, data_lost: int = 0) -> None:
    record("fault", fault=name, survived=survived, data_lost=data_lost)


def test_connection_cut_during_build_rejoins_the_same_build(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine, tmp_path: Path
) -> None:
    (host,) = hosts1.hosts
    cargo = install_slow_cargo(host, 3)
    with TcpProxy(host.address, host.port) as proxy:
        target, known = proxied(hosts1, host, proxy, tmp_path)
        config = make_fleet(hosts1, rbee_repo, **{"rbee:knownHosts": str(known)})
        hive_config(config, "host1").update(target, cargo=cargo)
        future = engine.up_async(declare(config))
        wait_until(lambda: builds_started(host) == 1)
        proxy.cut_now()
        time.sleep(1.0)
        proxy.restore()
        result = future.result(timeout=120)
    assert result.ok, "\n".join([*result.errors.values(), str(cargo_calls(host))])
    assert builds_started(host) == 1, cargo_calls(host)
    assert_hive_installed(hosts1, host, version="0.1.0")
    fault("connection cut during build", survived=True)


def test_connection_cut_during_clone_converges(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine, tmp_path: Path
) -> None:
    """The SSH link drops while the host clones; the detached job keeps going, the provider
    reconnects and waits for it."""
    (host,) = hosts1.hosts
    with TcpProxy(host.address, host.port) as proxy:
        target, known = proxied(hosts1, host, proxy, tmp_path)
        config = make_fleet(hosts1, rbee_repo, **{"rbee:knownHosts": str(known)})
        hive_config(config, "host1").update(target)
        future = engine.up_async(declare(config))
        wait_until(lambda: host.run("ls .local/share/rbee/jobs/*/*/pid", check=False).returncode == 0)
        proxy.cut_now()
        time.sleep(0.5)
        proxy.restore()
        result = future.result(timeout=120)
    assert result.ok, result.errors
    assert_hive_installed(hosts1, host, version="0.1.0")
    fault("connection cut during clone", survived=True)


def test_slow_link(hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine, tmp_path: Path) -> None:
    (host,) = hosts1.hosts
    with TcpProxy(host.address, host.port, latency=0.05) as proxy:
        target, known = proxied(hosts1, host, proxy, tmp_path)
        config = make_fleet(hosts1, rbee_repo, **{"rbee:knownHosts": str(known)})
        hive_config(config, "host1").update(target)
        result = engine.up(declare(config))
    assert result.ok, result.errors
    assert_hive_installed(hosts1, host, version="0.1.0")
    record("slow-link", total=result.durations["hive-host1"])
    fault("slow link (50 ms per chunk)", survived=True)


def test_provider_killed_mid_install_then_up_converges_without_a_second_build(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    config = make_fleet(hosts1, rbee_repo)
    hive_config(config, "host1")["cargo"] = install_slow_cargo(host, 3)
    future = engine.up_async(declare(config))
    wait_until(lambda: builds_started(host) == 1)
    engine.kill_provider()
    killed = future.result(timeout=60)
    assert not killed.ok
    assert "hive-host1" not in engine.state()
    result = engine.up(declare(config))
    assert result.ok, result.errors
    assert builds_started(host) == 1, cargo_calls(host)
    assert_hive_installed(hosts1, host, version="0.1.0")
    fault("provider killed mid-install", survived=True)


def test_two_concurrent_ups_on_one_host_never_interleave_builds(
    hosts1: HostSet, rbee_repo: RbeeRepo, tmp_path: Path
) -> None:
    (host,) = hosts1.hosts
    cargo = install_slow_cargo(host, 1.5)
    config = make_fleet(hosts1, rbee_repo)
    hive_config(config, "host1")["cargo"] = cargo
    source = {"method": "git", "repo": rbee_repo.url, "tag": "v0.2.0"}
    other = worker(hosts1, host, "cpu", source, depends_on=(), cargo=cargo, stack="other")
    with Engine(tmp_path / "a" / "state.json") as a, Engine(tmp_path / "b" / "state.json") as b:
        first = a.up_async(declare(config))
        second = b.up_async([other])
        ra, rb = first.result(timeout=180), second.result(timeout=180)
    assert ra.ok and rb.ok, (ra.errors, rb.errors)
    calls = cargo_calls(host)
    assert [kind for kind, _ in calls] == ["start", "end", "start", "end"], calls
    assert calls[1][1] <= calls[2][1]  # the second build started after the first ended
    fault("two concurrent up on one host", survived=True)


def test_lock_wait_is_bounded_and_names_the_holder(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    host.run(
        "mkdir -p .local/share/rbee && echo 'stack ops/hive-x (manual test)' "
        "> .local/share/rbee/.lock.holder && "
        "setsid nohup flock .local/share/rbee/.lock sleep 15 >/dev/null 2>&1 < /dev/null &"
    )
    wait_until(lambda: host.run("flock -n .local/share/rbee/.lock true", check=False).returncode == 1)
    config = make_fleet(hosts1, rbee_repo, **{"rbee:lockTimeout": 2})
    result = engine.up(declare(config))
    assert (
        "hive host1: lock failed (exit 75): could not take the host lock\n"
        "host lock .local/share/rbee/.lock is still held after 2s by: "
        "stack ops/hive-x (manual test)"
    ) in result.errors["hive-host1"]
    assert "hive-host1" not in engine.state()
    host.run("pkill -u \"$(id -u)\" -x sleep || true")
    result = engine.up(declare(config))
    assert result.ok, result.errors
    fault("host lock held by another run", survived=True)


def test_changed_host_key_is_refused(hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine) -> None:
    (host,) = hosts1.hosts
    config = make_fleet(hosts1, rbee_repo)
    assert engine.up(declare(config)).ok
    rotate_host_key(host)
    result = engine.up(declare(make_fleet(hosts1, rbee_repo, ref={"tag": "v0.2.0"})))
    message = result.error_summary("hive-host1")
    assert re.search(
        rf"hive host1: connect failed: host key for {host.address}:{host.port} \(SHA256:\S+\) "
        rf"does not match known_hosts {re.escape(str(hosts1.known_hosts_path))}; refusing",
        message,
    ), message
    assert version(host, ".local/bin/rbee-hive") == "rbee-hive 0.1.0"
    fault("changed host key (known_hosts)", survived=True)


def test_trust_on_first_use_records_the_key_and_refuses_a_changed_one(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    config = make_fleet(hosts1, rbee_repo, **{"rbee:hostKeyPolicy": "tofu"})
    del config["rbee:knownHosts"]
    result = engine.up(declare(config))
    assert result.ok, result.errors
    trusted = engine.state()["hive-host1"].outputs["trustedHostKey"]
    assert trusted.split()[:2] == host.host_key_public.split()[:2]
    first = subprocess.run(["ssh-keygen", "-lf", "-"], input=trusted, capture_output=True,
                           text=True, check=True).stdout.split()[1]
    rotate_host_key(host)
    result = engine.up(declare(make_fleet(hosts1, rbee_repo, ref={"tag": "v0.2.0"},
                                          **{"rbee:hostKeyPolicy": "tofu"})))
    message = result.error_summary("hive-host1")
    assert f"does not match pinned key {first}" in message, message
    assert re.search(r"host key for \S+ \(SHA256:\S+\)", message)
    assert version(host, ".local/bin/rbee-hive") == "rbee-hive 0.1.0"
    fault("changed host key (trust on first use)", survived=True)


def test_pinned_host_key(hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine, tmp_path: Path) -> None:
    (host,) = hosts1.hosts
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    config = make_fleet(hosts1, rbee_repo, **{"rbee:knownHosts": str(empty)})
    hive_config(config, "host1")["hostKey"] = host.host_key_public
    assert engine.up(declare(config)).ok
    assert_hive_installed(hosts1, host, version="0.1.0")
    wrong = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")],
                           check=True)
    assert wrong.returncode == 0
    hive_config(config, "host1")["hostKey"] = (tmp_path / "k.pub").read_text().strip()
    hive_config(config, "host1")["installMethod"]["git"]["tag"] = "v0.2.0"
    message = engine.up(declare(config)).error_summary("hive-host1")
    assert "does not match pinned key SHA256:" in message, message
    assert_hive_installed(hosts1, host, version="0.1.0")


def test_encrypted_key_with_passphrase_and_wrong_passphrase(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine, tmp_path: Path
) -> None:
    (host,) = hosts1.hosts
    key = tmp_path / "id_pass"
    key.write_text(hosts1.client_key_pem)
    key.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-N", "s3cret-pass", "-f", str(key)], check=True)
    base = {"rbee:sshPrivateKeyPath": str(key)}
    bad = engine.up(declare(make_fleet(hosts1, rbee_repo, **base,
                                       **{"rbee:sshPrivateKeyPassword": "wrong-pass"}),
                            ("rbee:sshPrivateKeyPassword",)))
    message = bad.error_summary("hive-host1")
    assert message.endswith(
        "hive host1: connect failed: the private key could not be decrypted (wrong passphrase?)"
    )
    assert "wrong-pass" not in "".join(bad.errors.values())
    good = engine.up(declare(make_fleet(hosts1, rbee_repo, **base,
                                        **{"rbee:sshPrivateKeyPassword": "s3cret-pass"}),
                             ("rbee:sshPrivateKeyPassword",)))
    assert good.ok, good.errors
    assert_hive_installed(hosts1, host, version="0.1.0")
    assert "s3cret-pass" not in engine.state_path.read_text()


def test_inline_private_key_secret_and_ssh_agent(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (host,) = hosts1.hosts
    config = make_fleet(hosts1, rbee_repo, **{"rbee:sshPrivateKey": hosts1.client_key_pem})
    del config["rbee:sshPrivateKeyPath"]
    assert engine.up(declare(config, ("rbee:sshPrivateKey",))).ok
    assert_hive_installed(hosts1, host, version="0.1.0")
    body = hosts1.client_key_pem.strip().splitlines()[1]
    assert body not in engine.state_path.read_text()

    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        wait_until(sock.exists)
        subprocess.run(["ssh-add", "-q", str(hosts1.client_key_path)], check=True,
                       env={"SSH_AUTH_SOCK": str(sock)}, capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        agent_config = make_fleet(hosts1, rbee_repo, ref={"tag": "v0.2.0"}, **{"rbee:sshAgent": True})
        del agent_config["rbee:sshPrivateKeyPath"]
        result = engine.up(declare(agent_config))
        assert result.ok, result.errors
        assert_hive_installed(hosts1, host, version="0.2.0")
    finally:
        agent.terminate()
        agent.wait()
