"""preview / up / destroy through the Pulumi Automation API, with no Pulumi account needed.

Backend: `--backend URL`, else `PULUMI_BACKEND_URL`, else a local file backend under the
user's data dir (`$XDG_DATA_HOME/rbee-infra/state`, default `~/.local/share/rbee-infra/state`).
Secrets: the passphrase provider. `PULUMI_CONFIG_PASSPHRASE` or `PULUMI_CONFIG_PASSPHRASE_FILE`
must be set, as the Pulumi CLI requires without a terminal; an empty passphrase is allowed only
when set on purpose (`PULUMI_CONFIG_PASSPHRASE=`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
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
    pulumi_cli()
    from pulumi import automation as auto  # imported late: `status`/`import` do not need it

    if settings.state_dir is not None:
        # only this user: with an empty passphrase (scripts/localhost.sh) the state's secrets
        # are as good as plain text
        settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    options = auto.LocalWorkspaceOptions(
        work_dir=str(project_dir), env_vars=settings.env, secrets_provider=SECRETS_PROVIDER
    )
    try:
        selected = auto.create_or_select_stack(
            stack_name=stack, work_dir=str(project_dir), opts=options
        )
        if operation == "preview":
            selected.preview(on_output=on_output, on_error=on_error)
        elif operation == "up":
            selected.up(on_output=on_output, on_error=on_error, continue_on_error=True)
        elif operation == "refresh":
            selected.refresh(
                on_output=on_output,
                on_error=on_error,
                clear_pending_creates=clear_pending_creates or None,
            )
        else:
            selected.destroy(on_output=on_output, on_error=on_error)
    except auto.CommandError as error:
        raise OperationFailed(_summary(operation, error)) from None


def _summary(operation: str, error: Exception) -> str:
    """One line; the details (per-resource errors) were streamed above."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    code = next((ln for ln in lines if ln.startswith("code:")), "")
    return f"pulumi {operation} failed" + (f" ({code})" if code else "")


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
