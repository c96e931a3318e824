"""The stack config file (`<project>/stacks/Pulumi.<stack>.yaml`): find, read, update.

Only `config["rbee:hives"]` is ever replaced; every other key (other `rbee:*` settings,
other namespaces, `encryptionsalt`, `secretsprovider`) is written back unchanged.
YAML comments are not preserved (the file is re-serialized).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

from rbee_infra.base.errors import ConfigError

NAMESPACE = "rbee"
HIVES_KEY = f"{NAMESPACE}:hives"
DEFAULT_STACK = "dev"
_STACK = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
# Config values that are Pulumi secrets: unreadable without the Pulumi engine.
SECRET_KEYS = ("sshPrivateKey", "sshPrivateKeyPassword")


def check_stack_name(stack: str) -> str:
    if not _STACK.fullmatch(stack) or stack in (".", ".."):
        raise ConfigError(
            [("--stack", f"{stack!r} is not a stack name (letters, digits, '_', '.', '-')")]
        )
    return stack


def find_project_dir(start: Path) -> Path | None:
    """The nearest directory at or above `start` holding a Pulumi.yaml."""
    for candidate in (start, *start.parents):
        if (candidate / "Pulumi.yaml").is_file():
            return candidate
    return None


def _project_settings(project_dir: Path) -> dict[str, Any]:
    path = project_dir / "Pulumi.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise ConfigError([(str(path), f"cannot be read: {error.strerror}")]) from None
    except yaml.YAMLError as error:
        raise ConfigError([(str(path), f"not valid YAML: {error}")]) from None
    if not isinstance(data, dict):
        raise ConfigError([(str(path), "expected a mapping")])
    return data


def stack_file(project_dir: Path, stack: str) -> Path:
    settings = _project_settings(project_dir)
    config_dir = settings.get("stackConfigDir") or "."
    return project_dir / str(config_dir) / f"Pulumi.{check_stack_name(stack)}.yaml"


def load(path: Path) -> dict[str, Any]:
    """The whole stack file as a mapping ({} when the file does not exist yet)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise ConfigError([(str(path), f"cannot be read: {error.strerror}")]) from None
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ConfigError([(str(path), f"not valid YAML: {error}")]) from None
    if not isinstance(doc, dict):
        raise ConfigError([(str(path), "expected a mapping with a 'config' key")])
    config = doc.get("config")
    if config is not None and not isinstance(config, dict):
        raise ConfigError([(f"{path}: config", "expected a mapping of config keys")])
    return doc


def with_hives(doc: dict[str, Any], hives: list[dict[str, Any]]) -> dict[str, Any]:
    """A copy of the stack document with `rbee:hives` replaced (key order kept)."""
    config = dict(doc.get("config") or {})
    config[HIVES_KEY] = hives
    return {**doc, "config": config}


def dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True)


def write(path: Path, doc: dict[str, Any]) -> None:
    """Atomic replace: a crash leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(dump(doc))
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _is_secure(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def _without_secure(value: Any, path: str, found: list[str]) -> Any:
    """A copy of `value` minus nested secrets (`pulumi config set --secret --path ...`)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if _is_secure(item):
                found.append(f"{path}.{key}")
            else:
                out[key] = _without_secure(item, f"{path}.{key}", found)
        return out
    if isinstance(value, list):
        return [_without_secure(item, f"{path}[{i}]", found) for i, item in enumerate(value)]
    return value


def fleet_data(doc: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`rbee:*` config -> the dict `parse_fleet` takes, plus the paths of secrets left out
    (`sshPrivateKey`, `hives[0].connection.privateKey`).

    Secret values (`secure: v1:...`) are encrypted by Pulumi and cannot be read here.
    """
    data: dict[str, Any] = {}
    secrets: list[str] = []
    for key, value in (doc.get("config") or {}).items():
        namespace, _, name = str(key).partition(":")
        if namespace != NAMESPACE or not name:
            continue
        if _is_secure(value):
            secrets.append(name)
            continue
        data[name] = _without_secure(value, name, secrets)
    return data, secrets
