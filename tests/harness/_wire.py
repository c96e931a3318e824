"""Property values to and from the gRPC wire, as the engine marshals them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

from google.protobuf import struct_pb2
from pulumi.output import Unknown
from pulumi.runtime import rpc

from .engine_types import Ref, Secret

UNKNOWN = rpc.UNKNOWN  # the wire value of a not-yet-known input during preview


def run_coro(coro: Any) -> Any:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def to_wire(props: dict[str, Any], secret_keys: frozenset[str] | set[str],
             accept_secrets: bool) -> struct_pb2.Struct:
    values = {
        k: rpc.wrap_rpc_secret(v) if accept_secrets and k in secret_keys else v
        for k, v in props.items()
    }
    return run_coro(rpc.serialize_properties(values, {}))


def unwrap(value: Any) -> tuple[Any, bool]:
    """Strip secret markers and Unknown objects; report whether any secret was inside."""
    if isinstance(value, Unknown):
        return UNKNOWN, False
    if rpc.is_rpc_secret(value):
        inner, _ = unwrap(rpc.unwrap_rpc_secret(value))
        return inner, True
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        secret = False
        for k, v in value.items():
            out[k], s = unwrap(v)
            secret = secret or s
        return out, secret
    if isinstance(value, list):
        items = [unwrap(v) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


def from_wire(struct: struct_pb2.Struct, keep_unknowns: bool = False
               ) -> tuple[dict[str, Any], set[str]]:
    props = rpc.deserialize_properties(struct, keep_unknowns)
    out: dict[str, Any] = {}
    secret: set[str] = set()
    for k, v in props.items():
        out[k], is_secret = unwrap(v)
        if is_secret:
            secret.add(k)
    return out, secret


def decl_inputs(value: Any) -> tuple[Any, bool]:
    """Turn Secret wrappers into plain values; report whether any was found."""
    if isinstance(value, Secret):
        inner, _ = decl_inputs(value.value)
        return inner, True
    if isinstance(value, dict):
        out = {}
        secret = False
        for k, v in value.items():
            out[k], s = decl_inputs(v)
            secret = secret or s
        return out, secret
    if isinstance(value, (list, tuple)):
        items = [decl_inputs(v) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


def refs(value: Any) -> Iterator[Ref]:
    if isinstance(value, Ref):
        yield value
    elif isinstance(value, Secret):
        yield from refs(value.value)
    elif isinstance(value, dict):
        for v in value.values():
            yield from refs(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from refs(v)


def resolve_refs(value: Any, lookup: Callable[[Ref], tuple[Any, bool]]) -> Any:
    if isinstance(value, Ref):
        v, secret = lookup(value)
        return Secret(v) if secret else v
    if isinstance(value, Secret):
        return Secret(resolve_refs(value.value, lookup))
    if isinstance(value, dict):
        return {k: resolve_refs(v, lookup) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [resolve_refs(v, lookup) for v in value]
    return value
