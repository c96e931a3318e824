"""Names and encodings on the wire between the program and its providers (both import this)."""

from __future__ import annotations

import json

# The plain inputs a Hive or Worker registers as one property (see
# `stack.resources.InstallArgs.props`). The providers read them spread out, as flat inputs
# (`decide.plan.public_props`), so state, Diff and every handler see what they saw before.
SETTINGS = "settings"
# what pulumi.dynamic hands a provider for an input a preview cannot know
UNKNOWN_VALUE = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def encode_hosts(hosts: list[dict]) -> str:
    """The build kick-off's `hosts` as the program sends them: one JSON text, one property for
    the engine to marshal and log (as a list, it logged a record per field of every install).
    A None is left out, as the SDK leaves it out of a dict it sends."""
    return json.dumps(without_none(hosts), sort_keys=True, separators=(",", ":"))


def without_none(value: object) -> object:
    """`value` without the dict keys whose value is None, at any depth."""
    if isinstance(value, dict):
        return {k: without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_none(v) for v in value]
    return value


def host_entries(props: dict) -> list | None:
    """The kick-off's `hosts` entries: its JSON text decoded, or the list in state written
    before it was one; [] when absent or not known yet (as the SDK's placeholder for a value
    a preview cannot know); None when it is neither."""
    hosts = props.get("hosts")
    if isinstance(hosts, str):
        if hosts == UNKNOWN_VALUE:
            return []
        try:
            hosts = json.loads(hosts)
        except ValueError:
            return None
    if hosts is None:
        return []
    return hosts if isinstance(hosts, list) else None

