"""Did an installed binary prove that it runs on its host, and which version does the install
stand for? Pure: what VERIFY printed -> a verdict.

rbee's binaries are clap programs, but not all of them answer `--version`: `rbee-hive` does,
the workers (`llm-worker-rbee-<type>`) have no clap `version` and exit 2 with a usage error.
A binary passes by the first of:

1. `--version` exits 0 and its first line names the binary (the manual routine's check);
2. `--help` exits 0 and prints a usage line (`Usage: ...`). clap names the program after
   argv[0], so this proves that the binary runs here, not which binary it is (its sha256,
   recorded in the receipt, does that);
3. instead of both, the check configured on the hive or worker (`verify: {args, expect}`):
   run with `args`, it exits 0 and prints `expect`.

VERIFY runs `--help` only when `--version` did not pass, in the same round trip.

The version an install records comes from the source where there is one: for a git build,
the version of the package that owns the binary at the built commit (`cargo metadata
--no-deps`, which the build job reads in the checkout); otherwise the `--version` line when the
binary answered it, else the release tag or the file's sha256.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from rbee_infra.config.fleet import GitSource, ReleaseSource, VerifyCheck
from rbee_infra.config.spec import InstallSpec

VERSION = "--version"
HELP = "--help"
CONFIGURED = "configured"  # VERIFY's label for a configured check's run
_USAGE = re.compile(r"^\s*usage:", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Run:
    """One run of the binary: which check, its exit status, its output (stdout and stderr)."""

    check: str
    exit_status: int | None
    output: str


@dataclass(frozen=True)
class Report:
    """What VERIFY printed: the runs in order, the binary's sha256, the cargo metadata."""

    runs: tuple[Run, ...] = ()
    sha256: str = ""
    metadata: str = ""

    def run(self, check: str) -> Run | None:
        return next((r for r in self.runs if r.check == check), None)


def parse_report(output: str) -> Report:
    runs: list[Run] = []
    sha = metadata = ""
    for line in output.splitlines():
        kind, _, rest = line.partition("\t")
        if kind == "@@run":
            fields = rest.split("\t")
            if len(fields) < 3:
                continue
            status = int(fields[1]) if fields[1].isdigit() else None
            try:
                text = base64.b64decode(fields[2]).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                text = ""
            runs.append(Run(fields[0], status, text.strip("\n")))
        elif kind == "@@sha256":
            sha = rest.strip()
        elif kind == "@@metadata":
            metadata = rest
    return Report(tuple(runs), sha, metadata)


def verify_args(check: VerifyCheck | None) -> list[str]:
    """VERIFY's trailing arguments: none for the default checks, else the configured ones."""
    return list(check.args) if check is not None else []


def check_name(check: VerifyCheck) -> str:
    """How a configured check is recorded (`verifiedBy`): `configured: --selftest --quick`."""
    return f"{CONFIGURED}: {' '.join(check.args)}"


@dataclass(frozen=True)
class Verdict:
    """`passed`: the check that passed (`--version`, `--help`, `configured: ...`), None when
    none did; `version_line`: the first line `--version` printed when that check passed;
    `failures`: why each check that ran did not pass, one line each (see `describe`)."""

    passed: str | None
    version_line: str = ""
    failures: tuple[tuple[str, int | None, str, str], ...] = ()  # command, exit, wanted, output

    @property
    def ok(self) -> bool:
        return self.passed is not None

    def describe(self, lines: int = 5) -> str:
        """`<command> exited N (expected ...): <the last lines of its output>`, one per run."""
        out = []
        for command, status, wanted, output in self.failures:
            code = "no exit status" if status is None else f"{status}"
            shown = _tail(output, lines) or "<no output>"
            out.append(f"{command} exited {code} ({wanted}): {shown}")
        return "\n".join(out) or "the binary did not run (no executable file)"

    def summary(self) -> str:
        """One line, as status shows it: `` `<command>` exited N: <first line> `` per run."""
        out = [
            f"`{command}` exited {'-' if status is None else status}: "
            f"{first_line(output) or '<no output>'}"
            for command, status, _, output in self.failures
        ]
        return "; ".join(out) or "the binary did not run (no executable file)"


def _tail(text: str, lines: int) -> str:
    kept = [line.rstrip() for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def version_names(output: str, binary: str) -> bool:
    """`--version`'s answer names the binary in its first line."""
    return binary in first_line(output)


def judge(binary: str, report: Report, check: VerifyCheck | None = None) -> Verdict:
    """Which check the binary passed, from the runs VERIFY made (see the module's rules)."""
    failures = []
    if check is not None:
        run = report.run(CONFIGURED)
        if run is not None and run.exit_status == 0 and check.expect in run.output:
            return Verdict(passed=check_name(check))
        if run is not None:
            wanted = f"expected {check.expect!r} in the output"
            command = f"{binary} {' '.join(check.args)}"
            failures.append((command, run.exit_status, wanted, run.output))
        return Verdict(passed=None, failures=tuple(failures))
    version = report.run(VERSION)
    if version is not None:
        if version.exit_status == 0 and version_names(version.output, binary):
            return Verdict(passed=VERSION, version_line=first_line(version.output))
        wanted = f"expected {binary!r} in the first line"
        failures.append((f"{binary} {VERSION}", version.exit_status, wanted, version.output))
    usage = report.run(HELP)
    if usage is not None:
        if usage.exit_status == 0 and _USAGE.search(usage.output):
            return Verdict(passed=HELP)
        wanted = "expected a usage line"
        failures.append((f"{binary} {HELP}", usage.exit_status, wanted, usage.output))
    return Verdict(passed=None, failures=tuple(failures))


def package_version(metadata: str, binary: str) -> tuple[str, str] | None:
    """(package name, version) of the package whose bin target is `binary`, from `cargo
    metadata --no-deps --format-version 1`; None when it is not there."""
    try:
        data: Any = json.loads(metadata)
    except ValueError:
        return None
    packages = data.get("packages") if isinstance(data, dict) else None
    for package in packages if isinstance(packages, list) else []:
        if not isinstance(package, dict):
            continue
        for target in package.get("targets") or []:
            if (
                isinstance(target, dict)
                and target.get("name") == binary
                and "bin" in (target.get("kind") or [])
            ):
                name, version = package.get("name"), package.get("version")
                if isinstance(name, str) and isinstance(version, str):
                    return name, version
    return None


def installed_version(spec: InstallSpec, verdict: Verdict, version_key: str, metadata: str) -> str:
    """The version an install records and shows (`version_key`: the commit, or the sha256 of
    a release asset or local file)."""
    if isinstance(spec.source, GitSource):
        package = package_version(metadata, spec.binary) if metadata else None
        art = spec.artifact  # shipped from a build elsewhere, which read the package there
        if package is None and art is not None and art.package and art.version:
            package = (art.package, art.version)
        if package is not None:
            return f"{package[0]} {package[1]}"
    if verdict.version_line:
        return verdict.version_line
    if isinstance(spec.source, GitSource):
        return f"{spec.binary} {version_key[:12]}"
    if isinstance(spec.source, ReleaseSource):
        return f"{spec.binary} {spec.source.tag}"
    return f"{spec.binary} sha256:{version_key[:12]}"


def recorded_version_line(receipt: dict[str, Any]) -> str | None:
    """The `--version` line an install saw, to compare with what the binary says now: a
    receipt with `verifiedBy` keeps it as `versionOutput` (absent when `--version` did not
    answer); an older receipt's `version` was that line."""
    line = receipt.get("versionOutput") if "verifiedBy" in receipt else receipt.get("version")
    return line if isinstance(line, str) else None
