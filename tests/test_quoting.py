"""Remote commands: constant scripts, values only as positional arguments, quoted once."""

from __future__ import annotations

import shlex
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rbee_infra.host import scripts
from rbee_infra.host.ssh import script_command

pytestmark = pytest.mark.unit

HOSTILE = [
    "$(touch /tmp/rbee-pwned)",
    "`id`",
    "a; rm -rf ~",
    "x' || echo 'y",
    '"; exit 7; "',
    "-rf",
    "--upload-pack=evil",
    "line\nbreak",
    "$HOME",
    "*",
    "",
    "\\",
    "a b\tc",
]

ECHO_ARGS = 'for a in "$@"; do printf "%s\\0" "$a"; done'


def run_remote_style(command: str) -> bytes:
    """What a remote login shell does with the command string: `sh -c <string>`."""
    return subprocess.run(["sh", "-c", command], capture_output=True, check=True).stdout


def test_hostile_values_arrive_as_single_literal_arguments() -> None:
    out = run_remote_style(script_command(ECHO_ARGS, *HOSTILE))
    assert out.split(b"\0")[:-1] == [v.encode() for v in HOSTILE]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.text(
            alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\0"), max_size=40
        ),
        max_size=5,
    )
)
def test_any_text_arrives_literally(values: list[str]) -> None:
    out = run_remote_style(script_command(ECHO_ARGS, *values))
    assert out.split(b"\0")[:-1] == [v.encode() for v in values]


def test_command_is_sh_c_of_a_constant_script() -> None:
    argv = shlex.split(script_command(scripts.RESOLVE, "repo; id", "refs/heads/main"))
    assert argv[:3] == ["sh", "-c", scripts.RESOLVE]
    assert argv[3:] == ["rbee", "repo; id", "refs/heads/main"]


@pytest.mark.parametrize("name", [n for n in dir(scripts) if n.isupper() and not n.startswith("_")])
def test_every_script_is_valid_posix_sh(name: str) -> None:
    check = subprocess.run(["sh", "-n", "-c", getattr(scripts, name)], capture_output=True)
    assert check.returncode == 0, check.stderr.decode()
