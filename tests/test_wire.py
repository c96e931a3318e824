"""The build kick-off's `hosts` on the wire: one JSON text, read back as the list it was."""

from __future__ import annotations

import pytest

from rbee_infra.base.wire import UNKNOWN_VALUE, encode_hosts, host_entries
from rbee_infra.config.spec import hosts_of

pytestmark = pytest.mark.unit


def test_the_kickoffs_hosts_read_as_text_or_as_the_list_older_state_holds() -> None:
    hosts = [{"alias": "a", "connection": {"host": "h", "password": None}, "installs": []}]
    text = encode_hosts(hosts)
    assert text == '[{"alias":"a","connection":{"host":"h"},"installs":[]}]'
    assert host_entries({"hosts": text}) == [
        {"alias": "a", "connection": {"host": "h"}, "installs": []}
    ]
    assert host_entries({"hosts": hosts}) == hosts  # state written before: a list
    assert host_entries({"hosts": UNKNOWN_VALUE}) == [] and host_entries({}) == []


def test_hosts_that_are_neither_text_nor_list_are_a_problem_named_by_the_field() -> None:
    assert host_entries({"hosts": "[{"}) is None and host_entries({"hosts": 3}) is None
    assert hosts_of({"hosts": "[{"}) == (
        [], [("hosts", "not a list of hosts, nor the JSON text of one")]
    )
