"""Hostile strings in every string input: each is rejected by validation (naming the field) or
reaches a real host as one literal argument, never as shell syntax."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rbee_infra.base.errors import ConfigError
from rbee_infra.config.fleet import parse_fleet
from rbee_infra.config.spec import Connection
from rbee_infra.host.ssh import connect
from tests.harness.hosts import HarnessUnavailable, HostSet, start_hosts
from tests.metrics import record

pytestmark = pytest.mark.hosts

ECHO_ARGS = 'for a in "$@"; do printf "%s\\0" "$a"; done; touch "$HOME/echo-ran"'
SHELLISH = list("$`;&|<>(){}[]*?!~#'\"\\ \t\n\0-./%")
PAYLOADS = ["$(id)", "`id`", "../", "--", "-o", "%s", "a; touch pwned", "x' || touch 'y"]
hostile = st.one_of(
    st.text(
        alphabet=st.one_of(st.sampled_from(SHELLISH), st.characters(exclude_categories=("Cs",))),
        min_size=1,
        max_size=30,
    ),
    st.builds(lambda a, p, b: a + p + b, st.text(max_size=5), st.sampled_from(PAYLOADS),
              st.text(max_size=5)),
)

BASE: dict[str, Any] = {
    "hives": [
        {
            "alias": "gpu-host",
            "hostname": "127.0.0.1",
            "sshUser": "rbee",
            "installMethod": {"git": {"repo": "https://example.org/r.git", "branch": "main"}},
            "workers": [
                {
                    "type": "cpu",
                    "features": ["cpu"],
                    "binary": "llm-worker-rbee-cpu",
                    "verify": {"args": ["--help"], "expect": "Usage:"},
                }
            ],
        }
    ]
}


def setter(*path: Any) -> Callable[[dict[str, Any], str], None]:
    def put(config: dict[str, Any], value: str) -> None:
        node = config
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return put


FIELDS: dict[str, Callable[[dict[str, Any], str], None]] = {
    "hives[0].alias": setter("hives", 0, "alias"),
    "hives[0].hostname": setter("hives", 0, "hostname"),
    "hives[0].sshUser": setter("hives", 0, "sshUser"),
    "hives[0].cargo": setter("hives", 0, "cargo"),
    "hives[0].reinstallTrigger": setter("hives", 0, "reinstallTrigger"),
    "hives[0].installMethod.git.repo": setter("hives", 0, "installMethod", "git", "repo"),
    "hives[0].installMethod.git.branch": setter("hives", 0, "installMethod", "git", "branch"),
    "hives[0].workers[0].type": setter("hives", 0, "workers", 0, "type"),
    "hives[0].workers[0].version": setter("hives", 0, "workers", 0, "version"),
    "hives[0].workers[0].binary": setter("hives", 0, "workers", 0, "binary"),
    "hives[0].workers[0].features[0]": setter("hives", 0, "workers", 0, "features", 0),
    "hives[0].workers[0].verify.args[0]": setter("hives", 0, "workers", 0, "verify", "args", 0),
    "hives[0].workers[0].verify.expect": setter("hives", 0, "workers", 0, "verify", "expect"),
}


@pytest.fixture(scope="module")
def host_set() -> Iterator[HostSet]:
    try:
        hs = start_hosts(1)
    except HarnessUnavailable as error:
        pytest.skip(str(error))
    try:
        yield hs
    finally:
        hs.close()


def echo_on_host(hs: HostSet, value: str) -> list[str]:
    host = hs.hosts[0]
    conn = Connection(
        host=host.address, port=host.port, user=host.user,
        private_key_path=str(hs.client_key_path), known_hosts=str(hs.known_hosts_path),
    )

    async def run() -> str:
        async with connect(conn, "hive fuzz") as session:
            return (await session.run(ECHO_ARGS, "before", value, "after", phase="probe")).stdout

    return asyncio.run(run()).split("\0")[:-1]


OUTCOMES = {"rejected": 0, "literal": 0}


@pytest.mark.parametrize("field", sorted(FIELDS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=hostile)
def test_hostile_value_is_rejected_or_literal(host_set: HostSet, field: str, value: str) -> None:
    config = copy.deepcopy(BASE)
    FIELDS[field](config, value)
    try:
        parse_fleet(config)
    except ConfigError as error:
        assert [path for path, _ in error.problems] == [field], error
        OUTCOMES["rejected"] += 1
        return
    assert "\0" not in value  # NUL can never be an argument, so it must have been rejected
    assert echo_on_host(host_set, value) == ["before", value, "after"]
    OUTCOMES["literal"] += 1


def test_fuzz_outcomes_recorded(host_set: HostSet) -> None:
    """Runs last in this module: the fault table gets the fuzz result."""
    host = host_set.hosts[0]
    record("fault", fault=f"hostile config values ({OUTCOMES['rejected']} rejected, "
           f"{OUTCOMES['literal']} literal)", survived=True, data_lost=0)
    assert OUTCOMES["rejected"] > 0
    # nothing any value did created a file other than our own marker
    leftovers = host.run("ls -A | grep -v -e '^\\.' -e '^echo-ran$' || true").stdout.split()
    assert leftovers == []
