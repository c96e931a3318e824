"""The operator CLI: `rbee-infra status | builds | import | export | preview | up | refresh |
destroy`.

Exit codes: 0 success (status: all in sync), 1 drift (status) or a failed Pulumi operation,
2 a host unreachable or an error (status, builds), or the Pulumi CLI missing, 3 bad
configuration, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rbee_infra.base.errors import ConfigError, RbeeError
from rbee_infra.base.redact import redact_text
from rbee_infra.config import hivesconf, stackfile
from rbee_infra.config.fleet import FleetConfig, HiveConfig, parse_fleet

EXIT_OK, EXIT_DRIFT, EXIT_ERROR, EXIT_CONFIG = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports it
DEFAULT_KEYS = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")
PROG = "rbee-infra"


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 3 (bad config), keeping 2 for unreachable hosts."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_CONFIG, f"{self.prog}: error: {message}\n")


class UsageError(ConfigError):
    def __init__(self, what: str, message: str) -> None:
        super().__init__([(what, message)])


def _print_error(message: str) -> None:
    print(f"{PROG}: {redact_text(message)}", file=sys.stderr, flush=True)


# --- argument parsing --------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--project-dir",
        type=Path,
        default=None,
        help="the rbee-infra Pulumi project (the directory holding Pulumi.yaml; "
        "default: $RBEE_INFRA_PROJECT_DIR, else the nearest one at or above the current dir)",
    )
    stack = _Parser(add_help=False)
    stack.add_argument(
        "--stack",
        "-s",
        default=None,
        help="stack name; its config is stacks/Pulumi.<stack>.yaml "
        f"(default: $RBEE_INFRA_STACK, else {stackfile.DEFAULT_STACK})",
    )
    parser = _Parser(
        prog=PROG, description="Declarative installs of rbee hives and workers over SSH."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    status = commands.add_parser(
        "status",
        parents=[common],
        help="compare every host with the config (read-only)",
        description="Probe all hosts concurrently and report, per hive and worker, what is "
        "installed against what the config asks for, and the build jobs on each host. Exit 0 "
        "in sync, 1 drift, 2 unreachable or error, 3 bad config.",
    )
    _host_options(status)
    status.add_argument("--json", action="store_true", help="print the JSON document")
    status.add_argument(
        "--no-resolve",
        action="store_true",
        help="do not ask the hosts what the git refs point at now (skips new-commit drift)",
    )

    builds = commands.add_parser(
        "builds",
        parents=[common],
        help="list the build jobs on every host; --stop stops the running ones",
        description="Builds run detached on the hosts: one an `up` started ahead and did not "
        "install (the update failed or was cancelled first) goes on, and the next `up` adopts "
        "it. This lists every host's build jobs with their age and phase; --stop stops the "
        "running ones of the stack (any stack's with --config). Exit 0, 2 a host unreachable "
        "or an error, 3 bad config.",
    )
    _host_options(builds)
    builds.add_argument("--stop", action="store_true", help="stop the running builds")

    prune = commands.add_parser(
        "prune-builds",
        parents=[common],
        help="remove builds kept in this machine's build cache (rbee:build: controller)",
        description="`destroy` never removes the build cache (builds are kept under their "
        "cache key so that a re-run or a new host does not rebuild). This removes the cached "
        "builds, and the repositories' checkouts and cargo target dirs, not built or used for "
        "--older-than days (default 0: all of them), and says how much space it freed.",
    )
    prune.add_argument("--older-than", type=float, default=0.0, metavar="DAYS")
    prune.add_argument("--dry-run", action="store_true", help="list what would go")

    imp = commands.add_parser(
        "import",
        parents=[common, stack],
        help="convert an rbee hives.conf into the stack config (rbee:hives)",
    )
    imp.add_argument("file", type=Path, help="the hives.conf to read")
    imp.add_argument(
        "--dry-run", action="store_true", help="print the new stack file instead of writing it"
    )

    exp = commands.add_parser(
        "export", parents=[common, stack], help="write the stack's hives as an rbee hives.conf"
    )
    exp.add_argument("--output", "-o", type=Path, help="file to write (default: stdout)")

    for name, text in (
        ("preview", "show what `up` would change"),
        ("up", "install or update every hive and worker"),
        ("refresh", "read every host into the stack's state (drift, pending operations)"),
        ("destroy", "remove everything this stack installed"),
    ):
        op = commands.add_parser(name, parents=[common, stack], help=text)
        op.add_argument(
            "--backend",
            help="Pulumi backend URL (default: $PULUMI_BACKEND_URL, else a local file backend "
            "under ~/.local/share/rbee-infra/state)",
        )
        op.add_argument(
            "--yes", "-y", action="store_true", help="do not ask to confirm (destroy asks)"
        )
        if name == "refresh":
            op.add_argument(
                "--clear-pending-creates",
                action="store_true",
                help="drop the creates an interrupted `up` left pending (the next `up` "
                "creates them again, joining a build still running on the host)",
            )
    return parser


def _host_options(command: argparse.ArgumentParser) -> None:
    """What status and builds take to reach the hosts."""
    source = command.add_mutually_exclusive_group()
    source.add_argument("--stack", "-s", default=None, help="read stacks/Pulumi.<stack>.yaml")
    source.add_argument("--config", type=Path, help="read an rbee hives.conf instead")
    command.add_argument(
        "--hive", action="append", metavar="ALIAS", help="only this hive (repeatable)"
    )
    command.add_argument("--key", help="SSH private key file (default: rbee:sshPrivateKeyPath)")
    command.add_argument("--known-hosts", help="known_hosts file (default: rbee:knownHosts)")
    command.add_argument(
        "--ssh-config",
        nargs="?",
        const=True,
        metavar="PATH",
        help="resolve hostnames through an OpenSSH client config (default file: ~/.ssh/config; "
        "default: rbee:sshConfig)",
    )
    command.add_argument(
        "--backend",
        help="where the stack's state is, to read the host keys it pinned under hostKeyPolicy "
        "tofu (default: as for `up`)",
    )
    command.add_argument(
        "--timeout", type=float, default=10.0, help="SSH connect timeout, seconds (default 10)"
    )


def stack_name(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    name = args.stack or environ.get("RBEE_INFRA_STACK") or stackfile.DEFAULT_STACK
    return stackfile.check_stack_name(name)


def project_dir(args: argparse.Namespace, environ: Any, cwd: Path) -> Path:
    given = args.project_dir or environ.get("RBEE_INFRA_PROJECT_DIR")
    if given:
        path = Path(given).expanduser()
        if not (path / "Pulumi.yaml").is_file():
            raise UsageError("--project-dir", f"{path} has no Pulumi.yaml")
        return path
    found = stackfile.find_project_dir(cwd)
    if found is None:
        raise UsageError(
            "--project-dir",
            "no Pulumi.yaml here or above; run from the rbee-infra project or pass --project-dir",
        )
    return found


# --- config loading ----------------------------------------------------------------------


def _display_path(path: Path, cwd: Path) -> str:
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)


def load_stack_fleet(path: Path) -> tuple[FleetConfig, list[str]]:
    if not path.is_file():
        raise UsageError(
            str(path), "no such stack config; create it with `rbee-infra import hives.conf`"
        )
    values, secrets = stackfile.fleet_data(stackfile.load(path))
    if "hives" not in values:
        raise UsageError(f"{path}: {stackfile.HIVES_KEY}", "not set")
    # the program reads other rbee:* keys itself (e.g. rbee:commands); the fleet is these
    known = {field.alias or name for name, field in FleetConfig.model_fields.items()}
    data = {k: v for k, v in values.items() if k in known}
    for name in secrets:
        if name in known:
            data[name] = "<secret>"  # present, but only Pulumi can decrypt it
    try:
        return parse_fleet(data), secrets
    except ConfigError as error:
        raise ConfigError(
            [(f"rbee:{p}" if p else str(path), r) for p, r in error.problems]
        ) from None


def load_conf(path: Path) -> tuple[list[dict[str, Any]], FleetConfig]:
    """A hives.conf -> (the rbee:hives value, the validated fleet)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(str(path), f"cannot be read: {error.strerror}") from None
    hives = hivesconf.to_stack_hives(hivesconf.parse_text(text, source=str(path)))
    return hives, hivesconf.check_stack_hives(hives)


# --- status ------------------------------------------------------------------------------


def _own_credentials(hive: HiveConfig) -> bool:
    per_hive = getattr(hive, "connection", None)
    return bool(
        per_hive is not None
        and (getattr(per_hive, "private_key", None) or getattr(per_hive, "agent_socket_path", None))
    )


def status_credentials(
    fleet: FleetConfig,
    hives: list[HiveConfig],
    args: argparse.Namespace,
    environ: Any,
    secrets: list[str],
) -> Any:
    from rbee_infra.status.collect import Credentials

    key = args.key or fleet.ssh_private_key_path
    agent = None
    if not key and (fleet.ssh_agent or args.config) and environ.get("SSH_AUTH_SOCK"):
        agent = environ["SSH_AUTH_SOCK"]
    fallback = False
    if not key and not agent and "sshPrivateKey" not in secrets:
        key = next((k for k in DEFAULT_KEYS if Path(k).expanduser().is_file()), None)
        fallback = key is not None
    if not key and not agent and not all(_own_credentials(h) for h in hives):
        keys = [s for s in secrets if s.endswith(("sshPrivateKey", "privateKey"))]
        if keys:
            raise UsageError(
                "--key",
                f"rbee:{keys[0]} is a Pulumi secret that status cannot decrypt; "
                "pass the same key as --key PATH",
            )
        raise UsageError(
            "--key", "no SSH key: pass --key PATH, set rbee:sshPrivateKeyPath, or run ssh-agent"
        )
    if key and not Path(key).expanduser().is_file():
        raise UsageError("--key" if args.key else "rbee:sshPrivateKeyPath", f"{key}: no such file")
    if args.timeout <= 0 or args.timeout > 600:
        raise UsageError("--timeout", "give seconds between 0 and 600")
    return Credentials(
        private_key_path=key,
        fallback_key=fallback,
        agent_socket_path=agent,
        known_hosts=args.known_hosts,
        host_key_policy=fleet.host_key_policy,
        connect_timeout=args.timeout,
    )


def _fleet_to_read(
    args: argparse.Namespace, environ: Any, cwd: Path
) -> tuple[FleetConfig, Any, Any]:
    """status and builds: the fleet, where its config came from, and how to reach its hosts."""
    from rbee_infra.status.model import ConfigSource

    secrets: list[str] = []
    if args.config:
        _, fleet = load_conf(args.config)
        source = ConfigSource(kind="hives.conf", stack=None, file=str(args.config))
    else:
        stack = stack_name(args, environ)
        path = stackfile.stack_file(project_dir(args, environ, cwd), stack)
        fleet, secrets = load_stack_fleet(path)
        source = ConfigSource(kind="stack", stack=stack, file=_display_path(path, cwd))
    known = [h.alias for h in fleet.hives]
    unknown = [a for a in args.hive or [] if a not in known]
    if unknown:
        raise UsageError(
            "--hive", f"no hive {unknown[0]!r} in the config (hives: {', '.join(known)})"
        )
    if args.ssh_config is not None:
        fleet = fleet.model_copy(update={"ssh_config": args.ssh_config})
    hives = [h for h in fleet.hives if not args.hive or h.alias in args.hive]
    creds = status_credentials(fleet, hives, args, environ, secrets)
    if fleet.host_key_policy == "tofu" and source.stack is not None:
        creds = dataclasses.replace(creds, pinned=_pinned_keys(args, environ, cwd, source.stack))
    return fleet, source, creds


def cmd_status(args: argparse.Namespace, environ: Any, cwd: Path) -> int:
    from rbee_infra.status import collect as status
    from rbee_infra.status import render as status_render

    fleet, source, creds = _fleet_to_read(args, environ, cwd)
    report = asyncio.run(
        status.collect(
            fleet, source=source, creds=creds, aliases=args.hive, resolve=not args.no_resolve
        )
    )
    if args.json:
        print(report.to_json(), flush=True)
    else:
        status_render.render(report)
    return report.summary.exit_code


def cmd_builds(args: argparse.Namespace, environ: Any, cwd: Path) -> int:
    from rbee_infra.status import collect as status

    fleet, source, creds = _fleet_to_read(args, environ, cwd)
    found = asyncio.run(
        status.builds(fleet, creds=creds, aliases=args.hive, stop=args.stop, stack=source.stack)
    )
    for host in found:
        where = f"hive {', '.join(host.aliases)} ({host.where})"
        for job in host.stopped:
            print(f"{where}: stopped {job.label}: {job.binary} (it was running {job.progress()})",
                  flush=True)
        if host.error:
            print(f"{where}: {redact_text(host.error)}", flush=True)
        elif not host.jobs:
            print(f"{where}: no build jobs", flush=True)
        for job in host.jobs:
            whose = f" [stack {job.stack}]" if job.stack and job.stack != source.stack else ""
            print(f"{where}: {job.summary()}{whose}", flush=True)
    return EXIT_ERROR if any(host.error for host in found) else EXIT_OK


def cmd_prune_builds(args: argparse.Namespace, environ: Any, cwd: Path) -> int:
    from rbee_infra.install import cache

    gone = cache.prune(args.older_than, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for cached in gone:
        print(f"{verb} {cached.what}: {cached.size / 1e6:.1f} MB, {cached.age_days:.1f} days old")
    total = sum(c.size for c in gone)
    print(f"{verb} {len(gone)} cached item(s), {total / 1e6:.1f} MB", flush=True)
    return EXIT_OK


def _pinned_keys(args: argparse.Namespace, environ: Any, cwd: Path, stack: str) -> dict[str, str]:
    """The host keys the stack's state pinned (read-only, from its backend)."""
    from rbee_infra.stack import automation

    settings = automation.backend_settings(environ, backend=getattr(args, "backend", None))
    try:
        exported = automation.stack_export(project_dir(args, environ, cwd), stack, settings)
    except automation.StateUnreadable as error:
        print(
            f"{PROG}: cannot read the host keys stack {stack} pinned ({error}); "
            "checking hosts against knownHosts only",
            file=sys.stderr,
            flush=True,
        )
        return {}
    return automation.pinned_host_keys(exported)


# --- import / export ---------------------------------------------------------------------


def cmd_import(args: argparse.Namespace, environ: Any, cwd: Path) -> int:
    hives, fleet = load_conf(args.file)
    stack = stack_name(args, environ)
    path = stackfile.stack_file(project_dir(args, environ, cwd), stack)
    doc = stackfile.load(path)
    previous = (doc.get("config") or {}).get(stackfile.HIVES_KEY)
    # a token in a URL would land in plain text in the stack file (0644, usually committed)
    tokens = hivesconf.credentials_in(hives, stackfile.HIVES_KEY)
    if args.dry_run:
        shown = stackfile.with_hives(doc, hivesconf.without_credentials(hives))
        print(stackfile.dump(shown), end="", flush=True)
        for path in tokens:
            _print_error(f"{path}: {_TOKEN_NOTE}: {_secret_command(path)}")
        return EXIT_OK
    if tokens:
        raise ConfigError([(path, f"{_TOKEN_NOTE}: {_secret_command(path)}") for path in tokens])
    new = stackfile.with_hives(doc, hives)
    stackfile.write(path, new)
    aliases = ", ".join(h.alias for h in fleet.hives)
    kept = len(new["config"]) - 1
    what = "replaced" if previous is not None else "set"
    print(
        f"{what} {stackfile.HIVES_KEY} in {_display_path(path, cwd)}: "
        f"{len(fleet.hives)} hive(s) ({aliases}); {kept} other config key(s) kept",
        flush=True,
    )
    return EXIT_OK


_TOKEN_NOTE = (
    "carries a credential, which import never writes in plain text; import the file without "
    "it, then set it as a secret"
)


def _secret_command(path: str) -> str:
    return f"pulumi config set --secret --path '{path}' '<url>'"


def cmd_export(args: argparse.Namespace, environ: Any, cwd: Path) -> int:
    stack = stack_name(args, environ)
    path = stackfile.stack_file(project_dir(args, environ, cwd), stack)
    fleet, _ = load_stack_fleet(path)
    text = hivesconf.to_text(fleet)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        print(text, end="", flush=True)
    return EXIT_OK


# --- preview / up / destroy --------------------------------------------------------------


def _confirm(stack: str) -> bool:
    if not sys.stdin.isatty():
        raise UsageError("--yes", "destroy needs --yes when not run from a terminal")
    answer = input(f"Remove every rbee install of stack {stack!r} from its hosts? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def cmd_operation(args: argparse.Namespace, environ: Any, cwd: Path) -> int:
    from rbee_infra.stack import automation

    stack = stack_name(args, environ)
    project = project_dir(args, environ, cwd)
    path = stackfile.stack_file(project, stack)
    if args.command != "destroy":
        load_stack_fleet(path)  # fail before Pulumi (and any host) on bad config
    automation.pulumi_cli()
    if args.command == "destroy" and not args.yes and not _confirm(stack):
        _print_error("destroy cancelled")
        return EXIT_CONFIG
    settings = automation.backend_settings(environ, backend=args.backend)
    if settings.passphrase_missing:
        # never encrypt secrets with an empty passphrase nobody chose (Pulumi's CLI refuses too)
        raise UsageError(
            "PULUMI_CONFIG_PASSPHRASE",
            "not set: it encrypts this stack's secrets; set it (or PULUMI_CONFIG_PASSPHRASE_FILE), "
            "or set it empty on purpose for a stack without secrets (PULUMI_CONFIG_PASSPHRASE=)",
        )
    print(f"{PROG}: stack {stack}, backend {settings.url}", file=sys.stderr, flush=True)
    with _cancelling_with_pulumi() as interrupted:
        try:
            automation.run(
                args.command,
                project_dir=project,
                stack=stack,
                settings=settings,
                on_output=lambda line: print(line, flush=True),
                on_error=lambda line: print(line, file=sys.stderr, flush=True),
                clear_pending_creates=getattr(args, "clear_pending_creates", False),
            )
        except automation.OperationFailed:
            if not interrupted:
                raise
        if interrupted:
            _print_error("interrupted (see `rbee-infra builds` for builds still running)")
            return EXIT_INTERRUPTED
    return EXIT_OK


@contextmanager
def _cancelling_with_pulumi() -> Iterator[list[bool]]:
    """Ctrl-C on a terminal reaches the Pulumi CLI too (it runs in our process group), which
    then cancels: it lets the running steps finish, and its provider says which builds go on.
    The first Ctrl-C therefore only marks the run interrupted, and Pulumi's output keeps
    streaming to the end; a second one stops at once (as it does Pulumi)."""
    interrupted: list[bool] = []
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return

    def on_interrupt(signum: int, frame: Any) -> None:
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(True)
        _print_error("interrupted: Pulumi is cancelling (running steps finish first); "
                     "Ctrl-C again stops at once")

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


COMMANDS = {
    "status": cmd_status,
    "builds": cmd_builds,
    "prune-builds": cmd_prune_builds,
    "import": cmd_import,
    "export": cmd_export,
    "preview": cmd_operation,
    "up": cmd_operation,
    "refresh": cmd_operation,
    "destroy": cmd_operation,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, or a usage error (exit 3)
        return int(done.code or 0)
    from rbee_infra.stack import automation

    try:
        return COMMANDS[args.command](args, os.environ, Path.cwd())
    except ConfigError as error:
        _print_error(str(error))
        return EXIT_CONFIG
    except automation.PulumiMissing as error:
        _print_error(str(error))
        return EXIT_ERROR
    except automation.OperationFailed as error:
        _print_error(str(error))
        return EXIT_DRIFT
    except RbeeError as error:
        _print_error(str(error))
        return EXIT_ERROR
    except KeyboardInterrupt:
        _print_error("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
