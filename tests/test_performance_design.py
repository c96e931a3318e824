"""The performance design on real hosts (see docs/performance.md): one SSH connection per host
per provider process, a no-op costing one batched probe per host, builds of one host sharing
one checkout and target dir, and every host building at once despite the provider server's
4 threads.

Logins and commands are counted on the hosts' side, from each sshd's log ("Accepted
publickey": a completed SSH handshake; "Starting session": one command), so nothing here
trusts the library's own bookkeeping.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pytest

from rbee_infra.base.errors import ConnectError
from rbee_infra.config.spec import InstallSpec, parse_spec
from rbee_infra.config.spec import hosts_of as parse_spec_hosts
from rbee_infra.decide import plan
from rbee_infra.decide.facts import parse_probe
from rbee_infra.host import hostview, pool, scripts, ssh
from rbee_infra.host.ssh import Result
from rbee_infra.stack import kickoff
from tests.harness import standin_cargo
from tests.harness.assertions import assert_hive_installed, assert_worker_installed
from tests.harness.engine import Engine
from tests.harness.fixture_repo import RbeeRepo, workspace_files
from tests.harness.fleet import declare, make_fleet
from tests.harness.hosts import Host, HostSet, free_port, start_hosts
from tests.harness.snapshot import diff_snapshots, snapshot_home

T = TypeVar("T")


def sshd_counts(host: Host) -> tuple[int, int]:
    text = host.sshd_log.read_text(errors="replace")
    return text.count("Accepted publickey"), text.count("Starting session")


def counted(hosts: Sequence[Host], fn: Callable[[], T]) -> tuple[T, list[tuple[int, int]]]:
    """fn's value, and per host the (handshakes, commands) it caused."""
    before = [sshd_counts(h) for h in hosts]
    value = fn()
    after = [sshd_counts(h) for h in hosts]
    return value, [(a[0] - b[0], a[1] - b[1]) for a, b in zip(after, before, strict=True)]


# ---------------------------------------------------------------- one connection per host


@pytest.mark.hosts
def test_one_handshake_per_host_and_a_no_op_is_one_batched_probe(
    hosts: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    two = dataclasses.replace(hosts, hosts=hosts.hosts[:2])
    config = make_fleet(two, rbee_repo, workers_per_hive=2)
    for hive in config["rbee:hives"]:
        hive["cargo"] = standin_cargo.install([two.by_name(hive["alias"])], 0)

    result, per_host = counted(two.hosts, lambda: engine.up(declare(config)))
    assert result.ok, result.errors
    assert set(result.ops().values()) == {"create"} and len(result.ops()) == 7
    # installing read the toolchain facts (preflight) on each host
    assert all(standin_cargo.version_queries(h) >= 1 for h in two.hosts)
    # the kick-off, and a hive and two workers per host: one SSH connection per host
    assert [logins for logins, _ in per_host] == [1, 1]
    for host in two.hosts:
        assert_hive_installed(two, host, version="0.1.0")
        assert_worker_installed(two, host, "cuda", features=["cuda"], version="0.1.0")

    # nothing changed: preview and up each cost one connection and one command per host,
    # the batched read-only probe (receipts, sha256s, the tag's commit): no fetch, no build,
    # no toolchain query (`cargo --version` would leave a line in ~/bench, see the snapshots)
    before = [snapshot_home(h) for h in two.hosts]
    plan_, per_host = counted(two.hosts, lambda: engine.preview(declare(config)))
    assert set(plan_.ops().values()) == {"same"} and len(plan_.ops()) == 7
    assert per_host == [(1, 1), (1, 1)]
    result, per_host = counted(two.hosts, lambda: engine.up(declare(config)))
    assert result.ok and set(result.ops().values()) == {"same"}, result.errors
    assert per_host == [(1, 1), (1, 1)]
    for host, earlier in zip(two.hosts, before, strict=True):
        assert diff_snapshots(earlier, snapshot_home(host)) == []  # cargo.versions included
        assert not host.run("find .local/share/rbee/jobs -mindepth 2").stdout.strip()  # no job


# ---------------------------------------------------------------- shared, incremental builds

# A workspace crate both the hive and the workers depend on (as rbee's shared crates are);
# its build script takes SHARED_SECONDS, so a build that compiles it shows.
SHARED_SECONDS = 4
_SHARED_TOML = """[package]
name = "rbee-common"
version.workspace = true
edition.workspace = true
build = "build.rs"
"""
_SHARED_BUILD = (
    f"fn main() {{ std::thread::sleep(std::time::Duration::from_secs({SHARED_SECONDS})); }}\n"
)
_DEP = '\n[dependencies]\nrbee-common = { path = "../../crates/rbee-common" }\n'


def _shared_crate_files() -> dict[str, str]:
    files = workspace_files("0.4.0")
    files["Cargo.toml"] = files["Cargo.toml"].replace(
        'members = ["bin/rbee-hive", "bin/llm-worker-rbee"]',
        'members = ["bin/rbee-hive", "bin/llm-worker-rbee", "crates/rbee-common"]',
    )
    files["crates/rbee-common/Cargo.toml"] = _SHARED_TOML
    files["crates/rbee-common/build.rs"] = _SHARED_BUILD
    files["crates/rbee-common/src/lib.rs"] = 'pub fn name() -> &\'static str { "rbee" }\n'
    files["bin/rbee-hive/Cargo.toml"] += _DEP
    head, sep, rest = files["bin/llm-worker-rbee/Cargo.toml"].partition("\n[features]")
    files["bin/llm-worker-rbee/Cargo.toml"] = head + _DEP + sep + rest
    return files


@pytest.mark.hosts
def test_a_host_builds_hive_and_workers_in_one_checkout_incrementally(
    hosts1: HostSet, fresh_rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    commit = fresh_rbee_repo.commit("shared", _shared_crate_files(), "a shared crate")
    config = make_fleet(hosts1, fresh_rbee_repo, workers_per_hive=2, ref={"branch": "shared"})
    result = engine.up(declare(config))
    assert result.ok, result.errors
    assert_worker_installed(hosts1, host, "cpu", features=["cpu"], version="0.4.0")

    # one checkout and one cargo target dir for the three builds
    build = host.run("ls .local/share/rbee/build").stdout.split()
    assert len(build) == 1
    src = f".local/share/rbee/build/{build[0]}"
    assert host.run(f"git -C {src}/checkout rev-parse HEAD").stdout.strip() == commit
    built = host.run(f"ls {src}/target/release").stdout.split()
    assert {"rbee-hive", "llm-worker-rbee-cpu", "llm-worker-rbee-cuda"} <= set(built)

    # the shared crate (and its slow build script) was compiled by the first build only
    state = engine.state()
    seconds = {
        name: state[name].outputs["phaseSeconds"]["build"]
        for name in ("hive-host1", "worker-host1-cpu", "worker-host1-cuda")
    }
    slow = [name for name, s in seconds.items() if s >= SHARED_SECONDS]
    assert len(slow) == 1, seconds
    # ...and only the first build fetched: the others found the commit in the checkout
    clones = sorted(state[name].outputs["phaseSeconds"]["clone"] for name in seconds)
    assert clones[0] < 0.5 and clones[1] < 0.5, clones


# ---------------------------------------------------------------- beyond 4 threads

BUILD_SECONDS = 3.0


@pytest.mark.hosts
def test_every_host_builds_at_once_beyond_the_four_provider_threads(
    rbee_repo: RbeeRepo, tmp_path: Any
) -> None:
    """The SDK's provider server runs at most 4 handler calls at once, and an install holds
    its call while its build runs; the BuildKickoff resources start every host's build first,
    so all 8 hosts' builds run at the same time (each stand-in build logs its start and end;
    without the kick-off at most 4 would overlap). How long that takes is benchmark 3's to
    measure, not a test's."""
    hs = start_hosts(8)
    try:
        cargo = standin_cargo.install(hs.hosts, BUILD_SECONDS)
        config = make_fleet(hs, rbee_repo)
        for hive in config["rbee:hives"]:
            hive["cargo"] = cargo
        with Engine(tmp_path / "eight" / "state.json") as eight:
            result = eight.up(declare(config))
        assert result.ok, result.errors
        builds = [b for host in hs.hosts for b in standin_cargo.builds(host)]
        assert len(builds) == 8
        assert standin_cargo.most_at_once(builds) == 8  # not 4: every host built at once
    finally:
        hs.close()


# ---------------------------------------------------------------- the connection pool


def _spec(hosts: HostSet, host: Host, **connection: Any) -> InstallSpec:
    return parse_spec(
        {
            "alias": host.name,
            "component": "hive",
            "binary": "rbee-hive",
            "source": {"method": "git", "repo": "git://127.0.0.1:9/none.git", "tag": "v0.1.0"},
            "connection": {
                "host": host.address,
                "port": host.port,
                "user": host.user,
                "privateKeyPath": str(hosts.client_key_path),
                "knownHosts": str(hosts.known_hosts_path),
                **connection,
            },
        }
    )


@pytest.mark.hosts
def test_pool_shares_per_credentials_and_replaces_a_dropped_connection(hosts1: HostSet) -> None:
    (host,) = hosts1.hosts
    spec = _spec(hosts1, host)
    pinned = _spec(hosts1, host, hostKey=host.host_key_public)
    key = f"{host.user}@{host.address}:{host.port}"

    async def whoami(s: InstallSpec) -> str:
        async with pool.lease(s.effective_connection(), s.label) as session:
            return (await session.run("id -un", phase="probe")).stdout.strip()

    async def several() -> list[str]:
        import asyncio

        return list(await asyncio.gather(*(whoami(spec) for _ in range(12))))

    start = ssh.HANDSHAKES[key]
    names, per_host = counted([host], lambda: pool.run(several()))
    assert names == [host.user] * 12
    assert per_host == [(1, 12)]  # twelve commands at once, as channels of one connection
    assert ssh.HANDSHAKES[key] - start == 1

    # other credentials (here: the host key pinned instead of known_hosts) get their own
    _, per_host = counted([host], lambda: pool.run(whoami(pinned)))
    assert per_host == [(1, 1)]
    _, per_host = counted([host], lambda: pool.run(whoami(spec)))
    assert per_host == [(0, 1)]

    # the link drops (sshd and its sessions killed): the next lease dials again
    host.stop()
    host.start()
    _, per_host = counted([host], lambda: pool.run(whoami(spec)))
    assert per_host == [(1, 1)]


def _kickoff_host(hosts: HostSet, host: Host, **connection: Any) -> dict[str, Any]:
    """One host of the build kick-off's inputs (as the program declares it): a hive."""
    spec = _spec(hosts, host, **connection)
    install = spec.model_dump(mode="json", by_alias=True, exclude={"alias", "connection"})
    return {"alias": host.name, "installs": [install],
            "connection": spec.connection.model_dump(mode="json", by_alias=True)}  # fmt: skip


@pytest.mark.hosts
def test_a_read_ahead_serves_the_kickoffs_survey_on_the_connection_it_opened(
    hosts: HostSet,
) -> None:
    """What the provider server started ahead reads while the program runs
    (`hostview.read_ahead`) is what the kick-off's check then finds: no second connection,
    no second command. A host whose key is to be taken on first use ("tofu") is not read
    ahead: recording that key is the check's."""
    strict, tofu = hosts.hosts[:2]
    payload = {"hosts": [_kickoff_host(hosts, strict),
                         _kickoff_host(hosts, tofu, hostKeyPolicy="tofu")]}  # fmt: skip
    found, _ = parse_spec_hosts(payload)
    for _, specs in found:
        pool.forget(specs[0].effective_connection())  # no view left by an earlier test
    _, per_host = counted([strict, tofu], lambda: hostview.read_ahead(payload))
    assert per_host == [(1, 1), (0, 0)]
    seen, per_host = counted([strict, tofu], lambda: pool.run(kickoff.survey(found)))
    assert per_host == [(0, 0), (1, 1)]
    assert {alias: view.facts.home for alias, view in seen.items()} == {
        strict.name: str(strict.home), tofu.name: str(tofu.home)}  # fmt: skip


@pytest.mark.unit
def test_a_read_ahead_never_raises() -> None:
    """Anything it cannot use is left to the check, which names the problem."""
    hostview.read_ahead({"hosts": [{"alias": "x", "installs": [{"component": 3}]}]})
    hostview.read_ahead({"hosts": "not a list"})
    hostview.read_ahead(None)  # type: ignore[arg-type]


@pytest.mark.hosts
def test_a_host_never_reached_costs_one_dial_per_provider_process(
    hosts1: HostSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    (host,) = hosts1.hosts
    spec = _spec(hosts1, host, port=free_port(host.address))  # nothing listens there
    dials: list[str] = []
    real_dial = pool.dial

    async def counting_dial(c: Any, label: str, **kw: Any) -> Any:
        dials.append(label)
        return await real_dial(c, label, **kw)

    monkeypatch.setattr(pool, "dial", counting_dial)

    async def probe(label: str) -> None:
        async with pool.lease(spec.effective_connection(), label) as session:
            await session.run("true", phase="probe")

    for label in ("hive dead", "worker dead/cpu", "worker dead/cuda"):
        with pytest.raises(ConnectError) as caught:
            pool.run(probe(label))
        assert str(caught.value).startswith(f"{label}: connect failed: ")
    assert dials == ["hive dead"]  # the later resources got the first one's answer at once


# ---------------------------------------------------------------- batched commands (pure)


@pytest.mark.unit
def test_batch_output_splits_into_parts_with_their_stderr_and_status() -> None:
    out = (
        "a\nb\n\n@@rbee-stderr\n\n@@rbee-end\t0\n"
        "\n@@rbee-stderr\nfatal: no such repo\n@@rbee-end\t128\n"
        "x\n@@rbee-stderr\n\n@@rbee-end\t1\n"
    )
    assert hostview.split_batch(out) == [
        Result(0, "a\nb\n", ""),
        Result(128, "", "fatal: no such repo"),
        Result(1, "x", ""),
    ]
    assert hostview.encode([(scripts.RESOLVE, ["r", "x y"]), (scripts.PROBE, [])]) == [
        scripts.RESOLVE, "2", "r", "x y", scripts.PROBE, "0",
    ]  # fmt: skip


@pytest.mark.hosts
def test_batch_runs_each_part_with_only_its_own_arguments(hosts1: HostSet) -> None:
    (host,) = hosts1.hosts
    spec = _spec(hosts1, host)
    echo = 'printf "%s|" "$#" "$@"; echo; echo "err $1" >&2; exit "${2:-0}"'
    parts = [(echo, ["a b", "3", "$(id)"]), (echo, []), (echo, ["'; rm -rf ~'", "0"])]

    async def run() -> list[Result]:
        async with pool.lease(spec.effective_connection(), spec.label) as session:
            return await hostview.run_batch(session, parts, phase="probe", timeout=30)

    first, second, third = pool.run(run())
    assert first == Result(3, "3|a b|3|$(id)|\n", "err a b")
    assert second == Result(0, "0|\n", "err ")
    assert third == Result(0, "2|'; rm -rf ~'|0|\n", "err '; rm -rf ~'")


# ---------------------------------------------------------------- the kick-off's plan (pure)

COMMIT = "c" * 40
OLD = "a" * 40


def _install(**extra: Any) -> InstallSpec:
    props = {
        "alias": "h",
        "component": "worker",
        "workerType": "cpu",
        "binary": "llm-worker-rbee-cpu",
        "features": ["cpu"],
        "source": {"method": "git", "repo": "https://example.org/r.git", "tag": "v1"},
        "connection": {"host": "127.0.0.9", "user": "rbee", "knownHosts": "/k"},
        "stack": "dev",
        "resourceName": "worker-h-cpu",
    }
    props.update(extra)
    return parse_spec(props)


def _facts(spec: InstallSpec, receipt: dict[str, Any] | None, sha: str = "s" * 64) -> Any:
    import base64
    import json

    rec = base64.b64encode(json.dumps(receipt).encode()).decode() if receipt else ""
    item = f"item\t{spec.install_name}\tsymlink\t../r/x\t{sha}\t{rec}\n" if receipt else ""
    tools = "tool\tgit\t/usr/bin/git\ntool\tflock\t/usr/bin/flock\n"
    return parse_probe(
        f"{tools}cargo\tcargo 1.80\nrustc\trustc 1.80\ndisk\tdata\t9999999\n"
        f"disk\tbin\t9999999\n{item}"
    )


def _receipt(spec: InstallSpec, commit: str, **extra: Any) -> dict[str, Any]:
    return {
        "installId": plan.install_id(spec),
        "commit": commit,
        "features": spec.features,
        "releaseId": plan.release_id(spec, commit),
        "sha256": "s" * 64,
        **extra,
    }


@pytest.mark.unit
def test_kickoff_plans_a_build_exactly_where_the_install_would_build() -> None:
    spec = _install()
    assert not kickoff.settled(spec, COMMIT, _facts(spec, None))  # not installed: build
    assert kickoff.settled(spec, COMMIT, _facts(spec, _receipt(spec, COMMIT)))  # in sync
    assert not kickoff.settled(spec, COMMIT, _facts(spec, _receipt(spec, OLD)))  # new commit
    drifted = _facts(spec, _receipt(spec, COMMIT), sha="d" * 64)
    assert not kickoff.settled(spec, COMMIT, drifted)  # binary changed: rebuilt
    other = _receipt(spec, COMMIT, installId="someone-else")
    assert not kickoff.settled(spec, COMMIT, _facts(spec, other))
    # reinstallTrigger changed: the install's fresh build is its own to start
    triggered = _install(reinstallTrigger="2")
    assert kickoff.settled(triggered, COMMIT, _facts(spec, _receipt(spec, OLD)))
    # the cargo the install would use; none when the host lacks something first
    assert kickoff.build_cargo(spec, _facts(spec, None)) == "cargo"
    assert kickoff.build_cargo(spec, parse_probe("tool\tflock\t/usr/bin/flock\n")) is None


def _view(spec: InstallSpec, facts: Any, *, with_facts: bool) -> hostview.HostView:
    need = hostview.need_of(spec, facts=with_facts)
    listing = Result(0, f"{COMMIT}\trefs/tags/v1\n", "")
    return hostview.HostView(need, spec.label, facts, "", {"https://example.org/r.git": listing})


@pytest.mark.unit
def test_a_no_op_check_reads_no_toolchain_facts() -> None:
    spec = _install()
    light, full = hostview.need_of(spec), hostview.need_of(spec, facts=True)
    # what a converged host costs: the inventory (receipts, sha256s) and the tag, no PROBE
    assert [a for a in hostview.batch_args(light) if a in (scripts.PROBE, scripts.INVENTORY)] == [
        scripts.INVENTORY
    ]
    assert "cargo" not in scripts.INVENTORY and "rustc" not in scripts.INVENTORY
    assert hostview.batch_args(full)[:3] == [scripts.PROBE, "4", "cargo"]
    # a view with the facts serves a light check; a light view never serves preflight
    assert full.covers(light) and not light.covers(full)
    other_cargo = hostview.need_of(spec.model_copy(update={"cargo": "~/x/cargo"}), facts=True)
    assert not other_cargo.covers(full) and other_cargo.covers(light)


@pytest.mark.unit
def test_kickoff_plans_builds_only_from_a_view_with_facts() -> None:
    spec = _install()
    missing = _facts(spec, None)
    # not installed: to be built, but without the toolchain facts no cargo is chosen yet
    assert kickoff.to_build([spec], _view(spec, missing, with_facts=False)) == [(spec, COMMIT)]
    assert kickoff.pending([spec], _view(spec, missing, with_facts=False)) == []
    assert kickoff.pending([spec], _view(spec, missing, with_facts=True)) == [
        {"alias": "h", "resource": "worker-h-cpu", "binary": "llm-worker-rbee-cpu",
         "commit": COMMIT, "cargo": "cargo", "buildMode": ""}
    ]  # fmt: skip
    in_sync = _facts(spec, _receipt(spec, COMMIT))
    assert kickoff.to_build([spec], _view(spec, in_sync, with_facts=False)) == []


@pytest.mark.unit
def test_the_program_does_not_import_the_ssh_stack() -> None:
    """Every `pulumi preview`/`up` starts the program afresh; it only needs the provider
    classes, not asyncssh (imported by the provider on its first connection)."""
    import subprocess
    import sys

    code = (
        "import sys, rbee_infra.stack.program, rbee_infra.host.ssh; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('asyncssh', 'cryptography')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    # first use imports it: the real classes, so `except asyncssh.X` clauses keep working
    code = (
        "import sys, rbee_infra.host.ssh as s; e = s.asyncssh.PermissionDenied; "
        "import asyncssh; print(e is asyncssh.PermissionDenied, issubclass(e, asyncssh.Error))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]
