"""Facts about a host: pure parsers of what the read-only probe scripts print."""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from rbee_infra.base import layout

_COMMIT_ID = re.compile(r"[0-9a-f]{40}")


def is_commit_id(value: str) -> bool:
    """A full commit id as `git ls-remote` prints it: 40 lowercase hex digits."""
    return _COMMIT_ID.fullmatch(value) is not None


@dataclass(frozen=True)
class InstalledBinary:
    """What sits at one stable path, and the receipt rbee-infra left beside it."""

    name: str
    kind: Literal["symlink", "file", "missing"]
    link: str
    sha256: str | None
    receipt: dict[str, Any] | None

    @property
    def present(self) -> bool:
        return self.kind != "missing" and self.sha256 is not None

    @property
    def release_id(self) -> str | None:
        """The release dir the link points into (`.../releases/<name>/<id>/<bin>`), when it is
        one (the link is the host's to say: never let it name another path)."""
        parts = self.link.split("/")
        if self.kind != "symlink" or len(parts) < 2 or not layout.is_release_id(parts[-2]):
            return None
        return parts[-2]

    def drift(self) -> str | None:
        """Why the installed binary no longer matches its receipt, or None."""
        if self.receipt is None:
            return None
        if not self.present:
            return "binary missing"
        if self.receipt.get("sha256") and self.receipt["sha256"] != self.sha256:
            return "binary changed (sha256 differs from the receipt)"
        return None


@dataclass(frozen=True)
class HostFacts:
    home: str = ""
    uname: str = ""
    tools: dict[str, str] = field(default_factory=dict)
    cargo_version: str = ""
    installed: dict[str, InstalledBinary] = field(default_factory=dict)
    user: str = ""
    os_name: str = ""
    cargo_path: str = ""  # `command -v` of the configured cargo ("" when not found)
    rustc_version: str = ""
    home_cargo: str = ""  # `~/.cargo/bin/cargo --version` (rustup's default place)
    nvcc_version: str = ""
    gpus: tuple[str, ...] = ()  # nvidia-smi's "name, driver" lines
    free_kib: dict[str, int] = field(default_factory=dict)  # "data", "bin"
    systemd_user: bool = False
    glibc: str = ""  # `getconf GNU_LIBC_VERSION`'s version ("" without glibc)
    rust_host: str = ""  # the target triple its rustc builds for by default
    # the tools a build script may run (see `buildneeds`); their paths are in `tools`
    node_version: str = ""  # `node --version`
    pnpm_version: str = ""  # `pnpm --version` (~/.local/bin/pnpm first)
    wasm_pack_version: str = ""  # `wasm-pack --version` (~/.cargo/bin/wasm-pack last)
    rustup_cargo: bool = False  # the configured cargo is rustup's proxy
    rust_sysroot: str = ""  # `rustc --print sysroot` of the configured cargo's rustc
    sysroot_targets: tuple[str, ...] = ()  # targets with a standard library in that sysroot
    # rustup's toolchains (~/.rustup/toolchains/<name>) -> their installed targets
    rustup_toolchains: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def os(self) -> str:
        return self.uname.split(" ")[0] if self.uname else ""

    @property
    def arch(self) -> str:
        parts = self.uname.split(" ")
        return parts[1] if len(parts) > 1 else ""

    def free_mb(self, where: str) -> int | None:
        kib = self.free_kib.get(where)
        return None if kib is None else kib // 1024


_TEXT_FACTS = {
    "home": "home",
    "uname": "uname",
    "cargo": "cargo_version",
    "user": "user",
    "os": "os_name",
    "cargopath": "cargo_path",
    "rustc": "rustc_version",
    "homecargo": "home_cargo",
    "nvcc": "nvcc_version",
    "glibc": "glibc",
    "node": "node_version",
    "pnpm": "pnpm_version",
    "wasmpack": "wasm_pack_version",
    "sysroot": "rust_sysroot",
    "rusthost": "rust_host",
}


def parse_probe(output: str) -> HostFacts:
    text: dict[str, str] = {}
    tools: dict[str, str] = {}
    gpus: list[str] = []
    free: dict[str, int] = {}
    systemd = rustup_cargo = False
    targets: dict[str, list[str]] = {}
    installed: dict[str, InstalledBinary] = {}
    for line in output.splitlines():
        fields = line.split("\t")
        key = fields[0]
        if key in _TEXT_FACTS and len(fields) > 1:
            text[_TEXT_FACTS[key]] = fields[1].strip()
        elif key == "tool" and len(fields) >= 3:
            if fields[2]:
                tools[fields[1]] = fields[2]
        elif key == "gpu" and len(fields) > 1 and fields[1].strip():
            gpus.append(fields[1].strip())
        elif key == "disk" and len(fields) >= 3 and fields[2].strip().isdigit():
            free[fields[1]] = int(fields[2].strip())
        elif key == "systemd" and len(fields) > 1:
            systemd = fields[1] == "yes"
        elif key == "rustupcargo" and len(fields) > 1:
            rustup_cargo = fields[1] == "yes"
        elif key == "target" and len(fields) >= 3 and fields[1] and fields[2]:
            targets.setdefault(fields[1], []).append(fields[2])
        elif key == "item" and len(fields) >= 6:
            name, kind, link, sha, rec = fields[1:6]
            installed[name] = InstalledBinary(
                name=name,
                kind=kind if kind in ("symlink", "file") else "missing",  # type: ignore[arg-type]
                link=link,
                sha256=sha if sha not in ("", "-") else None,
                receipt=_decode_receipt(rec),
            )
    return HostFacts(
        tools=tools,
        installed=installed,
        gpus=tuple(gpus),
        free_kib=free,
        systemd_user=systemd,
        rustup_cargo=rustup_cargo,
        sysroot_targets=tuple(targets.pop("-", [])),
        rustup_toolchains={name: tuple(ts) for name, ts in targets.items()},
        **text,
    )


def _decode_receipt(encoded: str) -> dict[str, Any] | None:
    """The inventory's receipt field: the receipt's one line of JSON as it is (it opens with
    "{", which base64 never does), else its base64."""
    if not encoded:
        return None
    try:
        value = json.loads(encoded if encoded.startswith("{") else base64.b64decode(encoded))
    except (binascii.Error, ValueError):
        return None
    return value if isinstance(value, dict) else None


def parse_ls_remote(output: str) -> dict[str, str]:
    """`<sha>\\t<ref>` lines -> {ref: sha}; a peeled tag (`ref^{}`) replaces the tag object.
    The ids are as the host printed them: `plan.commit_in_listing` accepts only commit ids."""
    refs: dict[str, str] = {}
    for line in output.splitlines():
        sha, _, ref = line.partition("\t")
        if not ref:
            continue
        if ref.endswith("^{}"):
            refs[ref[:-3]] = sha
        else:
            refs.setdefault(ref, sha)
    return refs


def parse_fields(output: str) -> dict[str, str]:
    """`key\\tvalue` lines (the job scripts' output)."""
    out: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition("\t")
        if sep:
            out[key] = value
    return out


def phase_seconds(times: str) -> dict[str, float]:
    """`clone 1.0;build 1.5;end 3.0;` (phase start stamps) -> {clone: 0.5, build: 1.5}."""
    stamps: list[tuple[str, float]] = []
    for item in times.split(";"):
        name, _, stamp = item.strip().partition(" ")
        try:
            stamps.append((name, float(stamp)))
        except ValueError:
            continue
    return {
        name: round(max(0.0, nxt - start), 3)
        for (name, start), (_, nxt) in itertools.pairwise(stamps)
    }


STOPPED = 124  # the exit status kill_job.sh records


@dataclass(frozen=True)
class BuildJob:
    """A detached build job on a host, as JOBS lists it (see build_job.sh)."""

    job: str  # its directory, relative to the home
    state: Literal["running", "built", "failed", "lost"]  # lost: neither running nor ended
    exit_status: int | None
    phase: str  # lock, clone, build or install ("" before the first)
    age: int | None  # seconds since it started, by the host's clock
    holder: str  # `<stack>/<resource> (<label>) since <time>`, as the job recorded it
    binary: str

    @property
    def label(self) -> str:
        """`worker gpu-host/cpu`, as errors name the resource (else what the holder says)."""
        _, open_paren, rest = self.holder.partition(" (")
        return rest.split(")", 1)[0] if open_paren and ")" in rest else self.holder or "a build"

    @property
    def stack(self) -> str:
        return self.holder.split("/", 1)[0] if "/" in self.holder else ""

    def progress(self) -> str:
        """`for 2m 05s, phase build`."""
        age = f"for {duration(self.age)}, " if self.age is not None else ""
        return f"{age}phase {self.phase or 'starting'}"

    def summary(self) -> str:
        """`worker gpu-host/cpu: llm-worker-rbee-cpu running (for 2m 05s, phase build)`."""
        what = self.binary or "a binary"
        if self.state == "running":
            return f"{self.label}: {what} running ({self.progress()})"
        if self.state == "built":
            return f"{self.label}: {what} built, not installed yet (the next `up` installs it)"
        if self.state == "failed":
            # 124: killed (`rbee-infra builds --stop`, or rbee:buildTimeout)
            how = "stopped" if self.exit_status == STOPPED else "failed"
            where = f" in phase {self.phase}" if self.phase else ""
            return (f"{self.label}: {what} {how} (exit {self.exit_status}){where}; the next "
                    "`up` builds it again")
        return f"{self.label}: {what} lost (it neither runs nor ended: killed, or a reboot)"


def duration(seconds: int) -> str:
    """42 -> `42s`, 125 -> `2m 05s`, 3720 -> `1h 02m`."""
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def parse_jobs(output: str) -> list[BuildJob]:
    """JOBS's lines -> one BuildJob each."""
    jobs: list[BuildJob] = []
    for line in output.splitlines():
        fields = line.split("\t")
        if fields[0] != "job" or len(fields) < 7:
            continue
        job, state, phase, started, now = fields[1:6]
        holder, binary = (fields[6], fields[7] if len(fields) > 7 else "")
        code: int | None = None
        kind: Literal["running", "built", "failed", "lost"] = "lost"
        if state == "running":
            kind = "running"
        elif state.startswith("exit "):
            value = state.removeprefix("exit ").strip()
            code = int(value) if value.lstrip("-").isdigit() else None
            kind = "built" if code == 0 else "failed"
        age = int(now) - int(started) if started.isdigit() and now.isdigit() else None
        jobs.append(BuildJob(job, kind, code, phase, age, holder, binary))
    return jobs


def parse_artifacts(output: str) -> list[tuple[str, str, dict[str, Any]]]:
    """ARTIFACTS's lines -> (cache key, the binary's sha256 now, its build.json)."""
    found: list[tuple[str, str, dict[str, Any]]] = []
    for line in output.splitlines():
        fields = line.split("\t")
        if fields[0] != "artifact" or len(fields) != 4:
            continue
        try:
            meta = json.loads(base64.b64decode(fields[3]).decode())
        except (binascii.Error, ValueError):
            continue
        if isinstance(meta, dict):
            found.append((fields[1], fields[2], meta))
    return found
