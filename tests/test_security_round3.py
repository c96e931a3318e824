"""Findings of the third security review, each proved on real sshd hosts where a host is involved.

Test names carry the finding's number (`test_r3_<n>_...`); each failed before its fix.
docs/security.md lists them.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pulumi
import pytest
import yaml

from rbee_infra import cli
from rbee_infra.base import layout
from rbee_infra.base.errors import ConfigError, HostError
from rbee_infra.base.redact import url_secrets
from rbee_infra.config.fleet import parse_fleet
from rbee_infra.config.spec import parse_spec
from rbee_infra.decide import plan
from rbee_infra.decide.facts import InstalledBinary
from rbee_infra.host import hostview, scripts
from rbee_infra.host.ssh import script_command, without_credentials
from rbee_infra.stack.program import HOST_KEYS, declare_fleet, read_stack_config
from tests.harness import installs
from tests.harness.engine import Engine
from tests.harness.fixture_repo import RbeeRepo
from tests.harness.fleet import declare, make_fleet
from tests.harness.git_http import GitHttpServer
from tests.harness.host_tools import host_with_scripts, host_without
from tests.harness.hosts import _RUNUSER as RUNUSER
from tests.harness.hosts import Host, HostSet, rotate_host_key
from tests.harness.installs import version
from tests.harness.release_server import ReleaseServer, script_binary, sha256
from tests.program_mocks import install_mocks, kickoff_hosts

hosts_needed = pytest.mark.hosts
unit = pytest.mark.unit

HIVE = ".local/bin/rbee-hive"
BAIT = ".local/share/pki/keep"  # what a forged release id `../../../pki` would reach

# A host whose `git ls-remote` lies about what refs/heads/main means (a compromised host, or a
# man in the middle on its way to the git server): it answers the text in ~/.forge (every time)
# or ~/.forge-once (once); every other git call is the real git.
LYING_GIT = """#!/bin/sh
for a in "$@"; do
  if [ "$a" = ls-remote ]; then
    if [ -f "$HOME/.forge" ]; then forged=$(cat "$HOME/.forge")
    elif [ -f "$HOME/.forge-once" ]; then forged=$(cat "$HOME/.forge-once"); rm -f "$HOME/.forge-once"
    else exec /usr/bin/git "$@"; fi
    printf '%s\\trefs/heads/main\\n' "$forged"
    exit 0
  fi
done
exec /usr/bin/git "$@"
"""


def _bait(*hosts: Host) -> None:
    for host in hosts:
        host.run(f"mkdir -p {BAIT} && echo mine > {BAIT}/file")


def _bait_intact(host: Host) -> bool:
    return host.run(f"cat {BAIT}/file", check=False).stdout == "mine\n"


def _built_anything(host: Host) -> list[str]:
    """Every rbee-hive binary cargo left on the host (nothing when no build ran)."""
    found = host.run("find . -type f -name rbee-hive 2>/dev/null || true").stdout
    return sorted(found.split())


# --- 1. one host's git ls-remote decided what every host built ----------------------------


@unit
def test_r3_1_only_a_full_commit_id_is_taken_from_a_listing() -> None:
    spec = parse_spec({
        "alias": "gpu", "component": "hive", "binary": "rbee-hive",
        "source": {"method": "git", "repo": "https://example.org/r.git", "branch": "main"},
        "connection": {"host": "10.0.0.5", "user": "rbee"},
    })
    good = "0123456789abcdef0123456789abcdef01234567"
    assert plan.commit_in_listing(spec, f"{good}\trefs/heads/main\n") == good
    for forged in ("../../../pki", good[:12], good.upper(), good + "0", f"{good[:39]}/"):
        with pytest.raises(HostError) as caught:
            plan.commit_in_listing(spec, f"{forged}\trefs/heads/main\n")
        assert "which is not a commit id (40 hex digits); refusing it" in str(caught.value)
        assert caught.value.phase == "resolve"


@unit
def test_r3_1_a_release_id_is_checked_wherever_it_becomes_a_path() -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    made = [layout.release_id(commit, []), layout.release_id(commit, ["cpu", "cuda"]),
            layout.release_id("abcdef1", ["x_y-z"]) + "-r" + "0a1b2c"]
    assert all(layout.is_release_id(rid) for rid in made)
    for bad in ("../../../pki", "..", ".", "", "-rf", "0123456789ab/x", "0123456789ab-../x", None):
        assert not layout.is_release_id(bad)
    with pytest.raises(ValueError, match="not a release id"):
        layout.release_dir("rbee-hive", "../../../pki")
    # a link on the host that points out of the releases dir names no release
    link = "../share/rbee/releases/rbee-hive/../../../pki/rbee-hive"
    assert InstalledBinary("rbee-hive", "symlink", link, "f" * 64, None).release_id is None
    link = f"../share/rbee/releases/rbee-hive/{made[0]}/rbee-hive"
    assert InstalledBinary("rbee-hive", "symlink", link, "f" * 64, None).release_id == made[0]


@hosts_needed
@pytest.mark.parametrize("forged", ["../../../pki", "old commit"])
def test_r3_1_a_forged_listing_on_one_host_builds_nothing_and_touches_nothing_outside_rbee(
    hosts: HostSet, rbee_repo: RbeeRepo, engine: Engine, forged: str
) -> None:
    host1, host2 = hosts[0], hosts[1]
    old = rbee_repo.commit_of("v0.1.0")
    forged = old if forged == "old commit" else forged
    _bait(host1, host2)
    host1.run(f"printf '%s' '{forged}' > .forge")
    config = make_fleet(hosts, rbee_repo, hives=2, ref={"branch": "main"})
    with host_with_scripts(host1, {"git": LYING_GIT}):
        result = engine.up(declare(config))

    # the second host resolved main for itself and built what main is
    assert "hive-host2" not in result.errors, result.errors
    assert version(host2, HIVE) == "rbee-hive 0.2.0"
    # the lying host built nothing and says why
    error = result.errors["hive-host1"]
    if forged == old:
        assert "branch 'main' moved" in error, error
        assert f"expected {old}" in error, error
    else:
        assert "is not a commit id" in error and "'../../../pki'" in error, error
    assert _built_anything(host1) == []
    assert host1.run(f"test -e {HIVE}", check=False).returncode != 0
    # and nothing outside rbee's directories was touched, on either host
    assert _bait_intact(host1) and _bait_intact(host2)


@hosts_needed
def test_r3_1_a_ref_that_moved_after_it_was_resolved_is_resolved_again_on_its_host(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    """The check saw one commit, the host's fetch of the ref another (a push in between): the
    build refuses the commit it did not fetch, the install asks the host once more and builds
    what the ref means now, and says so."""
    (host,) = hosts1.hosts
    old, new = rbee_repo.commit_of("v0.1.0"), rbee_repo.commit_of("main")
    host.run(f"printf '%s' '{old}' > .forge-once")  # the check's ls-remote sees the old one
    config = make_fleet(hosts1, rbee_repo, ref={"branch": "main"})
    with host_with_scripts(host, {"git": LYING_GIT}):
        result = engine.up(declare(config))
    assert result.ok, result.errors
    assert version(host, HIVE) == "rbee-hive 0.2.0"
    assert engine.state()["hive-host1"].outputs["commit"] == new
    log = engine.provider_log_path.read_text()
    assert f"branch 'main' moved from {old[:12]} to {new[:12]}" in log, log[-3000:]


@hosts_needed
def test_r3_1_a_release_id_from_state_never_names_a_path(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    _bait(host)
    source = {"method": "git", "repo": rbee_repo.url, "tag": "v0.1.0"}
    assert engine.up([installs.hive(hosts1, host, source)]).ok
    # the state names another "release", and the host no longer shows the install as ours
    raw = json.loads(engine.state_path.read_text())
    for item in raw["resources"]:
        if item["name"] == "hive-h1":
            item["outputs"]["releaseId"] = "../../../pki"
    engine.state_path.write_text(json.dumps(raw))
    host.run(f"rm -f {HIVE} .local/share/rbee/receipts/rbee-hive.json")
    assert engine.destroy().ok
    assert _bait_intact(host)
    assert "not removing release '../../../pki': not a release id" in (
        engine.provider_log_path.read_text()
    )


@hosts_needed
def test_r3_1_remove_refuses_a_release_id_that_is_not_one(hosts1: HostSet) -> None:
    """Belt and braces on the host: a release id that would leave the releases dir is refused."""
    (host,) = hosts1.hosts
    _bait(host)
    reldir = ".local/share/rbee/releases/rbee-hive"
    host.run(f"mkdir -p {reldir}")
    args = [".local/share/rbee/.lock", "5", "test", "abort-create", HIVE,
            ".local/share/rbee/receipts/rbee-hive.json", "id", reldir, "", "", "jobs/x", "now",
            "../../../pki"]
    result = host.run(script_command(scripts.REMOVE, *args), check=False)
    assert result.returncode == 2
    assert "not a release id: ../../../pki" in result.stderr
    assert _bait_intact(host)
    # a download in progress (`<release id>.incoming`) is still cleaned up; a forged one is not
    args[-1] = "../../../pki.incoming"
    assert host.run(script_command(scripts.REMOVE, *args), check=False).returncode == 2
    host.run(f"mkdir -p {reldir}/0123456789ab.incoming")
    args[-1] = "0123456789ab.incoming"
    host.run(script_command(scripts.REMOVE, *args))
    assert host.run(f"test -e {reldir}/0123456789ab.incoming", check=False).returncode != 0
    assert _bait_intact(host)


# --- 2. a targeted `up` trusted a changed key on first use --------------------------------

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBd2qK9HtO4Je0vvVYkP7mJ7f8c5Gf3W3xk0u2r0u3Ve"


def _tofu_fleet() -> dict[str, Any]:
    repo = {"git": {"repo": "https://example.org/r.git", "tag": "v1"}}
    return {
        "rbee:hives": [
            {"alias": "gpu", "hostname": "GPU.example.org", "sshUser": "a", "sshPort": 2222,
             "installMethod": repo, "workers": [{"type": "cpu"}, {"type": "cuda"}]},
            {"alias": "gpu-b", "hostname": "gpu.example.org", "sshUser": "b", "sshPort": 2222,
             "installMethod": repo},
            {"alias": "other", "hostname": "10.0.0.7", "sshUser": "a", "installMethod": repo},
        ],
        "rbee:sshPrivateKeyPath": "~/.ssh/id_ed25519",
        "rbee:hostKeyPolicy": "tofu",
    }


def _run(config: dict[str, Any], stack_outputs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    recorder = install_mocks(config, stack_outputs=stack_outputs)
    exported: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> Any:
        exports = declare_fleet(*read_stack_config())
        keys = exports.get(HOST_KEYS, {})
        return pulumi.Output.all(*keys.values()).apply(
            lambda values: exported.update(zip(keys, values, strict=True))
        )

    program()
    return recorder, exported


@unit
def test_r3_2_every_resource_of_a_host_gets_the_key_the_stack_pinned_for_it() -> None:
    recorder, exported = _run(_tofu_fleet(), {HOST_KEYS: {"gpu.example.org:2222": KEY}})
    # one host key per (host, port), whoever logs in: both accounts of the host get it
    for name in ("hive-gpu", "worker-gpu-cpu", "worker-gpu-cuda", "hive-gpu-b"):
        assert recorder.by_name(name).inputs["trustedHostKey"] == KEY, name
    assert recorder.by_name("hive-other").inputs.get("trustedHostKey") is None
    hosts = kickoff_hosts(recorder)
    assert [h.get("trustedHostKey") for h in hosts] == [KEY, KEY, None]
    # and the stack exports the pins its resources hold, for the next run to read back
    assert exported == {"gpu.example.org:2222": KEY, "10.0.0.7:22": None}


@unit
def test_r3_2_without_tofu_the_program_reads_no_pins() -> None:
    config = {**_tofu_fleet(), "rbee:hostKeyPolicy": "strict"}
    recorder, exported = _run(config, {HOST_KEYS: {"gpu.example.org:2222": KEY}})
    assert exported == {}
    assert recorder.by_name("hive-gpu").inputs.get("trustedHostKey") is None


# --- 3. destroy deleted a hand-made binary that replaced the managed link -------------------


@hosts_needed
def test_r3_3_destroy_never_removes_a_binary_that_replaced_our_link(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    source = {"method": "git", "repo": rbee_repo.url, "tag": "v0.1.0"}

    def hand_made(text: str) -> None:
        host.run(f"rm -f {HIVE} && printf '#!/bin/sh\\necho {text}\\n' > {HIVE} && chmod +x {HIVE}")

    assert engine.up([installs.hive(hosts1, host, source)]).ok
    hand_made("mine-A")  # someone puts their own binary where our link was
    assert engine.destroy().ok
    assert version(host, HIVE) == "mine-A"  # not ours: left where it is

    # with a saved one to put back, the newer one is set aside, never lost
    assert engine.up([installs.hive(hosts1, host, source)]).ok
    assert version(host, f"{HIVE}.pre-rbee-infra") == "mine-A"
    hand_made("mine-B")
    assert engine.destroy().ok
    assert version(host, HIVE) == "mine-A"
    assert version(host, f"{HIVE}.pre-rbee-infra.1") == "mine-B"


# --- 4. import wrote git tokens from a hives.conf in plain text -----------------------------

TOKEN = "ghp_ImportT0ken0123456789abcdefABCDEF"
CONF_WITH_TOKEN = f"""
[[hive]]
alias = "gpu"
hostname = "gpu.example.internal"
ssh_user = "rbee"
install_method = {{ git = {{ repo = "https://x-access-token:{TOKEN}@github.com/o/r.git", branch = "main" }} }}
"""


@unit
def test_r3_4_import_never_writes_a_token_in_plain_text(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: rbee-infra\nruntime: python\nstackConfigDir: stacks\n")
    conf = tmp_path / "hives.conf"
    conf.write_text(CONF_WITH_TOKEN)
    args = ["import", str(conf), "--stack", "dev", "--project-dir", str(tmp_path)]
    assert cli.main(args) == 3
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err
    assert (
        "rbee:hives[0].installMethod.repo: carries a credential, which import never writes in "
        "plain text; import the file without it, then set it as a secret: "
        "pulumi config set --secret --path 'rbee:hives[0].installMethod.repo' '<url>'"
    ) in captured.err
    assert not (tmp_path / "stacks").exists()

    # --dry-run shows the file as it would be, without the token, and says the same
    assert cli.main([*args, "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err
    hive = yaml.safe_load(captured.out)["config"]["rbee:hives"][0]
    assert hive["installMethod"]["repo"] == "https://***@github.com/o/r.git"
    assert "pulumi config set --secret --path 'rbee:hives[0].installMethod.repo'" in captured.err
    assert not (tmp_path / "stacks").exists()


# --- 5. credential URLs that escaped the stdin path, or were encoded twice ------------------


@unit
def test_r3_5_credentials_are_read_as_git_reads_them_and_encoded_once() -> None:
    assert without_credentials(["https://user:tok%23en%2F@host:8443/r.git", "x"]) == (
        ["https://host:8443/r.git", "x"],
        "https://user:tok%23en%2F@host:8443\n",  # git decodes it once: tok#en/
    )
    assert without_credentials(["http://ghp_T0ken@h/r"]) == (["http://h/r"], "http://ghp_T0ken@h\n")
    assert set(url_secrets("https://user:tok%23en@host/r.git")) == {"tok%23en", "tok#en"}


@unit
@pytest.mark.parametrize("url, why", [
    ("https://user:to#ken@host/r.git", "has a '#' in its user name or password"),
    ("https://user:to?ken@host/r.git", "has a '?' in its user name or password"),
    ("https://user:to/ken@host/r.git", "has an '@' after the host: a user name or password with an unencoded '/'"),
    ("https://us@er:token@host/r.git", "has more than one '@' before the host"),
    ("https://user:tok%zzen@host/r.git", "has a '%' in its user name or password"),
])
def test_r3_5_an_ambiguous_credential_url_is_refused_before_any_host(url: str, why: str) -> None:
    for field, source in (
        ("installMethod.git.repo", {"git": {"repo": url}}),
        ("installMethod.release.baseUrl", {"release": {"tag": "v1", "baseUrl": url}}),
    ):
        with pytest.raises(ConfigError) as caught:
            parse_fleet({"hives": [{"alias": "a", "hostname": "h", "sshUser": "u",
                                    "installMethod": source}]})
        ((path, message),) = caught.value.problems
        assert path == f"hives[0].{field}" and message.startswith(f"this URL {why}"), message
        assert "ken" not in str(caught.value)


@hosts_needed
def test_r3_5_a_percent_encoded_token_authenticates_on_the_host(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    token = "tok#en/+%x"  # what the git server expects, once decoded
    server = GitHttpServer(rbee_repo.path.parent, token)
    try:
        url = (f"http://x-access-token:{quote(token, safe='')}@127.0.0.1:{server.port}/"
               f"{rbee_repo.path.name}")
        source = {"method": "git", "repo": url, "tag": "v0.1.0"}
        result = engine.up([installs.hive(hosts1, host, source, secret_source=True)])
        assert result.ok, result.errors
        assert version(host, HIVE) == "rbee-hive 0.1.0"
        assert server.requests > server.unauthorized > 0  # the credential was sent, and right
        logs = engine.provider_log_path.read_text() + json.dumps(result.errors)
        assert quote(token, safe="") not in logs and token not in logs
    finally:
        server.close()


# --- 6. under tofu, a host named only in @revoked / @cert-authority lines was unknown -------


def _tofu(hosts: HostSet, repo: RbeeRepo, **settings: Any) -> dict[str, Any]:
    config = make_fleet(hosts, repo, **{"rbee:hostKeyPolicy": "tofu"})
    del config["rbee:knownHosts"]
    return {**config, **settings}


@hosts_needed
def test_r3_6_under_tofu_a_revoked_key_is_refused_not_pinned(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine, tmp_path: Path
) -> None:
    (host,) = hosts1.hosts
    known = tmp_path / "known_hosts"
    known.write_text(f"@revoked [{host.address}]:{host.port} {host.host_key_public}\n")
    result = engine.up(declare(_tofu(hosts1, rbee_repo, **{"rbee:knownHosts": str(known)})))
    assert not result.ok
    assert "is marked @revoked in" in result.errors["hive-host1"], result.errors
    assert host.run(f"test -e {HIVE}", check=False).returncode != 0
    assert "hive-host1" not in engine.state()  # nothing created, nothing pinned
    assert "trusting the host key seen on first use" not in engine.provider_log_path.read_text()


@unit
def test_r3_6_known_hosts_markers_are_honoured(tmp_path: Path) -> None:
    from rbee_infra.config.spec import Connection
    from rbee_infra.host.ssh import listed_in_known_hosts, revoked_in_known_hosts

    ca = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK2vUuOLD4WvGPPtvNrKCTS0nLjR0ao1V9lSJQKuY1wa"
    known = tmp_path / "known_hosts"
    known.write_text(f"@cert-authority *.example.org {ca}\n@revoked [10.0.0.5]:2222 {KEY}\n")
    conn = {"user": "u", "knownHosts": str(known), "hostKeyPolicy": "tofu"}
    # a host under a certificate authority is known: only a key that CA signed is accepted
    assert listed_in_known_hosts(Connection(host="gpu.example.org", **conn)) == str(known)
    # a host named only in a @revoked line is not known, but its revoked key is refused
    revoked = Connection(host="10.0.0.5", port=2222, **conn)
    assert listed_in_known_hosts(revoked) is None
    assert revoked_in_known_hosts(revoked, f"{KEY} comment")
    assert not revoked_in_known_hosts(Connection(host="10.0.0.6", port=2222, **conn), KEY)


# --- 7. rbee:sshConfig ran Match exec and silently dropped ProxyCommand ---------------------


def _ssh_config(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "ssh_config"
    path.write_text(text)
    return parse_fleet({"sshConfig": str(path), "hives": [{"alias": "a", "hostname": "gpu-1"}]})


@unit
def test_r3_7_the_ssh_config_is_read_as_data_never_run(tmp_path: Path) -> None:
    from rbee_infra.config.sshconfig import connection_fields

    marker = tmp_path / "ran"
    fleet = _ssh_config(tmp_path, f'Match host other exec "touch {marker}"\n  User x\n'
                                  "Host gpu-1\n  HostName 10.0.0.11\n")
    with pytest.raises(ConfigError) as caught:
        connection_fields(fleet, fleet.hives[0])
    assert "line 1: Match exec is refused: it would run its command on every preview" in str(
        caught.value)
    assert not marker.exists()

    for line, why in (
        ("ProxyCommand ssh -W %h:%p bastion", "ProxyCommand is refused: rbee-infra runs no "
                                              "command from this file; use ProxyJump"),
        ("LocalCommand echo hi", "LocalCommand is refused"),
    ):
        fleet = _ssh_config(tmp_path, f"Host gpu-1\n  HostName 10.0.0.11\n  {line}\n")
        with pytest.raises(ConfigError, match=why):
            connection_fields(fleet, fleet.hives[0])
    # another host's, and `ProxyCommand none`, are no concern of this hive
    fleet = _ssh_config(tmp_path, "Host other\n  ProxyCommand nc %h %p\n  LocalCommand x\n"
                                  "Host gpu-1\n  HostName 10.0.0.11\n  ProxyCommand none\n")
    assert connection_fields(fleet, fleet.hives[0])["host"] == "10.0.0.11"


@unit
def test_r3_7_an_option_that_would_change_the_route_is_named_when_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rbee_infra.config import sshconfig

    warned: list[str] = []
    monkeypatch.setattr(sshconfig, "warn", lambda label, text: warned.append(f"{label}: {text}"))
    fleet = _ssh_config(tmp_path, "Host gpu-1\n  HostName 10.0.0.11\n  BindAddress 10.9.9.9\n"
                                  "  HostKeyAlias gpu\n  BindInterface eth1\n")
    assert sshconfig.connection_fields(fleet, fleet.hives[0])["host"] == "10.0.0.11"
    assert warned == [
        f"hive a: {tmp_path / 'ssh_config'} sets BindAddress, BindInterface, HostKeyAlias for "
        "Host gpu-1, which rbee-infra does not apply: it connects to 10.0.0.11:22 directly"
    ]


# --- 8. pins were dropped when sshUser changed ----------------------------------------------


@hosts_needed
def test_r3_8_a_pin_belongs_to_the_host_and_port_not_the_user(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    assert engine.up(declare(_tofu(hosts1, rbee_repo))).ok  # pins the host's key
    rotate_host_key(host)
    config = _tofu(hosts1, rbee_repo)
    config["rbee:hives"][0]["sshUser"] = "someone-else"  # another account, the same machine
    result = engine.up(declare(config))
    assert not result.ok
    assert "does not match pinned key" in result.errors["hive-host1"], result.errors
    assert "trusting the host key seen on first use" not in engine.provider_log_path.read_text()


# --- 9. the git credential file outlived signals and KILL_JOB, and waited on disk -----------

SECRET = "Cr3dTrapSecret0123456789abcdef"


class _Silent:
    """A TCP server that accepts and never answers: a git fetch from it hangs."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


def _secret_files(host: Host) -> list[str]:
    """Files holding the secret in the host's home (the scripts' TMPDIR is in it, see below)."""
    found = host.run(f"grep -rlF {SECRET} . 2>/dev/null || true").stdout
    return sorted(found.split())


def _wait(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


@hosts_needed
def test_r3_9_credentials_never_outlive_a_signal_nor_wait_on_disk_for_the_build_lock(
    hosts1: HostSet,
) -> None:
    (host,) = hosts1.hosts
    silent = _Silent()
    url = f"http://127.0.0.1:{silent.port}/r.git"
    creds = f"http://u:{SECRET}@127.0.0.1:{silent.port}\n"
    try:
        # a probe killed (the SSH link gone, an interrupted run) while git hangs
        for script, args in (
            (scripts.RESOLVE, [url, "refs/heads/main"]),
            (scripts.BATCH, hostview.encode([(scripts.RESOLVE, [url, "refs/heads/main"])])),
        ):
            host.run("mkdir -p tmp")  # mktemp's dir: this test's own, not the shared /tmp
            proc = subprocess.Popen(
                [RUNUSER, "-u", host.user, "--", "sh", "-c", script, "rbee", *args],
                cwd=host.home, env={**host.env(), "TMPDIR": str(host.home / "tmp")},
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )
            assert proc.stdin is not None
            proc.stdin.write(creds.encode())
            proc.stdin.close()
            _wait(lambda: _secret_files(host))
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
            assert _secret_files(host) == [], script[:40]

        # a build job waits for the build lock another build holds: no credential on disk
        rbee = ".local/share/rbee"
        holder = subprocess.Popen(
            [RUNUSER, "-u", host.user, "--", "sh", "-c",
             f"mkdir -p {rbee} && exec flock {rbee}/.lock.build sleep 600"],
            cwd=host.home, env=host.env(), start_new_session=True,
        )
        _wait(lambda: "flock" in host.run("cat .local/share/rbee/.lock.build.holder 2>/dev/null;"
                                          " ps -u \"$(id -u)\" -o args").stdout)

        def start(job: str) -> None:
            stage = f"{rbee}/releases/rbee-hive/0123456789ab"
            args = [job, f"{stage}/rbee-hive", scripts.BUILD_JOB, f"{rbee}/.lock", "600",
                    "test", f"{rbee}/build/x", f"{rbee}/build/x/users/t", url,
                    "refs/heads/main", "0" * 40, "cargo", "rbee-hive", "", stage, "0"]
            assert host.run(script_command(scripts.START_JOB, *args), input=creds
                            ).stdout.strip() == "started"

        def phase(job: str) -> str:
            return host.run(f"cat {job}/phase 2>/dev/null || true").stdout.strip()

        first, second = f"{rbee}/jobs/t/1", f"{rbee}/jobs/t/2"
        start(first)
        _wait(lambda: phase(first) == "lock")
        time.sleep(1)
        assert _secret_files(host) == []
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(30)
        _wait(lambda: phase(first) == "clone" and _secret_files(host))  # fetching: needed now
        # KILL_JOB (TERM to the job's process group): the job's trap removes them
        host.run(script_command(scripts.KILL_JOB, first))
        assert _secret_files(host) == []
        assert f"rbee-job {first}" not in host.run("ps -u \"$(id -u)\" -o args").stdout

        # a job killed outright (SIGKILL: no trap runs): KILL_JOB removes them
        start(second)
        _wait(lambda: phase(second) == "clone" and _secret_files(host))
        pid = int(host.run(f"cat {second}/pid").stdout)
        os.killpg(pid, signal.SIGKILL)
        host.run(script_command(scripts.KILL_JOB, second))
        assert _secret_files(host) == []
    finally:
        silent.close()


# --- 10. queenUrl's userinfo was no secret, yet on the command line and in the unit file ----


@unit
@pytest.mark.parametrize("url", [
    "http://queen:s3cretpw@10.0.0.1:7833", "http://t0kenvalue@10.0.0.1:7833",
    "http://10.0.0.1:7833/?token=t0kenvalue",
])
def test_r3_10_a_queen_url_with_a_credential_is_refused(url: str) -> None:
    hive = {"alias": "a", "hostname": "h", "sshUser": "u", "queenUrl": url}
    with pytest.raises(ConfigError) as caught:
        parse_fleet({"hives": [hive]})
    ((path, message),) = caught.value.problems
    assert path == "hives[0].queenUrl"
    assert message.endswith("carries a credential; rbee-hive's --queen-url is readable by every "
                            "user of the host (its command line and unit file), so it cannot "
                            "carry one")
    assert "s3cretpw" not in message and "t0kenvalue" not in message
    # the provider's own input model refuses it too (a stack recorded before this check)
    with pytest.raises(ConfigError, match="queenUrl"):
        parse_spec({"alias": "a", "component": "hive", "binary": "rbee-hive", "queenUrl": url,
                    "source": {"method": "git"}, "connection": {"host": "h", "user": "u"}})
    assert parse_fleet({"hives": [{**hive, "queenUrl": "http://10.0.0.1:7833"}]}).hives


# --- 11. the operator's state dir was created 0755 -----------------------------------------


@unit
def test_r3_11_the_state_dir_is_created_for_its_user_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rbee_infra.stack import automation

    def no_further(*_: Any, **__: Any) -> int:
        raise RuntimeError("the operation itself is not run here")

    monkeypatch.setattr(automation, "pulumi_cli", lambda path=None: "pulumi")
    monkeypatch.setattr(automation, "_stream", no_further)
    (tmp_path / "Pulumi.yaml").write_text("name: rbee-infra\nruntime: python\n")
    old = os.umask(0o022)
    try:
        environ = {"PULUMI_CONFIG_PASSPHRASE": ""}  # as scripts/localhost.sh runs it
        settings = automation.backend_settings(environ, home=tmp_path)
        with pytest.raises(RuntimeError, match="not run here"):
            automation.run("preview", project_dir=tmp_path, stack="localhost",
                           settings=settings, on_output=print)
    finally:
        os.umask(old)
    assert settings.state_dir == tmp_path / ".local/share/rbee-infra/state"
    assert settings.state_dir.stat().st_mode & 0o777 == 0o700


# --- 12. a worker's version became a release tag without validation ------------------------


@unit
def test_r3_12_a_workers_version_is_a_validated_tag() -> None:
    from rbee_infra.config.fleet import WorkerConfig, worker_source

    release = {"release": {"repo": "o/r", "tag": "v1", "sha256": "a" * 64}}
    hive = {"alias": "a", "hostname": "h", "sshUser": "u", "installMethod": release}
    for bad in ("v1/../../../evil/repo", "v1//x", "v1.lock", "v1/"):
        with pytest.raises(ConfigError) as caught:
            parse_fleet({"hives": [{**hive, "workers": [{"type": "cpu", "version": bad}]}]})
        ((path, message),) = caught.value.problems
        assert path == "hives[0].workers[0].version" and "is not a valid git ref name" in message
    fleet = parse_fleet({"hives": [{**hive, "workers": [{"type": "cpu", "version": "v2"}]}]})
    source = worker_source(fleet.hives[0], fleet.hives[0].workers[0])
    assert (source.method, source.tag) == ("release", "v2")  # type: ignore[union-attr]
    # and the source is built validated, whatever the worker holds
    forged = WorkerConfig.model_construct(type="cpu", version="v1/../../x", install_method=None)
    with pytest.raises(ValueError, match="not a valid git ref name"):
        worker_source(fleet.hives[0], forged)


# --- 13. wget got credentials unasked (--auth-no-challenge), and could follow redirects -----


@hosts_needed
def test_r3_13_a_credential_is_never_given_to_wget(hosts1: HostSet, engine: Engine) -> None:
    (host,) = hosts1.hosts
    token = "tok3nForWget0123456789"
    cpu = script_binary("llm-worker-rbee-cpu 0.1.0 features=cpu")
    with ReleaseServer() as server, host_without(host, "curl"):
        server.publish("o/r", "v1", "llm-worker-rbee-cpu", cpu, checksum="file")
        plain = {"method": "release", "repo": "o/r", "tag": "v1", "baseUrl": server.base_url}
        assert engine.up([installs.worker(hosts1, host, "cpu", plain, depends_on=())]).ok
        server.required_auth = "Basic " + base64.b64encode(f"{token}:".encode()).decode()
        served = len(server.requests)
        private = {**plain, "tag": "v1", "baseUrl": f"http://{token}@127.0.0.1:{server.port}",
                   "sha256": sha256(cpu)}
        decl = installs.worker(hosts1, host, "cpu", private, depends_on=(), secret_source=True)
        assert engine.up([decl]).ok
        assert all(r.authorization == server.required_auth for r in server.requests[served:])
        # the host's wget refuses one, should it ever be handed one
        refused = host.run(script_command(scripts.FETCH_TEXT, "wget"), check=False,
                           input=f"http://{token}@127.0.0.1:{server.port}/o/r\n")
        assert refused.returncode == 2
        assert "wget is never given a URL with a credential" in refused.stderr
    log = engine.provider_log_path.read_text()
    assert "llm-worker-rbee-cpu with wget on the host" in log  # no credential: wget is fine
    assert ("llm-worker-rbee-cpu on this machine (the host has no curl; wget is never given a "
            "credential)") in log
    assert token not in log


# --- 14. the credential helper's path was not quoted; `git cat-file` took no `--` -----------


@hosts_needed
def test_r3_14_credentials_work_from_a_temp_dir_with_a_space_and_a_quote(
    hosts1: HostSet, rbee_repo: RbeeRepo
) -> None:
    (host,) = hosts1.hosts
    token = "tok3nQuotedPath0123"
    server = GitHttpServer(rbee_repo.path.parent, token)
    try:
        url = f"http://127.0.0.1:{server.port}/{rbee_repo.path.name}"
        creds = f"http://x-access-token:{token}@127.0.0.1:{server.port}\n"
        tmp = "\"$HOME/my tmp'dir\""
        listing = host.run(
            f"mkdir -p {tmp} && TMPDIR={tmp} "
            + script_command(scripts.RESOLVE, url, "refs/tags/v0.1.0^{}"),
            input=creds,
        ).stdout
        assert listing == f"{rbee_repo.commit_of('v0.1.0')}\trefs/tags/v0.1.0^{{}}\n"
        assert server.unauthorized > 0 and server.requests > server.unauthorized
        assert host.run(f"ls -A {tmp}").stdout == ""  # and the file is gone
    finally:
        server.close()


@unit
def test_r3_14_git_cat_file_ends_its_options_before_the_commit() -> None:
    calls = [line for line in scripts.BUILD_JOB.splitlines() if "cat-file" in line]
    assert calls and all('cat-file -e -- "$' in line for line in calls), calls
    assert any('cat-file -e -- "$commit^{commit}"' in line for line in calls), calls
