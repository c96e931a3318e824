"""The state file: resources, pending deletes and pending operations, secrets encrypted."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from .engine_types import StateEntry

SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


@dataclass
class Res:
    name: str
    urn: str
    type: str
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    depends_on: list[str]
    secret_inputs: set[str] = field(default_factory=set)
    secret_outputs: set[str] = field(default_factory=set)

    def entry(self) -> StateEntry:
        return StateEntry(self.name, self.id, self.urn, self.type, dict(self.inputs),
                          dict(self.outputs), list(self.depends_on),
                          frozenset(self.secret_inputs), frozenset(self.secret_outputs))


class Crypter:
    def __init__(self, key_path: Path) -> None:
        if not key_path.exists():
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key())
        self.fernet = Fernet(key_path.read_bytes().strip())

    def seal(self, props: dict[str, Any], secret: set[str]) -> dict[str, Any]:
        return {
            k: {SECRET_SIG_KEY: SECRET_SIG,
                "ciphertext": self.fernet.encrypt(json.dumps(v).encode()).decode()}
            if k in secret else v
            for k, v in props.items()
        }

    def open(self, props: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
        out: dict[str, Any] = {}
        secret: set[str] = set()
        for k, v in props.items():
            if isinstance(v, dict) and v.get(SECRET_SIG_KEY) == SECRET_SIG:
                out[k] = json.loads(self.fernet.decrypt(v["ciphertext"].encode()))
                secret.add(k)
            else:
                out[k] = v
        return out, secret


@dataclass
class State:
    resources: dict[str, Res] = field(default_factory=dict)
    pending_deletes: list[Res] = field(default_factory=list)
    pending_operations: list[dict[str, Any]] = field(default_factory=list)


class StateFile:
    def __init__(self, path: Path, key_path: Path) -> None:
        self.path = path
        self.crypter = Crypter(key_path)

    def load(self) -> State:
        st = State()
        if not self.path.exists():
            return st
        raw = json.loads(self.path.read_text())
        for item in raw.get("resources", []):
            res = self._res_from_json(item)
            st.resources[res.name] = res
        st.pending_deletes = [self._res_from_json(i) for i in raw.get("pending_deletes", [])]
        st.pending_operations = list(raw.get("pending_operations", []))
        return st

    def _res_from_json(self, item: dict[str, Any]) -> Res:
        inputs, sin = self.crypter.open(item.get("inputs", {}))
        outputs, sout = self.crypter.open(item.get("outputs", {}))
        return Res(item["name"], item["urn"], item["type"], item["id"], inputs, outputs,
                   list(item.get("depends_on", [])), sin, sout)

    def res_to_json(self, res: Res, *, delete: bool = False) -> dict[str, Any]:
        item: dict[str, Any] = {
            "name": res.name, "urn": res.urn, "type": res.type, "id": res.id,
            "custom": True,
            "inputs": self.crypter.seal(res.inputs, res.secret_inputs),
            "outputs": self.crypter.seal(res.outputs, res.secret_outputs),
            "depends_on": list(res.depends_on),
        }
        if delete:
            item["delete"] = True
        return item

    def save(self, state: State, stack: str, project: str) -> None:
        order = topo_order({n: set(r.depends_on) for n, r in state.resources.items()})
        data = {
            "version": 3,
            "stack": stack,
            "project": project,
            "resources": [self.res_to_json(state.resources[n]) for n in order],
            "pending_deletes": [self.res_to_json(r, delete=True) for r in state.pending_deletes],
            "pending_operations": state.pending_operations,
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        os.replace(tmp, self.path)


def topo_order(deps: dict[str, set[str]]) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()

    def visit(n: str, stack: tuple[str, ...] = ()) -> None:
        if n in seen or n in stack:
            return
        for d in sorted(deps.get(n, ())):
            if d in deps:
                visit(d, (*stack, n))
        seen.add(n)
        order.append(n)

    for n in sorted(deps):
        visit(n)
    return order
