"""`redact_text`, what every host's output passes through before it leaves a provider."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rbee_infra.base import redact
from rbee_infra.base.redact import redact_text

pytestmark = pytest.mark.unit


def _always(text: str) -> str:
    """Both patterns applied to any text (what `redact_text` skips when it cannot match)."""
    text = redact._USERINFO.sub(lambda m: f"{m['scheme'] or m['scheme2']}***@", text)
    return redact._QUERY_SECRET.sub(r"\1***", text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fetch https://tok@example.org/r.git", "fetch https://***@example.org/r.git"),
        ("ssh://git:pw@host/r.git", "ssh://***@host/r.git"),
        ("ssh://git@host/r.git stays", "ssh://git@host/r.git stays"),
        ("GET /x?token=abc&y=1", "GET /x?token=***&y=1"),
        ("item\trbee-hive\tsymlink\t" + "ab" * 32, "item\trbee-hive\tsymlink\t" + "ab" * 32),
    ],
)
def test_credentials_go_and_the_rest_stays(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from("ahps:/@=&?tokenx1 \n"), max_size=60))
def test_the_quick_path_redacts_as_the_patterns_do(text: str) -> None:
    assert redact_text(text) == _always(text)
