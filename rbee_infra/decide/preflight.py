"""Preflight: what a host lacks for one install, decided from the probe's facts. Pure.

Each problem says what is missing, for which user, and how to fix it; `lifecycle.install`
raises them (phase "preflight") before anything on the host changes, and `check` shows them in
the preview.
"""

from __future__ import annotations

from typing import Any

from rbee_infra.config.spec import InstallSpec
from rbee_infra.decide import buildneeds
from rbee_infra.decide.buildneeds import BuildNeeds
from rbee_infra.decide.facts import HostFacts

# What a build (checkout + cargo target dir) or a downloaded binary needs under
# ~/.local/share/rbee, unless the hive sets minFreeDiskMb. rbee's real cpu worker took 1 GB of
# checkout and target dir (its crates another 0.5 GB under ~/.cargo): 3 GB leaves room.
DEFAULT_MIN_FREE_MB = {"git": 3072, "release": 64, "local": 64}
SHIPPED_MIN_FREE_MB = 64  # a git source built elsewhere: only its binary lands here
MIN_FREE_BIN_MB = 1  # ~/.local/bin only gets a symlink
HOME_CARGO = "~/.cargo/bin/cargo"


def min_free_mb(spec: InstallSpec) -> int:
    if spec.min_free_disk_mb is not None:
        return spec.min_free_disk_mb
    if spec.source.method == "git" and not builds_here(spec):
        return SHIPPED_MIN_FREE_MB
    return DEFAULT_MIN_FREE_MB.get(spec.source.method, 64)


def _user(spec: InstallSpec, facts: HostFacts) -> str:
    return facts.user or spec.connection.user


def _where(spec: InstallSpec) -> str:
    return "on PATH" if "/" not in spec.cargo else f"at {spec.cargo}"


def builds_here(spec: InstallSpec) -> bool:
    """A git source built on this host (not shipped from a build elsewhere)."""
    return spec.source.method == "git" and spec.build is None


def cargo_missing(spec: InstallSpec, facts: HostFacts) -> bool:
    return builds_here(spec) and not facts.cargo_version


def needs_toolchain(spec: InstallSpec, facts: HostFacts) -> bool:
    """`ensureToolchain` applies: a git build, no working cargo, rustup's not installed yet."""
    return spec.ensure_toolchain and cargo_missing(spec, facts) and not facts.home_cargo


def _cargo_problems(spec: InstallSpec, facts: HostFacts) -> list[str]:
    user = _user(spec, facts)
    if not cargo_missing(spec, facts):
        if builds_here(spec) and not facts.rustc_version:
            return [
                f"rustc not found next to {spec.cargo} or on PATH for user {user}; "
                "install Rust (rustup) or set `cargo` on the hive to a complete toolchain"
            ]
        return []
    if spec.ensure_toolchain and facts.home_cargo:
        return []  # ensureToolchain uses the rustup install that is already there
    if needs_toolchain(spec, facts):
        if "curl" in facts.tools or "wget" in facts.tools:
            return []
        return [
            f"cargo not found {_where(spec)} for user {user}, and ensureToolchain needs curl "
            "or wget on the host to download rustup; install one of them, or install Rust"
        ]
    if facts.cargo_path:
        return [
            f"{spec.cargo} ({facts.cargo_path}) does not run: `cargo --version` failed for user "
            f"{user}; repair the Rust install or set `cargo` on the hive"
        ]
    if facts.home_cargo:
        return [
            f"cargo not found {_where(spec)} for user {user}, but {HOME_CARGO} is installed "
            f"({facts.home_cargo}); set `cargo: {HOME_CARGO}` on the hive"
        ]
    return [
        f"cargo not found {_where(spec)} for user {user}; install Rust (rustup), set `cargo` "
        "on the hive, or set `ensureToolchain: true` to install it with rustup"
    ]


def _platform_problems(spec: InstallSpec, facts: HostFacts) -> list[str]:
    if not spec.check_platform:
        return []
    user = _user(spec, facts)
    skip = "or set `checkPlatform: false` on the hive to install it anyway"
    problems: list[str] = []
    if "cuda" in spec.features:
        if "nvidia-smi" not in facts.tools:
            problems.append(
                f"feature cuda needs an NVIDIA driver, but nvidia-smi is not on PATH for user "
                f"{user}; install the NVIDIA driver, {skip}"
            )
        elif not facts.gpus:
            problems.append(
                "feature cuda needs an NVIDIA GPU, but nvidia-smi lists none (is the driver "
                f"loaded?); fix the driver, {skip}"
            )
        if builds_here(spec):
            if "nvcc" not in facts.tools:
                problems.append(
                    "feature cuda needs the CUDA toolkit to build, but nvcc is neither on PATH "
                    f"nor in /usr/local/cuda/bin for user {user}; install the CUDA toolkit, {skip}"
                )
            elif not facts.nvcc_version:
                problems.append(
                    f"feature cuda needs the CUDA toolkit to build, but {facts.tools['nvcc']} "
                    f"--version fails; repair the CUDA toolkit, {skip}"
                )
    if "metal" in spec.features and facts.os != "Darwin":
        problems.append(
            f"feature metal needs macOS, but the host runs {facts.os or 'an unknown OS'}; "
            f"drop the metal feature, {skip}"
        )
    return problems


def _disk_problems(spec: InstallSpec, facts: HostFacts) -> list[str]:
    problems: list[str] = []
    need = min_free_mb(spec)
    free = facts.free_mb("data")
    if free is not None and free < need:
        problems.append(
            f"only {free} MB free on the filesystem holding ~/.local/share/rbee; a "
            f"{spec.source.method} install needs at least {need} MB (free some space, or set "
            "`minFreeDiskMb` on the hive)"
        )
    free_bin = facts.free_mb("bin")
    if spec.component == "hive" and free_bin is not None and free_bin < MIN_FREE_BIN_MB:
        problems.append("no space left on the filesystem holding ~/.local/bin; free some space")
    return problems


def shipped_problems(spec: InstallSpec, facts: HostFacts) -> list[str]:
    """Why this host cannot run the binary built elsewhere for it (`spec.artifact`): another
    target triple, or a glibc older than the builder's. Empty when it can, or when the build
    is still to come (preview), in which case `up` checks again before shipping."""
    art, place = spec.artifact, spec.build
    if art is None or place is None:
        return []
    problems: list[str] = []
    arch, _, rest = art.triple.partition("-")
    other_os = "linux" in rest and facts.os not in ("", "Linux")
    if (facts.arch and arch != facts.arch) or other_os:
        problems.append(
            f"the binary built on {place.label} is for {art.triple}, but this host is "
            f"{facts.uname}; build it on a machine of this platform (`build: host`, or a "
            "builder hive like this host)"
        )
    if art.glibc and "gnu" in art.triple:
        if not facts.glibc:
            problems.append(
                f"the binary built on {place.label} needs glibc {art.glibc}, and this host "
                "reports none (getconf GNU_LIBC_VERSION); build it here (`build: host`)"
            )
        elif _version(facts.glibc) < _version(art.glibc):
            problems.append(
                f"the binary built on {place.label} needs glibc {art.glibc} or newer, but "
                f"this host has glibc {facts.glibc}; build it on a machine with glibc "
                f"{facts.glibc} or older, or here (`build: host`)"
            )
    return problems


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def build_problems(spec: InstallSpec, facts: HostFacts, needs: BuildNeeds | None) -> list[str]:
    """What the host lacks for what the tree's build needs besides cargo (see `buildneeds`);
    with ensureToolchain only what it cannot install. None for a build made elsewhere."""
    if needs is None or not builds_here(spec):
        return []
    user = _user(spec, facts)
    if not spec.ensure_toolchain:
        return buildneeds.needs_problems(needs, facts, user)
    return [m.message for m in buildneeds.missing(needs, facts, user) if not m.installable]


def preflight_problems(
    spec: InstallSpec, facts: HostFacts, needs: BuildNeeds | None = None
) -> list[str]:
    """Everything the host lacks for this install; empty when it can go ahead. `needs`: what
    the tree at the commit to build needs besides cargo (None: cargo alone is checked)."""
    user = _user(spec, facts)
    problems: list[str] = []
    if builds_here(spec) and "git" not in facts.tools:
        problems.append(
            f"git not found on PATH for user {user}; install git (e.g. `apt-get install git`)"
        )
    if "flock" not in facts.tools:
        problems.append(
            f"flock not found on PATH for user {user}; install it (util-linux on Linux, "
            "`brew install flock` on macOS)"
        )
    problems += _cargo_problems(spec, facts)
    problems += build_problems(spec, facts, needs)
    problems += _platform_problems(spec, facts)
    problems += shipped_problems(spec, facts)
    problems += _disk_problems(spec, facts)
    return problems


def describe(problems: list[str], spec: InstallSpec | None = None) -> str:
    """One error message for all of them; for a build on the host (`spec`), followed by the
    other way on: the stack lines that install a prebuilt binary instead."""
    text = problems[0] if len(problems) == 1 else (
        f"{len(problems)} problems:\n" + "\n".join(f"- {p}" for p in problems)
    )
    return f"{text}\n{prebuilt_lines(spec)}" if spec is not None and builds_here(spec) else text


def prebuilt_lines(spec: InstallSpec) -> str:
    """The exact stack lines that install a prebuilt binary instead of building `spec`."""
    if spec.component == "hive":
        where = f"the hive {spec.alias} (rbee:hives, alias: {spec.alias})"
        indent = " " * 6
    else:
        where = f"the worker `- type: {spec.worker_type}` of the hive {spec.alias}"
        indent = " " * 10
    lines = ["installMethod:", "  local:", f"    path: /path/to/{spec.binary}"]
    return (
        f"Or install a prebuilt {spec.binary} instead of building it: in the stack file, set "
        f"under {where}:\n" + "\n".join(indent + line for line in lines)
        + "\n(or `release: {tag: <tag>, sha256: <sha256>}`, see the README's prebuilt binaries)"
    )


def host_facts_output(facts: HostFacts) -> dict[str, Any]:
    """The `hostFacts` output: what preflight saw (free space changes; it is not an input)."""
    return {
        "os": facts.os,
        "arch": facts.arch,
        "osName": facts.os_name or None,
        "cargo": facts.cargo_version or None,
        "rustc": facts.rustc_version or None,
        "freeDiskMb": {k: facts.free_mb(k) for k in sorted(facts.free_kib)},
        "gpu": {
            "nvidiaSmi": facts.tools.get("nvidia-smi"),
            "nvcc": facts.tools.get("nvcc"),
            "devices": list(facts.gpus),
        },
        "serviceManager": "systemd" if facts.systemd_user else "pidfile",
    }
