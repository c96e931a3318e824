"""What a test host needs to build the web UI variant of the fixture (see `fixture_repo`)
without the network: stand-ins for pnpm and wasm-pack that do what the fixture asks of them,
and a toolchain whose sysroot has the wasm32 standard library; and the tree's build needs read
from the fixture repo as the operator's machine reads them.

The stand-ins log each call but `--version` (`<tool> <cwd> <args>`) to `~/build-tools.log` so
a test sees what ran, in which directory, in which order.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from rbee_infra.decide import buildneeds
from rbee_infra.decide.buildneeds import BuildNeeds

from .hosts import Host

LOG = "build-tools.log"
WASM_CARGO = "~/rust-wasm/bin/cargo"  # the cargo of `give_wasm_toolchain`

# pnpm as the fixture uses it: --version, install --frozen-lockfile (links the workspace's
# `workspace:*` dependencies into node_modules, as pnpm does), build / run <script>, exec
_PNPM = r"""#!/usr/bin/env node
// stand-in pnpm (tests)
const fs = require("fs"), path = require("path"), cp = require("child_process");
const args = process.argv.slice(2);
if (args[0] === "--version") { console.log("__VERSION__"); process.exit(0); }
fs.appendFileSync(path.join(process.env.HOME, "__LOG__"), `pnpm ${process.cwd()} ${args.join(" ")}\n`);
const fail = (msg) => { console.error(msg); process.exit(1); };
const json = (p) => JSON.parse(fs.readFileSync(p, "utf8"));
if (args[0] === "install") {
  if (!fs.existsSync("pnpm-lock.yaml")) fail("ERR_PNPM_NO_LOCKFILE  Cannot install with \"frozen-lockfile\" because pnpm-lock.yaml is absent");
  const dirs = fs.readFileSync("pnpm-workspace.yaml", "utf8").split("\n")
    .map((l) => l.match(/^\s*-\s*(\S+)/)).filter(Boolean).map((m) => m[1]);
  const lock = fs.readFileSync("pnpm-lock.yaml", "utf8");
  for (const d of dirs) {
    if (!lock.includes(`\n  ${d}:`)) fail(`ERR_PNPM_OUTDATED_LOCKFILE  Cannot install with "frozen-lockfile" because pnpm-lock.yaml is not up to date with ${d}/package.json`);
  }
  const byName = {};
  for (const d of dirs) byName[json(path.join(d, "package.json")).name] = d;
  for (const d of dirs) {
    for (const dep of Object.keys(json(path.join(d, "package.json")).dependencies || {})) {
      const link = path.join(d, "node_modules", dep);
      fs.mkdirSync(path.dirname(link), { recursive: true });
      fs.rmSync(link, { force: true, recursive: true });
      fs.symlinkSync(path.relative(path.dirname(link), byName[dep]), link);
    }
  }
  fs.mkdirSync("node_modules", { recursive: true });
  fs.writeFileSync("node_modules/.modules.yaml", "stand-in pnpm\n");
  process.exit(0);
}
let script = args[0] === "run" ? args[1] : args[0];
if (args[0] === "exec") process.exit(cp.spawnSync(args[1], args.slice(2), { stdio: "inherit" }).status);
const scripts = json("package.json").scripts || {};
if (!(script in scripts)) fail(`ERR_PNPM_NO_SCRIPT  Missing script: ${script}`);
const env = { ...process.env, PATH: `${path.resolve("node_modules/.bin")}:${process.env.PATH}` };
process.exit(cp.spawnSync("sh", ["-c", scripts[script]], { stdio: "inherit", env }).status);
"""

_WASM_PACK = r"""#!/bin/sh
# stand-in wasm-pack (tests): --version, build [--target T] [--out-dir DIR]
[ "${1:-}" = --version ] && { echo "wasm-pack 0.13.1"; exit 0; }
printf 'wasm-pack %s %s\n' "$PWD" "$*" >> "$HOME/__LOG__"
case "${1:-}" in
  build) shift;;
  *) echo "stand-in wasm-pack: only build and --version" >&2; exit 1;;
esac
out=pkg
while [ $# -gt 0 ]; do case $1 in --out-dir) out=$2; shift;; esac; shift; done
mkdir -p "$out" && echo "// built by the stand-in wasm-pack" > "$out/index.js"
"""

# a rustc whose sysroot has the wasm32 standard library: it answers `--print sysroot` with its
# own directory, whose lib/rustlib has the host's real one and a wasm32 one; everything else
# is the system rustc (the build compiles for the host only)
_RUSTC = """#!/bin/sh
if [ "$*" = "--print sysroot" ]; then echo "$HOME/rust-wasm"; exit 0; fi
exec /usr/bin/rustc "$@"
"""


def _write(host: Host, rel: str, text: str, mode: int = 0o755) -> None:
    path = host.home / rel
    host.run(f"mkdir -p '{path.parent}'")
    path.write_text(text)
    path.chmod(mode)
    subprocess.run(["chown", f"{host.uid}:{host.gid}", str(path)], check=True)


def give_pnpm(host: Host, version: str = "9.15.0") -> None:
    """The stand-in pnpm at ~/.local/bin/pnpm (npm's user prefix)."""
    _write(host, ".local/bin/pnpm", _PNPM.replace("__LOG__", LOG).replace("__VERSION__", version))


def give_wasm_pack(host: Host) -> None:
    """The stand-in wasm-pack at ~/.cargo/bin/wasm-pack (where `cargo install` puts it)."""
    _write(host, ".cargo/bin/wasm-pack", _WASM_PACK.replace("__LOG__", LOG))


def give_wasm_toolchain(host: Host) -> str:
    """A toolchain whose sysroot has wasm32-unknown-unknown's standard library; returns its
    cargo (for the hive's `cargo`)."""
    _write(host, "rust-wasm/bin/rustc", _RUSTC)
    host.run(
        "ln -s /usr/bin/cargo rust-wasm/bin/cargo && mkdir -p rust-wasm/lib/rustlib && "
        "for d in /usr/lib/rustlib/*-linux-*; do ln -s \"$d\" rust-wasm/lib/rustlib/; done && "
        "mkdir -p rust-wasm/lib/rustlib/wasm32-unknown-unknown/lib && "
        ": > rust-wasm/lib/rustlib/wasm32-unknown-unknown/lib/libcore-0000000000000000.rlib"
    )
    return WASM_CARGO


def calls(host: Host) -> list[str]:
    """The stand-ins' calls on `host`, in order (`<tool> <cwd> <args>`)."""
    log = host.home / LOG
    return log.read_text().splitlines() if log.exists() else []


def tree_needs_of(repo: Path, ref: str, binary: str) -> tuple[BuildNeeds, int, int]:
    """What building `binary` at `ref` needs, read from the repository as the operator's
    machine reads a tree: its listing, then only the files `files_to_read` asks for. Returns
    the needs, the rounds and the number of files read."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                              text=True).stdout

    listing = git("ls-tree", "-r", "--name-only", ref).splitlines()
    files: dict[str, str] = {}
    rounds = 0
    while want := buildneeds.files_to_read(listing, binary, files):
        rounds += 1
        files.update({path: git("show", f"{ref}:{path}") for path in want})
    return buildneeds.tree_needs(listing, files, binary), rounds, len(files)
