"""What a build needs besides cargo, the pure half (`decide/buildneeds.py`): read from rbee's
real tree (the source tarball beside the project, when present), from small trees that take
each branch of the reader, compared with a host's facts (each problem's exact text), the
ensureToolchain steps and their order, and the probe that reads those facts (run locally)."""

from __future__ import annotations

import os
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from shutil import which
from typing import Any

import pytest

from rbee_infra.config.spec import parse_spec
from rbee_infra.decide import buildneeds, preflight
from rbee_infra.decide.buildneeds import BuildNeeds, files_to_read, parse_range, satisfies
from rbee_infra.decide.facts import HostFacts, parse_probe
from rbee_infra.host import scripts
from rbee_infra.host.ssh import script_command
from rbee_infra.install import toolchain
from tests.harness.real_tree import SHARED, find_tarball

pytestmark = pytest.mark.unit

# where rbee's source tarball is (the project's `../shared/real-rbee` unless this says)
REAL_TREE_DIR = Path(os.environ.get("RBEE_REAL_TREE_DIR") or SHARED)


# --------------------------------------------------------------------------- rbee's real tree


@pytest.fixture(scope="module")
def real_tree() -> Iterator[tuple[list[str], tarfile.TarFile]]:
    tarball, why = find_tarball(REAL_TREE_DIR)
    if tarball is None:
        if os.environ.get("RBEE_REQUIRE_E2E") == "1":
            pytest.fail(why)
        pytest.skip(f"{why}; set RBEE_REAL_TREE_DIR to its folder")
    with tarfile.open(tarball) as tar:
        listing = [m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile()]
        yield listing, tar


def read_real(real_tree: tuple[list[str], tarfile.TarFile], binary: str
              ) -> tuple[BuildNeeds, list[list[str]]]:  # fmt: skip
    listing, tar = real_tree
    files: dict[str, str] = {}
    rounds = []
    while want := files_to_read(listing, binary, files):
        rounds.append(want)
        for path in want:
            member = tar.extractfile(f"llama-orch/{path}")
            assert member is not None
            files[path] = member.read().decode()
    return buildneeds.tree_needs(listing, files, binary), rounds


def test_rbee_hive_needs_node_pnpm_the_workspace_install_wasm_pack_and_the_wasm_target(
    real_tree: tuple[list[str], tarfile.TarFile],
) -> None:
    needs, rounds = read_real(real_tree, "rbee-hive")
    assert needs.problems == ()
    assert (needs.crate, needs.crate_dir, needs.build_script) == (
        "rbee-hive", "bin/20_rbee_hive", "bin/20_rbee_hive/build.rs"
    )
    assert needs.node == ">=18" and needs.pnpm == "9.15.0"
    assert needs.workspace_install == "pnpm" and needs.install_command == (
        "pnpm install --frozen-lockfile"
    )
    assert needs.wasm_pack and needs.targets == ("wasm32-unknown-unknown",)
    assert needs.runs == ("pnpm", "wasm-pack") and not needs.npm and not needs.yarn
    assert (needs.channel, needs.toolchain_targets) == (
        "stable", ("wasm32-wasip1", "wasm32-wasip1-threads")
    )
    assert not needs.cargo_lock and needs.build_mode == "pnpm"
    assert needs.why == (
        "bin/20_rbee_hive/build.rs runs pnpm, wasm-pack through "
        "bin/20_rbee_hive/ui/packages/rbee-hive-sdk/package.json (build)"
    )
    # few files, in three rounds: not the workspace's 50 manifests
    assert rounds == [
        ["Cargo.toml", "rust-toolchain.toml", "package.json", "bin/20_rbee_hive/Cargo.toml"],
        ["bin/20_rbee_hive/build.rs"],
        ["bin/20_rbee_hive/ui/app/package.json",
         "bin/20_rbee_hive/ui/packages/rbee-hive-sdk/package.json"],
    ]


def test_rbee_cpu_worker_needs_none_of_the_node_tools(
    real_tree: tuple[list[str], tarfile.TarFile],
) -> None:
    needs, rounds = read_real(real_tree, "llm-worker-rbee-cpu")
    assert needs.problems == () and needs.crate == "llm-worker-rbee"
    assert needs.build_script == "bin/30_llm_worker_rbee/build.rs"  # shadow-rs only
    assert (needs.node, needs.pnpm, needs.wasm_pack, needs.workspace_install) == (
        None, None, False, ""
    )
    assert needs.runs == () and needs.targets == () and needs.build_mode == ""
    assert (needs.channel, needs.toolchain_targets, needs.cargo_lock) == (
        "stable", ("wasm32-wasip1", "wasm32-wasip1-threads"), False
    )
    assert len(rounds) == 2


# --------------------------------------------------------------------------- small trees


def needs_of(files: dict[str, str], binary: str, listing: list[str] | None = None
             ) -> BuildNeeds:  # fmt: skip
    """Read `files` (the whole tree) the way the operator's machine does, round by round."""
    listing = sorted(files) if listing is None else listing
    read: dict[str, str] = {}
    for _ in range(5):
        want = files_to_read(listing, binary, read)
        if not want:
            break
        read.update({p: files[p] for p in want})
    assert files_to_read(listing, binary, read) == []
    return buildneeds.tree_needs(listing, read, binary)


WORKSPACE = """\
[workspace]
members = ["crates/*", "tools/x"]
exclude = ["crates/old"]

[workspace.package]
version = "1.2.3"
"""


def test_a_single_crate_that_runs_npm_with_a_package_lock() -> None:
    needs = needs_of(
        {
            "Cargo.toml": '[package]\nname = "app"\nversion = "0.4.0"\n',
            "src/main.rs": "fn main() {}\n",
            "build.rs": '// pnpm is not used here\nfn main() { Command::new("npm").arg("ci"); }\n',
            "package.json": "{}",
            "package-lock.json": "{}",
        },
        "app",
    )
    assert (needs.crate, needs.crate_dir, needs.version) == ("app", "", "0.4.0")
    assert needs.runs == ("npm",) and needs.npm and needs.node == "" and needs.pnpm is None
    assert needs.workspace_install == "npm" and needs.install_command == "npm ci"
    assert needs.toolchain_file == "" and needs.channel == "" and needs.problems == ()


def test_workspace_members_globs_inheritance_and_a_legacy_toolchain_file() -> None:
    files = {
        "Cargo.toml": WORKSPACE,
        "rust-toolchain": "1.80.0\n",
        "crates/a/Cargo.toml": '[package]\nname = "a"\nversion.workspace = true\n\n'
                               '[[bin]]\nname = "server"\npath = "src/s.rs"\n',
        "crates/a/src/s.rs": "",
        "crates/old/Cargo.toml": '[[bin]]\nname = "server"\n',
        "tools/x/Cargo.toml": '[package]\nname = "x"\nbuild = false\n',
        "tools/x/build.rs": 'fn main() { Command::new("pnpm"); }',
    }
    needs = needs_of(files, "server")
    assert (needs.crate, needs.crate_dir, needs.version) == ("a", "crates/a", "1.2.3")
    assert (needs.toolchain_file, needs.channel, needs.toolchain_targets) == (
        "rust-toolchain", "1.80.0", ()
    )
    # found in the second round: no member's path looks like the binary
    assert files_to_read(sorted(files), "server") == ["Cargo.toml", "rust-toolchain"]
    x = needs_of(files, "x", listing=[*sorted(files), "tools/x/src/main.rs"])
    assert (x.crate, x.version, x.build_script, x.runs) == ("x", "0.0.0", "", ())


def test_a_build_script_of_its_own_name_and_a_toml_legacy_toolchain_file() -> None:
    files = {
        "Cargo.toml": '[package]\nname = "p"\nbuild = "tools/gen.rs"\n',
        "src/bin/p-cli.rs": "",
        "tools/gen.rs": 'fn main() { let _ = std::process::Command::new(r"/usr/bin/wasm-pack"); }',
        "rust-toolchain": '[toolchain]\nchannel = "nightly-2024-01-01"\ntargets = ["wasm32-wasip1"]\n',
    }
    needs = needs_of(files, "p-cli")
    assert needs.build_script == "tools/gen.rs" and needs.runs == ("wasm-pack",)
    assert needs.node is None and needs.targets == ("wasm32-unknown-unknown",)
    assert needs.build_mode == "path"  # the tools' prefixes on PATH, no workspace install
    assert (needs.channel, needs.toolchain_targets) == ("nightly-2024-01-01", ("wasm32-wasip1",))


def hive(path: str, text: str, problem: str, runs: str = "pnpm") -> tuple[dict[str, str], str]:
    """A crate `hive` whose build script runs `runs`, with `path` holding `text`."""
    files = {"Cargo.toml": '[package]\nname = "hive"\n', "src/main.rs": "",
             "build.rs": f'Command::new("{runs}")', path: text}
    return files, problem


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({"Cargo.toml": "[package"}, "Cargo.toml is not valid TOML ("),
        ({"README.md": ""}, "the tree has no Cargo.toml at its root"),
        (
            {"Cargo.toml": '[package]\nname = "other"\n', "src/main.rs": ""},
            "no crate of the workspace defines a binary named 'hive' (no [[bin]] of that name, "
            "no package of that name with src/main.rs, no src/bin/hive.rs)",
        ),
        hive("rust-toolchain.toml", '[toolchain]\nchannel = "stable; rm -rf /"\n',
             "rust-toolchain.toml: channel 'stable; rm -rf /' is not a toolchain name"),
        hive("rust-toolchain.toml", '[toolchain]\ntargets = "wasm32"\n',
             "rust-toolchain.toml: targets must be a list of target names"),
        hive("package.json", "[1]", "package.json is not a JSON object"),
        hive("package.json", "{", "package.json is not valid JSON ("),
        hive("package.json", '{"engines": {"node": "newest"}}',
             "package.json: engines.node 'newest' is not a version range", runs="node"),
        hive("package.json", '{"packageManager": "pnpm@$(x)"}',
             "package.json: packageManager 'pnpm@$(x)' is not pnpm@<version>"),
    ],
)
def test_what_cannot_be_read_is_a_problem_not_a_crash(files: dict[str, str], problem: str) -> None:
    needs = needs_of(files, "hive")
    assert len(needs.problems) == 1 and needs.problems[0].startswith(problem), needs.problems


def test_unreadable_input_never_escapes_and_unread_files_are_named() -> None:
    weird: Any = {"Cargo.toml": 5}
    needs = buildneeds.tree_needs(["Cargo.toml"], weird, "hive")
    assert needs.problems[0].startswith("cannot read the tree: AttributeError(")
    assert buildneeds.tree_needs(["Cargo.toml"], {}, "hive").problems == (
        "Cargo.toml was not read",
    )


def test_another_package_manager_and_scripts_the_build_script_does_not_name() -> None:
    needs = needs_of(
        {
            "Cargo.toml": '[workspace]\nmembers = ["hive"]\n',
            "hive/Cargo.toml": '[package]\nname = "hive"\n',
            "hive/src/main.rs": "",
            "hive/build.rs": 'fn main() { Command::new("pnpm").args(["run", "web"])'
                             '.current_dir("ui"); /* Command::new("yarn") */ }',
            "hive/ui/package.json": '{"scripts": {"web": "node gen.js && yarn x", '
                                    '"other": "wasm-pack build"}}',
            "hive/other/package.json": '{"scripts": {"web": "wasm-pack build"}}',
            "hive/ui/node_modules/x/package.json": "{}",
            "package.json": '{"packageManager": "yarn@4.0.0"}',
            "pnpm-lock.yaml": "",
        },
        "hive",
    )
    assert needs.runs == ("node", "pnpm", "yarn") and needs.pnpm == "" and needs.yarn
    assert not needs.wasm_pack and needs.workspace_install == "pnpm"
    assert needs.why == "hive/build.rs runs pnpm, node, yarn through hive/ui/package.json (web)"


@pytest.mark.parametrize(
    ("version", "text", "ok"),
    [
        ((20, 11, 1), ">=18", True),
        ((16, 20, 0), ">=18", False),
        ((18, 0, 0), "^18.0.0 || ^20", True),
        ((19, 1, 0), "^18.0.0 || ^20", False),
        ((20, 3, 0), "20.x", True),
        ((21, 0, 0), "20", False),
        ((18, 5, 0), "~18.4", False),
        ((18, 4, 9), "~18.4", True),
        ((0, 2, 9), "^0.2.3", True),
        ((0, 3, 0), "^0.2.3", False),
        ((0, 0, 4), "^0.0.3", False),
        ((17, 0, 0), "16 - 18", True),
        ((19, 0, 0), "16 - 18", False),
        ((18, 0, 0), ">17 <19.0.0", True),
        ((18, 0, 0), ">18", False),
        ((19, 0, 0), ">18", True),
        ((18, 1, 0), "<=18", True),
        ((18, 1, 0), ">= 18.1.0", True),
        ((18, 1, 0), "=18.1.0", True),
        ((18, 1, 0), "<18.1.0", False),
        ((18, 1, 0), "*", True),
        ((18, 1, 0), "", True),
        ((18, 1, 0), ">*", False),
        ((18, 1, 0), "newest", True),  # not a range: taken as any (the reader reports it)
    ],
)
def test_node_version_ranges(version: tuple[int, int, int], text: str, ok: bool) -> None:
    assert satisfies(version, text) is ok


def test_versions_and_ranges_that_are_not() -> None:
    assert buildneeds.parse_version("v20.11.1") == (20, 11, 1)
    assert buildneeds.parse_version("wasm-pack 0.13") == (0, 13, 0)
    assert buildneeds.parse_version("none") is None
    assert parse_range("18 || banana") is None and parse_range("18 || x.y") is None


# --------------------------------------------------------------------------- against a host

HIVE = BuildNeeds(
    binary="rbee-hive", crate="rbee-hive", build_script="b/build.rs", runs=("pnpm", "wasm-pack"),
    why="b/build.rs runs pnpm", node=">=18", pnpm="9.15.0", wasm_pack=True,
    workspace_install="pnpm", targets=("wasm32-unknown-unknown",), channel="stable",
    toolchain_file="rust-toolchain.toml", toolchain_targets=("wasm32-wasip1",),
)
STABLE = "stable-x86_64-unknown-linux-gnu"
HOST = "x86_64-unknown-linux-gnu"
ENSURE = "or set `ensureToolchain: true` on the hive to install it"


def host(**changes: Any) -> HostFacts:
    """Debian's rustc with no wasm32 std, Node 20 and npm; no pnpm, no wasm-pack."""
    base: dict[str, Any] = {
        "user": "vince",
        "tools": {"node": "/usr/bin/node", "npm": "/usr/bin/npm"},
        "cargo_version": "cargo 1.96.0",
        "rustc_version": "rustc 1.96.0 (ac68faa20 2026-05-25)",
        "node_version": "v20.20.2",
        "rust_sysroot": "/usr",
        "sysroot_targets": (HOST,),
    }
    base.update(changes)
    return HostFacts(**base)


def rustup(**changes: Any) -> HostFacts:
    return host(**{
        "rustup_cargo": True, "rust_sysroot": f"/h/.rustup/toolchains/{STABLE}",
        "tools": {**host().tools, "rustup": "/h/.cargo/bin/rustup"},
        "rustup_toolchains": {STABLE: (HOST,)}, **changes,
    })


def test_what_a_system_toolchain_host_lacks_one_sentence_each() -> None:
    assert buildneeds.needs_problems(HIVE, host(), "vince") == [
        "Rust target wasm32-unknown-unknown has no standard library in /usr (rustc 1.96.0, not "
        "managed by rustup) for user vince (b/build.rs runs pnpm); install that target's "
        "standard library for this rustc, or build with a rustup toolchain (`rustup target add "
        "wasm32-unknown-unknown`, then set `cargo` on the hive to its cargo); ensureToolchain "
        "cannot add a target to a toolchain rustup does not manage",
        "pnpm 9.15.0 not found on PATH or in ~/.local/bin for user vince (b/build.rs runs pnpm); "
        f"install it with `npm install -g --prefix ~/.local pnpm@9.15.0`, {ENSURE}",
        "wasm-pack not found on PATH or in ~/.cargo/bin for user vince (b/build.rs runs pnpm); "
        f"install it with `cargo install wasm-pack --locked`, {ENSURE}",
    ]
    # the toolchain file is rustup's: a system cargo ignores its channel and targets
    assert [m.what for m in buildneeds.missing(HIVE, host(), "vince")] == [
        "target", "pnpm", "wasm-pack"
    ]


def test_a_host_with_everything_lacks_nothing() -> None:
    ready = host(
        tools={**host().tools, "pnpm": "/h/.local/bin/pnpm", "wasm-pack": "/h/.cargo/bin/wasm-pack"},
        pnpm_version="9.1.4", sysroot_targets=(HOST, "wasm32-unknown-unknown"),
    )
    assert buildneeds.needs_problems(HIVE, ready, "vince") == []
    assert buildneeds.ensure_steps(HIVE, ready, "vince") == []
    assert buildneeds.missing(BuildNeeds(binary="w"), host(rustc_version=""), "vince") == []


def test_rustup_installs_the_toolchain_files_targets_too_first_in_one_step() -> None:
    missing = buildneeds.missing(HIVE, rustup(), "vince")
    add = f"rustup target add --toolchain {STABLE} wasm32-unknown-unknown wasm32-wasip1"
    assert [m.message for m in missing[:2]] == [
        f"Rust target wasm32-unknown-unknown is not installed in toolchain {STABLE} for user "
        f"vince (b/build.rs runs pnpm); run `{add}`",
        f"Rust target wasm32-wasip1 is not installed in toolchain {STABLE} for user vince "
        f"(rust-toolchain.toml lists it); run `{add}`",
    ]
    assert all(m.installable for m in missing)
    assert buildneeds.ensure_steps(HIVE, rustup(), "vince") == [
        ("target", STABLE, "wasm32-unknown-unknown", "wasm32-wasip1"),
        ("pnpm", "9.15.0", "npm"),
        ("wasm-pack",),
    ]


def test_a_channel_rustup_has_not_installed_comes_first() -> None:
    needs = BuildNeeds(binary="b", channel="1.80.0", toolchain_file="rust-toolchain")
    steps = buildneeds.ensure_steps(needs, rustup(), "vince")
    assert steps == [("toolchain", "1.80.0")]
    assert buildneeds.needs_problems(needs, rustup(), "vince") == [
        "Rust toolchain 1.80.0 (rust-toolchain) is not installed for user vince; run "
        f"`rustup toolchain install 1.80.0`, {ENSURE}"
    ]
    with_targets = BuildNeeds(binary="b", channel="1.80.0", toolchain_targets=("t1",))
    assert buildneeds.ensure_steps(with_targets, rustup(), "vince") == [
        ("toolchain", "1.80.0"), ("target", "1.80.0", "t1")
    ]
    # installed as `<channel>-<host>`; without a toolchain file the default toolchain counts
    ready = rustup(rustup_toolchains={f"1.80.0-{HOST}": (HOST, "t1")})
    assert buildneeds.missing(with_targets, ready, "vince") == []
    plain = BuildNeeds(binary="b", targets=("t1",))
    assert buildneeds.build_toolchain(plain, rustup()) == (STABLE, (HOST,))


def test_node_npm_yarn_and_pnpm_versions() -> None:
    needs = BuildNeeds(binary="b", why="w", node=">=18", pnpm="9.15.0", npm=True, yarn=True)
    old = host(node_version="v16.20.0", tools={"node": "/n", "pnpm": "/p", "corepack": "/c"},
               pnpm_version="8.15.1")
    assert buildneeds.needs_problems(needs, old, "u") == [
        "Node.js v16.20.0 for user u does not satisfy >=18 (package.json engines.node; w); "
        "install a newer Node.js",
        "npm not found on PATH for user u (w); install npm (e.g. `apt-get install npm`)",
        "yarn not found on PATH for user u (w); install yarn (e.g. `npm install -g yarn`)",
        "pnpm 8.15.1 (/p) for user u is not pnpm 9 (package.json packageManager pnpm@9.15.0; w); "
        f"install it with `npm install -g --prefix ~/.local pnpm@9.15.0` or corepack, {ENSURE}",
    ]
    assert buildneeds.ensure_steps(needs, old, "u") == [("pnpm", "9.15.0", "corepack")]
    bare = BuildNeeds(binary="b", why="w", node="", pnpm="")
    assert buildneeds.needs_problems(bare, host(tools={}), "u") == [
        "Node.js not found on PATH for user u (w); install Node.js (e.g. `apt-get install "
        "nodejs npm`)",
        "pnpm not found on PATH or in ~/.local/bin for user u (w); install it with `npm install "
        "-g --prefix ~/.local pnpm` (ensureToolchain needs npm or corepack on the host to "
        "install it: install npm, e.g. `apt-get install npm`)",
    ]


def test_what_the_tree_could_not_tell_refuses_the_build() -> None:
    needs = BuildNeeds(binary="b", problems=("Cargo.toml was not read",))
    assert buildneeds.needs_problems(needs, host(), "u") == [
        "cannot tell what building b needs: Cargo.toml was not read"
    ]


GIT = {"method": "git", "repo": "https://example.org/r.git", "tag": "v1"}
CONN = {"host": "127.0.0.5", "port": 22, "user": "vince", "knownHosts": "/k"}


def spec(**extra: Any) -> Any:
    return parse_spec({"alias": "h", "component": "hive", "binary": "rbee-hive", "source": GIT,
                       "connection": CONN, **extra})


def test_preflight_adds_the_build_needs_and_ensure_toolchain_keeps_what_it_cannot_install() -> None:
    facts = host(tools={**host().tools, "git": "/g", "flock": "/f"})
    assert preflight.preflight_problems(spec(), facts) == []  # no needs: as before
    assert preflight.preflight_problems(spec(), facts, HIVE) == buildneeds.needs_problems(
        HIVE, facts, "vince"
    )
    only = preflight.preflight_problems(spec(ensureToolchain=True), facts, HIVE)
    assert len(only) == 1 and only[0].startswith("Rust target wasm32-unknown-unknown has no")
    release = {"method": "release", "tag": "v1", "sha256": "a" * 64}
    assert preflight.preflight_problems(spec(source=release), facts, HIVE) == []


def test_the_ensure_steps_commands() -> None:
    facts = rustup()
    sp = spec(cargo="~/.cargo/bin/cargo")
    assert toolchain.step_command(("toolchain", "1.80.0"), sp, facts) == (
        ["toolchain", "/h/.cargo/bin/rustup", "1.80.0"],
        "rustup toolchain install 1.80.0 --profile minimal", "Rust toolchain 1.80.0",
    )
    assert toolchain.step_command(("target", STABLE, "a", "b"), sp, facts) == (
        ["target", "/h/.cargo/bin/rustup", STABLE, "a", "b"],
        f"rustup target add --toolchain {STABLE} a b", "Rust targets a, b",
    )
    assert toolchain.step_command(("pnpm", "9.15.0", "npm"), sp, facts) == (
        ["pnpm", "9.15.0", "npm"], "npm install -g --prefix ~/.local pnpm@9.15.0", "pnpm 9.15.0",
    )
    assert toolchain.step_command(("pnpm", "", "corepack"), sp, facts)[1:] == (
        "corepack install -g pnpm", "pnpm",
    )
    assert toolchain.step_command(("wasm-pack",), sp, facts) == (
        ["wasm-pack", "~/.cargo/bin/cargo"], "~/.cargo/bin/cargo install wasm-pack --locked",
        "wasm-pack",
    )
    assert toolchain.failure_detail("a\nb\n@@failed\tpnpm\n") == "a\nb"
    assert toolchain.failure_detail("x\nerror: one\ny\nz\n") == "error: one\ny\nz"


# --------------------------------------------------------------------------- the probe


def test_the_probe_parser_reads_the_build_tools() -> None:
    found = parse_probe(
        "tool\tnode\t/usr/bin/node\nnode\tv20.20.2\ntool\tpnpm\t/h/.local/bin/pnpm\n"
        "pnpm\t9.15.0\ntool\twasm-pack\t\nrustupcargo\tyes\nsysroot\t/h/.rustup/toolchains/s\n"
        "target\t-\tx86_64-unknown-linux-gnu\ntarget\ts\tx86_64-unknown-linux-gnu\n"
        "target\ts\twasm32-unknown-unknown\ntarget\t\t\n"
    )
    assert (found.node_version, found.pnpm_version, found.wasm_pack_version) == (
        "v20.20.2", "9.15.0", ""
    )
    assert found.tools == {"node": "/usr/bin/node", "pnpm": "/h/.local/bin/pnpm"}
    assert found.rustup_cargo and found.rust_sysroot == "/h/.rustup/toolchains/s"
    assert found.sysroot_targets == ("x86_64-unknown-linux-gnu",)
    assert found.rustup_toolchains == {
        "s": ("x86_64-unknown-linux-gnu", "wasm32-unknown-unknown")
    }


def _exe(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


@pytest.mark.skipif(which("dash") is None and which("sh") is None, reason="no POSIX sh")
def test_the_real_probe_finds_user_prefix_tools_rustup_and_its_targets() -> None:
    """PROBE itself under sh, in a home with pnpm in ~/.local/bin, wasm-pack in ~/.cargo/bin,
    a cargo that is rustup's proxy, and a rustup toolchain with the wasm32 std."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        # npm's layout: the version is read from pnpm's package.json, pnpm is not started
        _exe(home / ".local/lib/node_modules/pnpm/bin/pnpm.cjs", "#!/bin/sh\necho 1.0.0\n")
        (home / ".local/lib/node_modules/pnpm/package.json").write_text(
            '{\n  "name": "pnpm",\n  "version": "9.15.0",\n  "engines": {"node": ">=18"}\n}\n'
        )
        (home / ".local/bin").mkdir(parents=True)
        (home / ".local/bin/pnpm").symlink_to("../lib/node_modules/pnpm/bin/pnpm.cjs")
        _exe(home / ".cargo/bin/wasm-pack", "#!/bin/sh\necho wasm-pack 0.13.1\n")
        tc = home / f".rustup/toolchains/{STABLE}"
        _exe(home / ".cargo/bin/rustup",
             f'#!/bin/sh\ncase $0 in *cargo) echo "cargo 1.90.0";; *rustc) '
             f'[ "$1" = --print ] && echo "{tc}" || echo "rustc 1.90.0";; esac\n')
        for name in ("cargo", "rustc"):
            (home / ".cargo/bin" / name).symlink_to("rustup")
        for target in (HOST, "wasm32-unknown-unknown"):
            (tc / f"lib/rustlib/{target}/lib").mkdir(parents=True)
            (tc / f"lib/rustlib/{target}/lib/libcore-0123.rlib").write_text("")
        (tc / "lib/rustlib/src/lib").mkdir(parents=True)  # no std: not a target
        env = {"HOME": tmp, "PATH": "/usr/bin:/bin"}
        command = script_command(scripts.PROBE, "~/.cargo/bin/cargo", "rbee-hive", ".local/bin/x", "r")
        shell = "dash" if which("dash") else "sh"
        out = subprocess.run([shell, "-c", command], env=env, capture_output=True, text=True,
                             check=True).stdout
    found = parse_probe(out)
    assert found.tools["pnpm"] == f"{tmp}/.local/bin/pnpm" and found.pnpm_version == "9.15.0"
    assert found.tools["wasm-pack"] == f"{tmp}/.cargo/bin/wasm-pack"
    assert found.wasm_pack_version == "wasm-pack 0.13.1"
    assert found.tools["rustup"] == f"{tmp}/.cargo/bin/rustup" and found.rustup_cargo
    assert found.rust_sysroot == str(tc)
    assert set(found.sysroot_targets) == {HOST, "wasm32-unknown-unknown"}
    assert set(found.rustup_toolchains[STABLE]) == {HOST, "wasm32-unknown-unknown"}
    assert buildneeds.missing(
        BuildNeeds(binary="b", targets=("wasm32-unknown-unknown",)), found, "u"
    ) == []


def test_install_tool_parses_under_posix_sh() -> None:
    shell = "dash" if which("dash") else "sh"
    result = subprocess.run([shell, "-n", "-c", scripts.INSTALL_TOOL], capture_output=True)
    assert result.returncode == 0, result.stderr
