"""preview / up / refresh / destroy: one `pulumi` process per operation, no Pulumi account.

Backend: `--backend URL`, else `PULUMI_BACKEND_URL`, else a local file backend under the
user's data dir (`$XDG_DATA_HOME/rbee-infra/state`, default `~/.local/share/rbee-infra/state`).
Secrets: the passphrase provider. `PULUMI_CONFIG_PASSPHRASE` or `PULUMI_CONFIG_PASSPHRASE_FILE`
must be set, as the Pulumi CLI requires without a terminal; an empty passphrase is allowed only
when set on purpose (`PULUMI_CONFIG_PASSPHRASE=`).

The CLI runs directly, as an operator would run it (`pulumi up --yes --skip-preview --stack S`),
not through the Automation API, which wraps every operation in five more CLI processes (`pulumi
version`, `stack select`, `stack output` before and after, `stack history`), two of which derive
the passphrase key again. The stack is created only when it does not exist yet (on a file
backend, its state file says so without a process). The program and the dynamic provider run on
the interpreter that runs rbee-infra (`PULUMI_PYTHON_CMD`), not a version manager's shim.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Operation = Literal["preview", "up", "refresh", "destroy"]
INSTALL_URL = "https://www.pulumi.com/docs/install/"
SECRETS_PROVIDER = "passphrase"


class PulumiMissing(RuntimeError):
    def __init__(self) -> None:
        super().__init__(
            f"the Pulumi CLI (`pulumi`) is not on PATH; install it: {INSTALL_URL} "
            "(no Pulumi account is needed)"
        )


class OperationFailed(RuntimeError):
    """Pulumi ran and reported failure; its own messages were already streamed."""


@dataclass(frozen=True)
class BackendSettings:
    url: str
    env: dict[str, str]  # what the Pulumi CLI subprocess gets on top of the environment
    state_dir: Path | None  # the local state directory when the file backend is in use
    passphrase_missing: bool  # neither PULUMI_CONFIG_PASSPHRASE nor ..._FILE is set


def state_dir(environ: Mapping[str, str], home: Path) -> Path:
    data_home = environ.get("XDG_DATA_HOME") or str(home / ".local" / "share")
    return Path(data_home) / "rbee-infra" / "state"


def backend_settings(
    environ: Mapping[str, str], *, backend: str | None = None, home: Path | None = None
) -> BackendSettings:
    """Pure: which backend and secrets settings an operation runs with."""
    home = home if home is not None else Path.home()
    url = backend or environ.get("PULUMI_BACKEND_URL") or ""
    local: Path | None = None
    if not url:
        local = state_dir(environ, home)
        url = local.as_uri()
    elif url.startswith("file://"):
        local = Path(url.removeprefix("file://")).expanduser()
    env = {"PULUMI_BACKEND_URL": url, "PULUMI_SKIP_UPDATE_CHECK": "true"}
    missing = (
        "PULUMI_CONFIG_PASSPHRASE" not in environ and "PULUMI_CONFIG_PASSPHRASE_FILE" not in environ
    )
    return BackendSettings(url=url, env=env, state_dir=local, passphrase_missing=missing)


def pulumi_cli(path: str | None = None) -> str:
    found = shutil.which("pulumi", path=path)
    if found is None:
        raise PulumiMissing()
    return found


def command(operation: Operation, stack: str, *, clear_pending_creates: bool = False) -> list[str]:
    """Pure: the `pulumi` arguments of an operation. `up`, `refresh` and `destroy` skip the
    preview the CLI would run first (a whole second run of the program and the provider);
    `up` goes on past a failed resource (see `run`)."""
    args = {
        "preview": ["preview"],
        "up": ["up", "--yes", "--skip-preview", "--continue-on-error"],
        "refresh": ["refresh", "--yes", "--skip-preview"]
        + (["--clear-pending-creates"] if clear_pending_creates else []),
        "destroy": ["destroy", "--yes", "--skip-preview"],
    }[operation]
    return [*args, "--stack", stack, "--non-interactive"]


def process_env(
    environ: Mapping[str, str], settings: BackendSettings, python: str
) -> dict[str, str]:
    """Pure: the CLI's environment. The program and the provider server run on `python` (the
    interpreter running rbee-infra, where it is installed) unless PULUMI_PYTHON_CMD says
    otherwise: `python3` on PATH can be a version manager's shim, a shell script that costs
    each of the two processes ~0.1 s, or another interpreter altogether."""
    return {"PULUMI_PYTHON_CMD": python, **environ, **settings.env}


def project_name(project_dir: Path) -> str:
    import yaml

    data = yaml.safe_load((project_dir / "Pulumi.yaml").read_text(encoding="utf-8")) or {}
    return str(data.get("name") or "")


def stack_recorded(state_dir: Path, project: str, stack: str) -> bool:
    """Whether a file backend holds the stack (Pulumi's layout: `.pulumi/stacks/<project>/`,
    or `.pulumi/stacks/` in the older layout without projects)."""
    stacks = state_dir / ".pulumi" / "stacks"
    return any(
        (folder / f"{stack}{suffix}").is_file()
        for folder in (stacks / project, stacks)
        for suffix in (".json", ".json.gz")
    )


def _pump(stream: Any, sink: Callable[[str], None]) -> None:
    for line in stream:
        sink(line.rstrip("\n"))


def _stream(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    on_output: Callable[[str], None],
    on_error: Callable[[str], None],
) -> int:
    """Run the CLI, each line of its stdout and stderr to its callback; its exit code.

    Ctrl-C reaches the CLI too (the same process group, from the terminal): it then stops
    as it does on its own, cancelling or, on a second Ctrl-C, recording what it left pending.
    This process keeps reading until the CLI has exited, so that record is always written
    (the CLI would die writing to a closed pipe), and then reports the interrupt."""
    process = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    assert process.stdout is not None and process.stderr is not None
    errors = threading.Thread(target=_pump, args=(process.stderr, on_error), daemon=True)
    errors.start()
    interrupted = False
    while True:
        try:
            _pump(process.stdout, on_output)
            code = process.wait()
            errors.join()
            break
        except KeyboardInterrupt:
            interrupted = True
    if interrupted:
        raise KeyboardInterrupt
    return code


def run(
    operation: Operation,
    *,
    project_dir: Path,
    stack: str,
    settings: BackendSettings,
    on_output: Callable[[str], None],
    on_error: Callable[[str], None] | None = None,
    clear_pending_creates: bool = False,
) -> None:
    """Run one operation on the project in `project_dir`, streaming Pulumi's output.

    `up` goes on past a failed resource (Pulumi's `--continue-on-error`): one unreachable host
    must not keep the others, or the workers of a reachable hive, from being installed; the
    failures are reported together at the end and the run fails. `refresh` can clear the
    pending creates an interrupted `up` leaves in the state."""
    cli = pulumi_cli()
    errors = on_error if on_error is not None else on_output
    env = process_env(os.environ, settings, sys.executable)
    if settings.state_dir is not None:
        # only this user: with an empty passphrase (scripts/localhost.sh) the state's secrets
        # are as good as plain text
        settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        exists = stack_recorded(settings.state_dir, project_name(project_dir), stack)
        create = [] if exists else ["stack", "init", stack]
    else:  # another backend: asking it costs a process either way
        create = ["stack", "select", "--create", stack]
    if create:
        argv = [cli, *create, "--secrets-provider", SECRETS_PROVIDER, "--non-interactive"]
        code = _stream(argv, cwd=project_dir, env=env, on_output=on_output, on_error=errors)
        if code != 0:
            raise OperationFailed(f"pulumi {' '.join(create[:2])} failed (code: {code})")
    argv = [cli, *command(operation, stack, clear_pending_creates=clear_pending_creates)]
    code = _stream(argv, cwd=project_dir, env=env, on_output=on_output, on_error=errors)
    if code != 0:
        # one line; the details (per-resource errors) were streamed above
        raise OperationFailed(f"pulumi {operation} failed (code: {code})")


class StateUnreadable(RuntimeError):
    """The stack's state could not be read (no CLI, no such stack, backend unreachable)."""


def stack_export(project_dir: Path, stack: str, settings: BackendSettings) -> dict[str, Any]:
    """The stack's state as `pulumi stack export` prints it (secrets stay encrypted)."""
    try:
        cli = pulumi_cli()
    except PulumiMissing as error:
        raise StateUnreadable(str(error)) from None
    done = subprocess.run(
        [cli, "stack", "export", "--stack", stack, "--non-interactive"],
        cwd=project_dir,
        env={**os.environ, **settings.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise StateUnreadable(f"pulumi stack export: {reason}")
    exported: dict[str, Any] = json.loads(done.stdout)
    return exported


def pinned_host_keys(exported: Mapping[str, Any]) -> dict[str, str]:
    """Pure: hive alias -> the host key the stack pinned for it under hostKeyPolicy "tofu"
    (a hive's or worker's `trustedHostKey`, else the build kick-off's `trustedHostKeys`)."""
    pins: dict[str, str] = {}
    fallback: dict[str, str] = {}
    for resource in (exported.get("deployment") or {}).get("resources") or []:
        inputs = resource.get("inputs") or {}
        alias, key = inputs.get("alias"), inputs.get("trustedHostKey")
        mine = isinstance(alias, str) and isinstance(key, str) and bool(key)
        if mine and (inputs.get("component") == "hive" or alias not in pins):
            pins[alias] = key
        for alias, key in (inputs.get("trustedHostKeys") or {}).items():
            if isinstance(key, str) and key:
                fallback.setdefault(alias, key)
    return {**fallback, **pins}
