"""The exception tree. Every message names the host alias and the phase that failed."""

from __future__ import annotations

PHASES = (
    "check",
    "connect",
    "probe",
    "preflight",
    "toolchain",
    "lock",
    "resolve",
    "clone",
    "deps",
    "build",
    "download",
    "upload",
    "install",
    "verify",
    "activate",
    "service",
    "remove",
)


class RbeeError(Exception):
    """Base of every error rbee-infra raises on purpose."""


class ConfigError(RbeeError, ValueError):
    """Invalid configuration: raised before any host is touched."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = [f"{path}: {reason}" if path else reason for path, reason in problems]
        super().__init__("invalid configuration:\n  " + "\n  ".join(lines))


class HostError(RbeeError):
    """Something failed on (or on the way to) one host."""

    def __init__(self, host: str, phase: str, message: str) -> None:
        self.host = host
        self.phase = phase
        self.message = message
        super().__init__(f"{host}: {phase} failed: {message}")


class ConnectError(HostError):
    """The host could not be reached (refused, timed out, connection lost). Transient."""

    def __init__(self, host: str, message: str, *, phase: str = "connect") -> None:
        super().__init__(host, phase, message)


class PhaseTimeout(HostError):
    """A remote step outlived its time budget."""

    def __init__(self, host: str, phase: str, seconds: float) -> None:
        super().__init__(host, phase, f"timed out after {seconds:.0f}s")


class AuthError(HostError):
    """The host refused our credentials. Never retried."""

    def __init__(self, host: str, message: str) -> None:
        super().__init__(host, "connect", message)


class HostKeyError(HostError):
    """The host key is unknown or changed. Never retried, never silently accepted."""

    def __init__(self, host: str, message: str) -> None:
        super().__init__(host, "connect", message)


class CommandError(HostError):
    """A remote command exited non-zero: `hive gpu-host: build failed (exit 101): <what>` and
    the last lines of its stderr."""

    def __init__(
        self, host: str, phase: str, exit_status: int | None, stderr_tail: str, summary: str = ""
    ) -> None:
        self.exit_status = exit_status
        self.stderr_tail = stderr_tail
        self.summary = summary
        code = "no exit status" if exit_status is None else f"exit {exit_status}"
        body = "\n".join(part for part in (summary, stderr_tail) if part)
        super().__init__(host, phase, body)
        self.args = (f"{host}: {phase} failed ({code})" + (f": {body}" if body else ""),)

    def __str__(self) -> str:
        return str(self.args[0])


class RefMoved(CommandError):
    """The host's fetch of a ref got another commit than the one resolved for it: nothing was
    built (`git.stage` asks the host once more)."""

    EXIT = 3  # build_job.sh's exit status for it

    def __init__(self, host: str, ref: str, expected: str, fetched: str, why: str = "") -> None:
        self.expected = expected
        self.fetched = fetched
        message = f"{ref} moved: expected {expected}, fetched {fetched}"
        super().__init__(host, "clone", self.EXIT, why, message)


class VerifyError(HostError):
    """The freshly built binary passed no check: `--version`, `--help`, or the configured one
    (see `decide/verify`)."""

    def __init__(self, host: str, message: str) -> None:
        super().__init__(host, "verify", message)
