"""Change the commands of one test host: its sshd hands sessions a PATH of symlinks to every
command of the normal PATH except the ones named (a host without curl, wget or tar), or with
some replaced by scripts of the test's (a host whose `git` lies)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from .hosts import HOST_PATH, Host

_SETENV = re.compile(r"^SetEnv PATH=.*$", re.MULTILINE)


def _tool_dir(host: Host, without: tuple[str, ...], scripts: dict[str, str]) -> Path:
    target = host.home.parent / f"_path-{host.name}-without-{'-'.join((*without, *scripts))}"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(mode=0o755)
    for directory in reversed(HOST_PATH.split(":")):  # earlier PATH entries win
        base = Path(directory)
        if not base.is_dir():
            continue
        for entry in base.iterdir():
            if entry.name in without:
                continue
            link = target / entry.name
            if link.is_symlink():
                link.unlink()
            with contextlib.suppress(OSError):
                os.symlink(entry, link)
    for name, text in scripts.items():
        (target / name).unlink(missing_ok=True)
        (target / name).write_text(text)
        (target / name).chmod(0o755)
    return target


@contextlib.contextmanager
def host_without(host: Host, *tools: str) -> Iterator[Path]:
    """While inside, new SSH sessions to `host` find none of `tools` on PATH."""
    with _host_path(host, tools, {}) as tool_dir:
        yield tool_dir


@contextlib.contextmanager
def host_with_scripts(host: Host, scripts: dict[str, str]) -> Iterator[Path]:
    """While inside, new SSH sessions to `host` run these scripts (name -> text) for those
    commands (the real one stays at its own path, e.g. /usr/bin/git)."""
    with _host_path(host, (), scripts) as tool_dir:
        yield tool_dir


@contextlib.contextmanager
def _host_path(host: Host, without: tuple[str, ...], scripts: dict[str, str]) -> Iterator[Path]:
    original = host.sshd_config.read_text()
    tool_dir = _tool_dir(host, without, scripts)
    host.sshd_config.write_text(_SETENV.sub(f"SetEnv PATH={tool_dir}", original))
    host.stop()
    host.start()
    try:
        yield tool_dir
    finally:
        host.sshd_config.write_text(original)
        host.stop()
        host.start()
        shutil.rmtree(tool_dir, ignore_errors=True)
