"""What building one binary of a tree needs besides cargo, read from the tree itself. Pure.

rbee's hive is the case in point: its build script runs `pnpm build` in a UI package whose
`build` script is `wasm-pack build`, so building it needs Node.js, pnpm, the workspace's
`pnpm install`, wasm-pack and the `wasm32-unknown-unknown` target. None of that is a list kept
here per rbee version: it is read from the files of the commit being built.

`files_to_read(listing, binary, files)` says which files of the tree (`listing`: `git ls-tree
-r --name-only <commit>`) are still to be read, given the ones read so far (`files`); call it
again with what was read until it asks for nothing (three rounds at most: the root files with
the crates whose paths look like the binary's, then the other members when none of those
defines it, then the build script and the package.json files it runs scripts in).
`tree_needs` turns the files into `BuildNeeds`; `missing` and `needs_problems` compare those
with what a host has (`HostFacts`).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rbee_infra.decide.facts import HostFacts

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

JS_TOOLS = ("pnpm", "npm", "npx", "yarn", "node", "corepack")
TOOLS = (*JS_TOOLS, "wasm-pack")
WASM_TARGET = "wasm32-unknown-unknown"
TOOLCHAIN_FILES = ("rust-toolchain.toml", "rust-toolchain")
# the workspace install that runs in the checkout root before `cargo build`, per lock file
WORKSPACE_INSTALLS = {
    "pnpm": ("pnpm-lock.yaml", "pnpm install --frozen-lockfile"),
    "npm": ("package-lock.json", "npm ci"),
}
PNPM_PREFIX = "~/.local"  # where ensureToolchain installs pnpm (npm's user prefix)


def install_command(mode: str) -> str:
    """The workspace install of a build mode ("pnpm install --frozen-lockfile"; "" = none)."""
    return WORKSPACE_INSTALLS[mode][1] if mode in WORKSPACE_INSTALLS else ""


ENSURE = "or set `ensureToolchain: true` on the hive to install it"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")  # channels, targets, versions
_LEADING_NUMBER = re.compile(r"^\d+[-_]")
_RUST_TOKEN = re.compile(
    r'//[^\n]*|/\*.*?\*/|b?r(#*)"(.*?)"\1|b?"((?:\\.|[^"\\])*)"|\'(?:\\.|[^\'\\\n])\'',
    re.DOTALL,
)
_SHELL_WORD = re.compile(r"[^\s;&|()]+")


@dataclass(frozen=True)
class BuildNeeds:
    """What building `binary` at one commit needs besides a working cargo."""

    binary: str
    crate: str = ""  # the package that defines the binary
    crate_dir: str = ""  # its directory in the tree ("" = the root)
    version: str = ""  # its version (`version.workspace = true` resolved)
    build_script: str = ""  # its build script's path, if it has one
    toolchain_file: str = ""
    channel: str = ""  # the toolchain file's channel
    toolchain_targets: tuple[str, ...] = ()  # the toolchain file's targets (rustup adds them)
    cargo_lock: bool = False  # the tree has a Cargo.lock
    runs: tuple[str, ...] = ()  # the tools its build script runs, itself or through scripts
    why: str = ""  # which files say so, for the messages
    node: str | None = None  # Node.js: None = not needed, "" = any version, else a range
    pnpm: str | None = None  # pnpm: None = not needed, "" = any, else packageManager's version
    npm: bool = False
    yarn: bool = False
    wasm_pack: bool = False
    workspace_install: str = ""  # "pnpm" or "npm": installs the workspace before cargo build
    targets: tuple[str, ...] = ()  # Rust targets the build's tools compile for
    problems: tuple[str, ...] = ()  # what could not be read, said for the user

    @property
    def install_command(self) -> str:
        """The workspace install the build job runs in the checkout root ("" = none)."""
        return install_command(self.workspace_install)

    @property
    def build_mode(self) -> str:
        """The build job's argument (see build_job.sh): "" for a plain cargo build, "path"
        when the build script runs tools that may live in the user's prefixes, else the
        workspace install to run first ("pnpm" or "npm")."""
        if self.workspace_install:
            return self.workspace_install
        return "path" if self.runs else ""


# --------------------------------------------------------------------------- reading the tree


@dataclass
class _Reader:
    listing: frozenset[str]
    files: Mapping[str, str]
    want: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    def text(self, path: str) -> str | None:
        """The file's text; None when the tree has no such file or it is not read yet."""
        if path not in self.listing:
            return None
        if path not in self.files:
            if path not in self.want:
                self.want.append(path)
            return None
        return self.files[path]

    def toml(self, path: str) -> dict[str, Any] | None:
        text = self.text(path)
        if text is None:
            return None
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            self.problem(f"{path} is not valid TOML ({error})")
            return None

    def json(self, path: str) -> dict[str, Any] | None:
        text = self.text(path)
        if text is None:
            return None
        try:
            value = json.loads(text)
        except ValueError as error:
            self.problem(f"{path} is not valid JSON ({error})")
            return None
        if not isinstance(value, dict):
            self.problem(f"{path} is not a JSON object")
            return None
        return value


def _join(directory: str, path: str) -> str:
    return posixpath.normpath(posixpath.join(directory, path)) if directory else path


def _table(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _crate_dirs(listing: Iterable[str]) -> list[str]:
    """Every directory with a Cargo.toml ("" = the root), in listing order."""
    out = []
    for path in listing:
        if path == "Cargo.toml":
            out.append("")
        elif path.endswith("/Cargo.toml"):
            out.append(path[: -len("/Cargo.toml")])
    return out


def _auto_bin(directory: str, binary: str, listing: frozenset[str]) -> bool:
    """The crate has `binary` as an automatic target (src/bin/<binary>.rs or its main.rs)."""
    paths = (f"src/bin/{binary}.rs", f"src/bin/{binary}/main.rs")
    return any(_join(directory, p) in listing for p in paths)


def _looks_like(directory: str, binary: str, listing: frozenset[str]) -> bool:
    """A crate directory likely to define `binary` (read in the first round)."""
    if _auto_bin(directory, binary, listing):
        return True
    name = _LEADING_NUMBER.sub("", posixpath.basename(directory)).lower().replace("_", "-")
    return bool(name) and (name == binary or binary.startswith(f"{name}-"))


def _glob(pattern: str) -> re.Pattern[str]:
    out = ""
    for part in re.split(r"(\*\*|\*|\?)", posixpath.normpath(pattern.strip("/"))):
        out += {"**": ".*", "*": "[^/]*", "?": "[^/]"}.get(part, re.escape(part))
    return re.compile(out)


def _members(root: dict[str, Any], dirs: list[str]) -> list[str]:
    """The workspace members (the root package too), as directories of the tree."""
    workspace = _table(root.get("workspace"))
    found = [""] if "package" in root else []
    patterns = [_glob(m) for m in workspace.get("members", []) if isinstance(m, str)]
    excluded = [_glob(m) for m in workspace.get("exclude", []) if isinstance(m, str)]
    for d in dirs:
        if d and any(p.fullmatch(d) for p in patterns) and not any(
            e.fullmatch(d) for e in excluded
        ):
            found.append(d)
    return found


def _defines(manifest: dict[str, Any], directory: str, binary: str, listing: frozenset[str]
             ) -> bool:  # fmt: skip
    package = _table(manifest.get("package"))
    bins = manifest.get("bin")
    if isinstance(bins, list) and any(_table(b).get("name") == binary for b in bins):
        return True
    if package.get("autobins") is False:
        return False
    if package.get("name") == binary and _join(directory, "src/main.rs") in listing:
        return True
    return _auto_bin(directory, binary, listing)


def _find_crate(
    reader: _Reader, root: dict[str, Any], binary: str
) -> tuple[str, dict[str, Any]] | None:
    """The member that defines `binary`: the likely ones first, then (next round) the rest."""
    dirs = _crate_dirs(sorted(reader.listing))
    members = _members(root, dirs)
    likely = [d for d in members if d == "" or _looks_like(d, binary, reader.listing)]
    rest = [d for d in members if d not in likely]
    for group in (likely, rest):
        manifests = {d: root if d == "" else reader.toml(_join(d, "Cargo.toml")) for d in group}
        for d, manifest in manifests.items():
            if manifest is not None and _defines(manifest, d, binary, reader.listing):
                return d, manifest
        if reader.want:
            return None  # read these first
    if not reader.problems:
        reader.problem(
            f"no crate of the workspace defines a binary named {binary!r} "
            "(no [[bin]] of that name, no package of that name with src/main.rs, "
            f"no src/bin/{binary}.rs)"
        )
    return None


def _version(package: dict[str, Any], root: dict[str, Any]) -> str:
    version = package.get("version")
    if isinstance(version, dict) and version.get("workspace") is True:
        version = _table(_table(root.get("workspace")).get("package")).get("version")
    return version if isinstance(version, str) else "0.0.0" if version is None else ""


def _build_script(package: dict[str, Any], directory: str, listing: frozenset[str]) -> str:
    build = package.get("build")
    if build is False:
        return ""
    path = _join(directory, build if isinstance(build, str) else "build.rs")
    return path if path in listing else ""


def rust_literals(source: str) -> list[str]:
    """The string literals of Rust source (comments skipped; escapes left as written)."""
    out = []
    for match in _RUST_TOKEN.finditer(source):
        raw, plain = match.group(2), match.group(3)
        if raw is not None:
            out.append(raw)
        elif plain is not None:
            out.append(plain)
    return out


def _tools_in(words: Iterable[str]) -> set[str]:
    return {posixpath.basename(w) for w in words if posixpath.basename(w) in TOOLS}


def _toolchain(reader: _Reader) -> tuple[str, str, tuple[str, ...]]:
    """(file, channel, targets) of the root's toolchain file."""
    for name in TOOLCHAIN_FILES:
        text = reader.text(name)
        if text is None:
            continue
        if name == "rust-toolchain" and "[toolchain]" not in text:
            channel = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
            targets: Any = []
        else:
            data = reader.toml(name)
            if data is None:
                return name, "", ()
            table = _table(data.get("toolchain"))
            channel, targets = table.get("channel", ""), table.get("targets", [])
        if not isinstance(channel, str) or (channel and not _NAME.match(channel)):
            reader.problem(f"{name}: channel {str(channel)[:60]!r} is not a toolchain name")
            channel = ""
        ok = isinstance(targets, list) and all(isinstance(t, str) and _NAME.match(t)
                                               for t in targets)
        if not ok:
            reader.problem(f"{name}: targets must be a list of target names")
            targets = []
        return name, channel, tuple(targets)
    return "", "", ()


def _script_dirs(crate_dir: str, literals: list[str], listing: frozenset[str]) -> list[str]:
    """The package.json files under the crate that its build script names (every path
    segment of the package's directory appears in the script's string literals)."""
    segments = {seg for lit in literals for seg in lit.split("/") if seg}
    prefix = f"{crate_dir}/" if crate_dir else ""
    out = []
    for path in sorted(listing):
        if not path.startswith(prefix) or posixpath.basename(path) != "package.json":
            continue
        rel = posixpath.dirname(path[len(prefix) :])
        parts = rel.split("/") if rel else []
        if "node_modules" not in parts and all(p in segments for p in parts):
            out.append(path)
    return out


def _analyse(listing: Iterable[str], files: Mapping[str, str], binary: str
             ) -> tuple[BuildNeeds, list[str]]:  # fmt: skip
    reader = _Reader(frozenset(listing), files)
    root = reader.toml("Cargo.toml")
    toolchain_file, channel, toolchain_targets = _toolchain(reader)
    root_package = reader.json("package.json") or {}
    cargo_lock = "Cargo.lock" in reader.listing
    base = BuildNeeds(binary=binary, toolchain_file=toolchain_file, channel=channel,
                      toolchain_targets=toolchain_targets, cargo_lock=cargo_lock)
    if "Cargo.toml" not in reader.listing:
        reader.problem("the tree has no Cargo.toml at its root")
    if root is None:
        # the likely crates' manifests come in the same round as the root's
        for d in _crate_dirs(sorted(reader.listing)):
            if d and _looks_like(d, binary, reader.listing):
                reader.text(_join(d, "Cargo.toml"))
        return _done(base, reader)
    found = _find_crate(reader, root, binary)
    if found is None:
        return _done(base, reader)
    crate_dir, manifest = found
    package = _table(manifest.get("package"))
    script = _build_script(package, crate_dir, reader.listing)
    base = _replace(base, crate=str(package.get("name", "")), crate_dir=crate_dir,
                    version=_version(package, root), build_script=script)
    source = reader.text(script) if script else None
    if source is None:
        return _done(base, reader)
    literals = rust_literals(source)
    direct = _tools_in(literals)
    runs = set(direct)
    via: list[str] = []
    if runs & set(JS_TOOLS):
        for path in _script_dirs(crate_dir, literals, reader.listing):
            scripts = _table((reader.json(path) or {}).get("scripts"))
            for name in sorted(set(literals) & set(scripts)):
                if isinstance(scripts[name], str):
                    found_tools = _tools_in(_SHELL_WORD.findall(scripts[name])) - runs
                    if found_tools:
                        via.append(f"{', '.join(sorted(found_tools))} through {path} ({name})")
                    runs |= found_tools
    if not runs:
        return _done(base, reader)
    why = ", ".join([f"{script} runs {', '.join(sorted(direct))}", *via])
    return _done(_needs(_replace(base, why=why), root_package, sorted(runs), reader), reader)


def _needs(base: BuildNeeds, root_package: dict[str, Any], runs: list[str], reader: _Reader
           ) -> BuildNeeds:  # fmt: skip
    js = any(t in JS_TOOLS for t in runs)
    node: str | None = None
    if js:
        engines = _table(root_package.get("engines")).get("node", "")
        node = engines.strip() if isinstance(engines, str) else ""
        if node and parse_range(node) is None:
            reader.problem(
                f"package.json: engines.node {node[:60]!r} is not a version range"
            )
    pnpm: str | None = None
    if "pnpm" in runs:
        manager = root_package.get("packageManager", "")
        pnpm = ""
        if isinstance(manager, str) and manager.startswith("pnpm@"):
            pnpm = manager[len("pnpm@") :].split("+")[0]
            if not _NAME.match(pnpm):
                reader.problem(f"package.json: packageManager {manager[:60]!r} is not "
                                       "pnpm@<version>")
                pnpm = ""
    npm = "npm" in runs or "npx" in runs
    install = ""
    if pnpm is not None and "pnpm-lock.yaml" in reader.listing:
        install = "pnpm"
    elif npm and "package-lock.json" in reader.listing:
        install = "npm"
    wasm = "wasm-pack" in runs
    return _replace(
        base, runs=tuple(runs), node=node, pnpm=pnpm, npm=npm, yarn="yarn" in runs,
        wasm_pack=wasm, workspace_install=install, targets=(WASM_TARGET,) if wasm else (),
    )


def _replace(needs: BuildNeeds, **changes: Any) -> BuildNeeds:
    return BuildNeeds(**{**needs.__dict__, **changes})


def _done(needs: BuildNeeds, reader: _Reader) -> tuple[BuildNeeds, list[str]]:
    problems = [*needs.problems, *reader.problems]
    problems += [f"{path} was not read" for path in reader.want]
    return _replace(needs, problems=tuple(problems)), list(reader.want)


def files_to_read(
    listing: Iterable[str], binary: str, files: Mapping[str, str] | None = None
) -> list[str]:
    """The files still to read to know what building `binary` needs ([] = enough)."""
    return _analyse(listing, files or {}, binary)[1]


def tree_needs(listing: Iterable[str], files: Mapping[str, str], binary: str) -> BuildNeeds:
    """What building `binary` needs, from the tree's listing and the files read. Never raises:
    what cannot be read or understood is in `problems`."""
    try:
        return _analyse(listing, files, binary)[0]
    except Exception as error:  # a tree is input: nothing in it may escape as a crash
        return BuildNeeds(binary=binary, problems=(f"cannot read the tree: {error!r}",))


NEEDED_FILES = ("Cargo.toml", *TOOLCHAIN_FILES, "package.json")  # read in every first round


# --------------------------------------------------------------------------- versions


Version = tuple[int, int, int]


def parse_version(text: str) -> Version | None:
    """`v20.11.1`, `9.15.0`, `wasm-pack 0.13.1` -> (major, minor, patch); None if none."""
    match = re.search(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", text)
    if match is None:
        return None
    return (int(match.group(1)), int(match.group(2) or 0), int(match.group(3) or 0))


_COMPARATOR = re.compile(r"^(>=|<=|>|<|=|\^|~>?|)v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?"
                         r"(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
Bound = tuple[str, Version]


def _comparator(text: str) -> list[Bound] | None:
    match = _COMPARATOR.match(text)
    if match is None:
        return None
    op, *raw = match.groups()
    parts = [None if p is None or p in "xX*" else int(p) for p in raw]
    known = 0
    for p in parts:
        if p is None:
            break
        known += 1
    nums = [p if p is not None else 0 for p in parts]
    low: Version = (nums[0], nums[1], nums[2]) if known else (0, 0, 0)

    def bump(level: int) -> Version:
        v = [*low[:level], low[level] + 1, 0, 0][:3]
        return (v[0], v[1], v[2])

    if known == 0:
        return [] if op in ("", "=", ">=", "<=", "^", "~", "~>") else [("<", (0, 0, 0))]
    if op in ("", "="):
        return [("=", low)] if known == 3 else [(">=", low), ("<", bump(known - 1))]
    if op == ">=":
        return [(">=", low)]
    if op == ">":
        return [(">", low)] if known == 3 else [(">=", bump(known - 1))]
    if op == "<":
        return [("<", low)]
    if op == "<=":
        return [("<=", low)] if known == 3 else [("<", bump(known - 1))]
    if op in ("~", "~>"):
        return [(">=", low), ("<", bump(min(known - 1, 1)))]
    # caret: the leftmost non-zero part may not change
    level = next((i for i in range(known) if low[i] != 0), known - 1)
    return [(">=", low), ("<", bump(level))]


def parse_range(text: str) -> list[list[Bound]] | None:
    """An npm version range (`>=18`, `^20.1 || >=22`, `18.x`, `16 - 20`) as alternatives of
    bounds; None when it is not one."""
    alternatives: list[list[Bound]] = []
    for alt in text.split("||"):
        alt = re.sub(r"(>=|<=|>|<|=|\^|~>?)\s+", r"\1", alt.strip())
        hyphen = re.fullmatch(r"(\S+)\s+-\s+(\S+)", alt)
        words = [f">={hyphen.group(1)}", f"<={hyphen.group(2)}"] if hyphen else alt.split()
        bounds: list[Bound] = []
        for word in words or ["*"]:
            found = _comparator(word)
            if found is None:
                return None
            bounds += found
        alternatives.append(bounds)
    return alternatives


def satisfies(version: Version, text: str) -> bool:
    """Whether `version` is in the range (an unreadable range is taken as any version)."""
    ranges = parse_range(text)
    if ranges is None:
        return True
    checks = {
        ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
        "<": lambda a, b: a < b, "=": lambda a, b: a == b,
    }
    return any(all(checks[op](version, v) for op, v in alt) for alt in ranges)


# --------------------------------------------------------------------------- against a host


@dataclass(frozen=True)
class Missing:
    """One thing a host lacks for a build. `step` is how ensureToolchain gets it (a step of
    `ensure_steps`), or () when it cannot."""

    what: str  # "node", "npm", "yarn", "pnpm", "wasm-pack", "toolchain", "target", "tree"
    message: str
    installable: bool = False
    step: tuple[str, ...] = ()  # () also when another item's step installs it


def build_toolchain(needs: BuildNeeds, facts: HostFacts) -> tuple[str, tuple[str, ...] | None]:
    """(name, installed targets) of the Rust toolchain the build will use: under rustup the
    toolchain file's channel (None: not installed), else the configured rustc's sysroot."""
    if facts.rustup_cargo and needs.channel:
        for name, targets in facts.rustup_toolchains.items():
            if name == needs.channel or any(name == f"{needs.channel}-{t}" for t in targets):
                return name, targets
        return needs.channel, None
    name = posixpath.basename(facts.rust_sysroot) if facts.rustup_cargo else facts.rust_sysroot
    return name, facts.sysroot_targets


def missing(needs: BuildNeeds, facts: HostFacts, user: str) -> list[Missing]:
    """What the host lacks for the build, in the order ensureToolchain would get it."""
    out = [Missing("tree", f"cannot tell what building {needs.binary} needs: {p}")
           for p in needs.problems]
    out += _rust_missing(needs, facts, user)
    out += _node_missing(needs, facts, user)
    if needs.wasm_pack and "wasm-pack" not in facts.tools:
        out.append(Missing(
            "wasm-pack",
            f"wasm-pack not found on PATH or in ~/.cargo/bin for user {user} ({needs.why}); "
            "install it with `cargo install wasm-pack --locked`",
            True,
            ("wasm-pack",),
        ))
    return out


def _rust_missing(needs: BuildNeeds, facts: HostFacts, user: str) -> list[Missing]:
    if not facts.rustc_version:
        return []  # no toolchain yet: the cargo checks say so (ensureToolchain re-reads)
    wanted = list(needs.targets)
    if facts.rustup_cargo:
        wanted += [t for t in needs.toolchain_targets if t not in wanted]
    if not wanted and not (facts.rustup_cargo and needs.channel):
        return []
    name, installed = build_toolchain(needs, facts)
    reason = {t: needs.why for t in needs.targets}
    for t in needs.toolchain_targets:
        reason.setdefault(t, f"{needs.toolchain_file} lists it")
    out: list[Missing] = []
    if installed is None:
        out.append(Missing(
            "toolchain",
            f"Rust toolchain {needs.channel} ({needs.toolchain_file}) is not installed for "
            f"user {user}; run `rustup toolchain install {needs.channel}`",
            True,
            ("toolchain", needs.channel),
        ))
        installed = ()
    lacking = [t for t in wanted if t not in installed]
    if not lacking:
        return out
    if facts.rustup_cargo:
        add = f"rustup target add --toolchain {name} {' '.join(lacking)}"
        for t in lacking:
            out.append(Missing(
                "target",
                f"Rust target {t} is not installed in toolchain {name} for user {user} "
                f"({reason[t]}); run `{add}`",
                True,
                ("target", name, *lacking) if t == lacking[0] else (),
            ))
        return out
    rustc = facts.rustc_version.split(" (")[0]
    for t in lacking:
        out.append(Missing(
            "target",
            f"Rust target {t} has no standard library in {name or 'the sysroot'} ({rustc}, not "
            f"managed by rustup) for user {user} ({reason[t]}); install that target's standard "
            f"library for this rustc, or build with a rustup toolchain (`rustup target add {t}`, "
            "then set `cargo` on the hive to its cargo); ensureToolchain cannot add a target to "
            "a toolchain rustup does not manage",
        ))
    return out


def _node_missing(needs: BuildNeeds, facts: HostFacts, user: str) -> list[Missing]:
    out: list[Missing] = []
    if needs.node is not None:
        want = f"Node.js {needs.node}".strip()
        have = parse_version(facts.node_version) if facts.node_version else None
        if "node" not in facts.tools or have is None:
            out.append(Missing(
                "node",
                f"{want} not found on PATH for user {user} ({needs.why}); install Node.js "
                f"{needs.node or ''} (e.g. `apt-get install nodejs npm`)".replace("  ", " "),
            ))
        elif needs.node and not satisfies(have, needs.node):
            out.append(Missing(
                "node",
                f"Node.js {facts.node_version} for user {user} does not satisfy {needs.node} "
                f"(package.json engines.node; {needs.why}); install a newer Node.js",
            ))
    if needs.npm and "npm" not in facts.tools:
        out.append(Missing("npm", f"npm not found on PATH for user {user} ({needs.why}); "
                                  "install npm (e.g. `apt-get install npm`)"))
    if needs.yarn and "yarn" not in facts.tools:
        out.append(Missing("yarn", f"yarn not found on PATH for user {user} ({needs.why}); "
                                   "install yarn (e.g. `npm install -g yarn`)"))
    if needs.pnpm is not None:
        out += _pnpm_missing(needs.pnpm, facts, user, needs.why)
    return out


def _pnpm_missing(version: str, facts: HostFacts, user: str, why: str) -> list[Missing]:
    have = parse_version(facts.pnpm_version) if facts.pnpm_version else None
    want = parse_version(version) if version else None
    if "pnpm" in facts.tools and have is not None and (want is None or have[0] == want[0]):
        return []
    spec = f"pnpm@{version}" if version else "pnpm"
    if "pnpm" in facts.tools and have is not None:
        found = (f"pnpm {facts.pnpm_version} ({facts.tools['pnpm']}) for user {user} is not "
                 f"pnpm {want[0] if want else ''} (package.json packageManager {spec}; {why})")
    else:
        found = (f"pnpm{' ' + version if version else ''} not found on PATH or in "
                 f"{PNPM_PREFIX}/bin for user {user} ({why})")
    how = f"install it with `npm install -g --prefix {PNPM_PREFIX} {spec}`"
    if "npm" in facts.tools:
        return [Missing("pnpm", f"{found}; {how}", True, ("pnpm", version, "npm"))]
    if "corepack" in facts.tools:
        return [Missing("pnpm", f"{found}; {how} or corepack", True,
                        ("pnpm", version, "corepack"))]
    return [Missing("pnpm", f"{found}; {how} (ensureToolchain needs npm or corepack on the host "
                            "to install it: install npm, e.g. `apt-get install npm`)")]


def needs_problems(needs: BuildNeeds, facts: HostFacts, user: str) -> list[str]:
    """What the host lacks for the build, one sentence each: what, for which user, how to get
    it, and whether `ensureToolchain: true` can install it."""
    return [m.message + (f", {ENSURE}" if m.installable else "")
            for m in missing(needs, facts, user)]


def ensure_steps(needs: BuildNeeds, facts: HostFacts, user: str) -> list[tuple[str, ...]]:
    """The installs ensureToolchain runs, in order: the Rust toolchain and targets first
    (fast, and the most likely to be unobtainable), then pnpm, then wasm-pack (compiles for
    minutes)."""
    return [m.step for m in missing(needs, facts, user) if m.step]
