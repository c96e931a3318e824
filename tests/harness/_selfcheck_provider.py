"""A file-writing dynamic provider used only to check the engine driver.

Inputs: dir, name, content; optional: count (number), sleep (s), fail_create, fail_update,
fail_delete (bool), dbr (delete-before-replace), token (secret-ish). The file is dir/name.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)
from pulumi.output import Unknown


def _outs(props: dict[str, Any], path: Path) -> dict[str, Any]:
    outs: dict[str, Any] = {
        "path": str(path),
        "content": props["content"],
        "size": len(props["content"]),
        "name": props["name"],
        "dir": props["dir"],
    }
    if "count" in props:
        outs["count"] = props["count"]
        outs["count_type"] = type(props["count"]).__name__
    if "token" in props:
        outs["token"] = props["token"]
    return outs


def _nap(props: dict[str, Any]) -> None:
    if props.get("sleep"):
        time.sleep(float(props["sleep"]))


class FileProvider(ResourceProvider):
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        for key in ("dir", "name", "content"):
            if not isinstance(news.get(key), (str, Unknown)):
                failures.append(CheckFailure(key, f"{key} must be a string"))
        return CheckResult(news, failures)

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in ("dir", "name") if olds.get(k) != news.get(k)]
        changed = replaces + [k for k in ("content", "count", "token")
                              if olds.get(k) != news.get(k)]
        return DiffResult(
            changes=bool(changed),
            replaces=replaces,
            delete_before_replace=bool(news.get("dbr")),
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        _nap(props)
        if props.get("fail_create"):
            raise RuntimeError(f"create refused for {props['name']}")
        path = Path(props["dir"]) / props["name"]
        if path.exists():
            raise FileExistsError(f"{path} already exists")
        path.write_text(props["content"])
        return CreateResult(str(path), _outs(props, path))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        _nap(news)
        if news.get("fail_update"):
            raise RuntimeError(f"update refused for {news['name']}")
        path = Path(id_)
        path.write_text(news["content"])
        return UpdateResult(_outs(news, path))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        if Path(props["dir"], ".fail-delete").exists():
            raise RuntimeError(f"delete refused for {props['name']}")
        Path(id_).unlink(missing_ok=True)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        path = Path(id_)
        if not path.exists():
            return ReadResult(None, {})
        outs = dict(props)
        outs["content"] = path.read_text()
        outs["size"] = len(outs["content"])
        return ReadResult(id_, outs)
