"""A tree whose hive build script runs pnpm and wasm-pack (the web UI variant of the fixture,
shaped like rbee's hive), installed on real sshd hosts through the install path
(`lifecycle.install` with the tree's `BuildNeeds`, read from the fixture repo as the operator's
machine reads it): a host without Node.js, pnpm, wasm-pack and the wasm32 target is refused
before anything is built, with one message naming every missing piece; a host with them (the
stand-ins of `build_tools`) runs the workspace install, then cargo, whose build script runs
pnpm and wasm-pack; `ensureToolchain` installs the real pnpm from npm into ~/.local, and a
step it cannot take fails that host naming the step and its command, leaving nothing behind."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from rbee_infra.base.errors import HostError
from rbee_infra.config.spec import InstallSpec, parse_spec
from rbee_infra.decide.buildneeds import BuildNeeds
from rbee_infra.install import lifecycle
from tests.harness import build_tools, installs
from tests.harness.fixture_repo import RbeeRepo, add_web_ui_branch
from tests.harness.host_tools import host_without
from tests.harness.hosts import Host, HostSet, free_port

pytestmark = pytest.mark.hosts

ENSURE = "or set `ensureToolchain: true` on the hive to install it"
WHY = (
    "bin/rbee-hive/build.rs runs pnpm, wasm-pack through bin/rbee-hive/ui/package.json (build)"
)


def hive_spec(hosts: HostSet, host: Host, repo: RbeeRepo, **extra: Any) -> InstallSpec:
    return parse_spec(
        {
            "alias": "h1",
            "component": "hive",
            "binary": "rbee-hive",
            "source": {"method": "git", "repo": repo.url, "branch": "web-ui"},
            "connection": installs.connection(hosts, host),
            "buildTimeout": 600,
            "lockTimeout": 60,
            **extra,
        }
    )


def equipped(hosts: HostSet, host: Host, repo: RbeeRepo, *, pnpm: bool, **extra: Any
             ) -> InstallSpec:  # fmt: skip
    """The hive's spec on a host given the stand-ins (pnpm only with `pnpm`) and the toolchain
    with the wasm32 standard library."""
    if pnpm:
        build_tools.give_pnpm(host)
    build_tools.give_wasm_pack(host)
    return hive_spec(hosts, host, repo, cargo=build_tools.give_wasm_toolchain(host), **extra)


def web_ui(repo: RbeeRepo) -> BuildNeeds:
    add_web_ui_branch(repo)
    needs, _, _ = build_tools.tree_needs_of(repo.path, "web-ui", "rbee-hive")
    return needs


def install(spec: InstallSpec, needs: BuildNeeds) -> lifecycle.Installed:
    return asyncio.run(lifecycle.install(spec, updating=False, needs=needs))


def refused(spec: InstallSpec, needs: BuildNeeds) -> str:
    with pytest.raises(HostError) as caught:
        install(spec, needs)
    return str(caught.value)


def toolchain_failure(spec: InstallSpec, needs: BuildNeeds, what: str, command: str,
                      code: int) -> str:  # fmt: skip
    """The error of an ensureToolchain step that failed (its text from the command on)."""
    error = refused(spec, needs)
    start = f"hive h1: toolchain failed: could not install {what}: `{command}` failed (exit {code}): "
    assert error.startswith(start), error
    return error[len(start):]


def nothing_built(host: Host) -> None:
    """No job, no checkout, no target dir: cargo never ran."""
    assert installs.leftovers(host) == []
    assert not (host.home / installs.RBEE_ROOT).exists()


def test_a_host_without_the_build_tools_is_refused_before_any_build(
    hosts1: HostSet, fresh_rbee_repo: RbeeRepo
) -> None:
    (host,) = hosts1.hosts
    needs = web_ui(fresh_rbee_repo)
    spec = hive_spec(hosts1, host, fresh_rbee_repo)
    user = host.user
    rustc = host.run("rustc --version").stdout.split(" (")[0]
    with host_without(host, "node", "npm", "corepack", "pnpm", "wasm-pack"):
        problems = [
            f"Node.js >=18 not found on PATH for user {user} ({WHY}); install Node.js >=18 "
            "(e.g. `apt-get install nodejs npm`)",
            f"pnpm 9.15.0 not found on PATH or in ~/.local/bin for user {user} ({WHY}); "
            "install it with `npm install -g --prefix ~/.local pnpm@9.15.0` (ensureToolchain "
            "needs npm or corepack on the host to install it: install npm, e.g. "
            "`apt-get install npm`)",
            f"Rust target wasm32-unknown-unknown has no standard library in /usr ({rustc}, not "
            f"managed by rustup) for user {user} ({WHY}); install that target's standard "
            "library for this rustc, or build with a rustup toolchain (`rustup target add "
            "wasm32-unknown-unknown`, then set `cargo` on the hive to its cargo); "
            "ensureToolchain cannot add a target to a toolchain rustup does not manage",
            f"wasm-pack not found on PATH or in ~/.cargo/bin for user {user} ({WHY}); install "
            f"it with `cargo install wasm-pack --locked`, {ENSURE}",
        ]
        # the preview's check lists the same problems (read-only)
        assert sorted(asyncio.run(lifecycle.preflight_problems(spec, needs))) == sorted(problems)
        error = refused(spec, needs)
    error = installs.without_prebuilt_hint(error)
    assert error.startswith("hive h1: preflight failed: 4 problems:\n- ")
    assert sorted(error.split("\n")[1:]) == sorted(f"- {p}" for p in problems)
    nothing_built(host)


def test_a_host_with_the_tools_runs_the_workspace_install_then_cargo(
    hosts1: HostSet, fresh_rbee_repo: RbeeRepo
) -> None:
    (host,) = hosts1.hosts
    needs = web_ui(fresh_rbee_repo)
    spec = equipped(hosts1, host, fresh_rbee_repo, pnpm=True)
    assert asyncio.run(lifecycle.preflight_problems(spec, needs)) == []

    done = install(spec, needs)
    assert installs.version(host, installs.HIVE_STABLE) == "rbee-hive 0.3.0"
    assert set(done.phase_seconds) == {"lock", "clone", "deps", "build", "install"}
    checkout = host.home / f"{installs.RBEE_ROOT}/build"
    (src,) = [p / "checkout" for p in checkout.iterdir()]
    assert build_tools.calls(host) == [
        f"pnpm {src} install --frozen-lockfile",
        f"pnpm {src}/bin/rbee-hive/ui build",
        f"wasm-pack {src}/bin/rbee-hive/ui build --target bundler --out-dir pkg",
    ]
    assert (src / "bin/rbee-hive/ui/pkg/index.js").exists()
    # a build without needs of its own (the cpu worker) runs cargo alone, as before
    worker = spec.model_copy(
        update={"component": "worker", "worker_type": "cpu", "binary": "llm-worker-rbee-cpu",
                "features": ["cpu"]}
    )
    worker_needs, _, _ = build_tools.tree_needs_of(
        fresh_rbee_repo.path, "web-ui", "llm-worker-rbee-cpu"
    )
    assert worker_needs.build_mode == ""
    install(worker, worker_needs)
    assert len(build_tools.calls(host)) == 3


def test_the_build_job_names_a_failed_workspace_install(
    hosts1: HostSet, fresh_rbee_repo: RbeeRepo
) -> None:
    (host,) = hosts1.hosts
    add_web_ui_branch(fresh_rbee_repo)
    # a package added to the workspace, not to its lock file: a frozen install refuses
    workspace = "packages:\n  - bin/rbee-hive/ui\n  - bin/rbee-hive/ui/sdk\n  - docs\n"
    fresh_rbee_repo.commit("web-ui", {"pnpm-workspace.yaml": workspace,
                                      "docs/package.json": '{"name": "docs"}\n'}, "docs")
    needs, _, _ = build_tools.tree_needs_of(fresh_rbee_repo.path, "web-ui", "rbee-hive")
    spec = equipped(hosts1, host, fresh_rbee_repo, pnpm=True)
    error = refused(spec, needs)
    assert error.startswith(
        "hive h1: deps failed (exit 1): pnpm install --frozen-lockfile in the checkout\n"
    )
    assert (
        'ERR_PNPM_OUTDATED_LOCKFILE  Cannot install with "frozen-lockfile" because '
        "pnpm-lock.yaml is not up to date with docs/package.json"
    ) in error
    assert [c.split(" ")[0] for c in build_tools.calls(host)] == ["pnpm"]  # cargo never ran
    # nothing installed but the stand-in; the build cache stays, with no cargo target dir
    assert installs.leftovers(host, but_the_build_cache=True) == [".local/bin/pnpm"]
    (build,) = (host.home / f"{installs.RBEE_ROOT}/build").iterdir()
    assert (build / "checkout").is_dir() and not (build / "target").exists()


def test_ensure_toolchain_installs_pnpm_from_npm_into_the_user_prefix(
    hosts1: HostSet, fresh_rbee_repo: RbeeRepo
) -> None:
    (host,) = hosts1.hosts
    needs = web_ui(fresh_rbee_repo)
    spec = equipped(hosts1, host, fresh_rbee_repo, pnpm=False, ensureToolchain=True)
    assert asyncio.run(lifecycle.preflight_problems(spec, needs)) == []  # it can install pnpm

    install(spec, needs)
    assert host.run(".local/bin/pnpm --version").stdout.strip() == "9.15.0"
    # the probe finds it there now (its version read from its package.json)
    plain = spec.model_copy(update={"ensure_toolchain": False})
    assert asyncio.run(lifecycle.preflight_problems(plain, needs)) == []
    assert host.run("readlink .local/bin/pnpm").stdout.strip() == (
        "../lib/node_modules/pnpm/bin/pnpm.cjs"
    )
    assert list((host.home / ".local/lib").glob(".rbee-pnpm.*")) == []  # no staging left
    assert installs.version(host, installs.HIVE_STABLE) == "rbee-hive 0.3.0"
    # the real pnpm installed the workspace (its `workspace:*` link) before cargo's build
    checkout = next((host.home / f"{installs.RBEE_ROOT}/build").iterdir()) / "checkout"
    assert (checkout / "node_modules/.modules.yaml").exists()
    link = checkout / "bin/rbee-hive/ui/node_modules/@rbee/fixture-hive-sdk"
    assert link.is_symlink()
    assert [c.split(" ")[0] for c in build_tools.calls(host)] == ["wasm-pack"]


def test_ensure_toolchain_that_cannot_install_fails_the_host_naming_the_step(
    hosts1: HostSet, fresh_rbee_repo: RbeeRepo
) -> None:
    (host,) = hosts1.hosts
    needs = web_ui(fresh_rbee_repo)
    user = host.user
    # a target on a toolchain rustup does not manage cannot be installed: refused at once,
    # before pnpm or wasm-pack are installed
    spec = hive_spec(hosts1, host, fresh_rbee_repo, ensureToolchain=True)
    error = refused(spec, needs)
    assert error.startswith(
        "hive h1: preflight failed: Rust target wasm32-unknown-unknown has no standard library "
        "in /usr ("
    )
    assert f"for user {user} ({WHY}); install that target's standard library" in error
    assert "\n" not in installs.without_prebuilt_hint(error)  # the only problem: not pnpm
    assert not (host.home / ".local/bin/pnpm").exists()
    nothing_built(host)

    # npm cannot reach its registry (a closed port stands in for a host without internet)
    (host.home / ".npmrc").write_text(
        f"registry=http://127.0.0.1:{free_port()}/\nfetch-retries=0\n"
    )
    spec = equipped(hosts1, host, fresh_rbee_repo, pnpm=False, ensureToolchain=True)
    said = toolchain_failure(
        spec, needs, "pnpm 9.15.0", "npm install -g --prefix ~/.local pnpm@9.15.0", 1
    )
    assert "ECONNREFUSED" in said
    assert not (host.home / ".local/bin/pnpm").exists()
    assert not (host.home / ".local/lib/node_modules/pnpm").exists()
    assert list((host.home / ".local/lib").glob(".rbee-pnpm.*")) == []
    nothing_built(host)


def test_the_fixture_reads_like_rbee(fresh_rbee_repo: RbeeRepo) -> None:
    """The variant has what rbee's tree has (see test_build_needs.py for the real one)."""
    needs = web_ui(fresh_rbee_repo)
    assert (needs.node, needs.pnpm, needs.workspace_install, needs.wasm_pack, needs.targets) == (
        ">=18", "9.15.0", "pnpm", True, ("wasm32-unknown-unknown",)
    )
    assert (needs.channel, needs.toolchain_targets, needs.cargo_lock) == (
        "stable", ("wasm32-wasip1", "wasm32-wasip1-threads"), False
    )
    assert Path(fresh_rbee_repo.path).exists() and needs.version == "0.3.0"


def test_ensure_toolchain_uses_corepack_where_npm_is_missing(
    hosts1: HostSet, fresh_rbee_repo: RbeeRepo
) -> None:
    """corepack downloads pnpm with its own client: where that reaches the registry, pnpm
    9.15.0 answers from ~/.local/bin; where it does not, the error names corepack's command.
    Either way nothing half-installed stays."""
    (host,) = hosts1.hosts
    if host.run("command -v corepack", check=False).returncode != 0:
        pytest.skip("this machine has no corepack")
    needs = web_ui(fresh_rbee_repo)
    spec = equipped(hosts1, host, fresh_rbee_repo, pnpm=False, ensureToolchain=True)
    with host_without(host, "npm"):
        assert asyncio.run(lifecycle.preflight_problems(spec, needs)) == []
        try:
            install(spec, needs)
        except HostError:
            toolchain_failure(spec, needs, "pnpm 9.15.0", "corepack install -g pnpm@9.15.0", 1)
            assert not (host.home / ".local/bin/pnpm").exists()
            nothing_built(host)
        else:
            assert host.run(".local/bin/pnpm --version").stdout.strip() == "9.15.0"
            assert "corepack" in host.run("readlink .local/bin/pnpm").stdout
            assert installs.version(host, installs.HIVE_STABLE) == "rbee-hive 0.3.0"
    assert list((host.home / ".local/lib").glob(".rbee-pnpm.*")) == []


def test_after_choosing_rustups_cargo_its_targets_are_checked_before_anything_installs(
    hosts1: HostSet, fresh_rbee_repo: RbeeRepo
) -> None:
    """ensureToolchain builds with ~/.cargo/bin/cargo when cargo is not on PATH: that
    toolchain's targets are read then, and one it cannot add refuses the host before pnpm or
    wasm-pack are installed."""
    (host,) = hosts1.hosts
    needs = web_ui(fresh_rbee_repo)
    host.run("mkdir -p .cargo/bin && ln -s /usr/bin/cargo .cargo/bin/cargo && "
             "ln -s /usr/bin/rustc .cargo/bin/rustc")
    spec = hive_spec(hosts1, host, fresh_rbee_repo, ensureToolchain=True)
    with host_without(host, "cargo", "rustc"):
        assert asyncio.run(lifecycle.preflight_problems(spec, needs)) == []  # no rustc to ask
        error = refused(spec, needs)
    assert error.startswith(
        "hive h1: preflight failed: Rust target wasm32-unknown-unknown has no standard library "
        "in /usr ("
    )
    assert not (host.home / ".local/bin/pnpm").exists()
    nothing_built(host)


def test_ensure_toolchain_names_a_failed_wasm_pack_install(
    hosts1: HostSet, fresh_rbee_repo: RbeeRepo
) -> None:
    """`cargo install wasm-pack --locked` that cannot reach crates.io (cargo told to stay
    offline stands in for a host without internet) fails the host naming it; no wasm-pack
    is left and nothing was built."""
    (host,) = hosts1.hosts
    needs = web_ui(fresh_rbee_repo)
    spec = equipped(hosts1, host, fresh_rbee_repo, pnpm=True, ensureToolchain=True)
    host.run("rm .cargo/bin/wasm-pack && printf '[net]\\noffline = true\\n' > .cargo/config.toml")
    said = toolchain_failure(
        spec, needs, "wasm-pack", "~/rust-wasm/bin/cargo install wasm-pack --locked", 101
    )
    assert said.startswith("error: ") and "could not find `wasm-pack` in registry" in said
    assert not (host.home / ".cargo/bin/wasm-pack").exists()
    assert build_tools.calls(host) == []
    assert installs.leftovers(host) == [".local/bin/pnpm"]  # the stand-in: nothing of rbee's


def test_the_stack_reads_what_the_build_needs_from_the_tree_before_any_build(
    hosts1: HostSet, fresh_rbee_repo: RbeeRepo, tmp_path: Path
) -> None:
    """Through the real program and the providers: the tree at the resolved commit is read on
    this machine; the preview lists what the host lacks, the kick-off starts no build its
    preflight would refuse, and `up` refuses the hive with the same list, building nothing."""
    from tests.harness.engine import Engine
    from tests.harness.fleet import declare, make_fleet

    (host,) = hosts1.hosts
    add_web_ui_branch(fresh_rbee_repo)
    config = make_fleet(hosts1, fresh_rbee_repo, ref={"branch": "web-ui"})
    env = {"RBEE_INFRA_CACHE": str(tmp_path / "cache")}
    with host_without(host, "node", "npm", "corepack", "pnpm", "wasm-pack"), \
            Engine(tmp_path / "state.json", env=env) as engine:
        plan = engine.preview(declare(config))
        assert plan.ok, plan.errors
        log = engine.provider_log_path.read_text()
        assert "hive host1: preflight: Node.js >=18 not found on PATH" in log
        assert "hive host1: preflight: wasm-pack not found" in log
        result = engine.up(declare(config))
        error = result.errors["hive-host1"]
        assert "hive host1: preflight failed: 4 problems:" in error, error
        assert "Rust target wasm32-unknown-unknown has no standard library" in error
        assert not engine.state()["build-kickoff"].outputs.get("started")  # no build ahead
    nothing_built(host)
