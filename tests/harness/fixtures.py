"""Shared pytest fixtures; load with `pytest_plugins = ["tests.harness.fixtures"]`."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .engine import Engine
from .fixture_repo import RbeeRepo, make_rbee_repo
from .hosts import HarnessUnavailable, HostSet, check_available, start_hosts

requires_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: SSH test hosts create unix users and run sshd"
)


@contextlib.contextmanager
def running_hosts_or_skip(n: int) -> Iterator[HostSet]:
    """`n` SSH hosts for the length of the block (the test is skipped where none can run)."""
    try:
        hs = start_hosts(n)
    except HarnessUnavailable as e:
        pytest.skip(str(e))
    with hs:
        yield hs


@contextlib.contextmanager
def _served_repo() -> Iterator[RbeeRepo]:
    repo = make_rbee_repo(Path(tempfile.gettempdir()))
    try:
        yield repo
    finally:
        repo.remove()


@pytest.fixture(scope="session")
def rbee_repo() -> Iterator[RbeeRepo]:
    """The fixture Rust repo served over git:// for the whole session. Do not move its
    branches (use `fresh_rbee_repo` for that)."""
    with _served_repo() as repo:
        yield repo


@pytest.fixture
def fresh_rbee_repo() -> Iterator[RbeeRepo]:
    """A private copy of the fixture repo whose branches a test may advance."""
    with _served_repo() as repo:
        yield repo


@pytest.fixture
def hosts() -> Iterator[HostSet]:
    """Three SSH hosts (host1..host3), torn down after the test."""
    with running_hosts_or_skip(3) as hs:
        yield hs


@pytest.fixture
def hosts1() -> Iterator[HostSet]:
    """One SSH host."""
    with running_hosts_or_skip(1) as hs:
        yield hs


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine driver with its state file in tmp_path."""
    eng = Engine(tmp_path / "state" / "stack.json")
    try:
        yield eng
    finally:
        eng.close()


def harness_available() -> str | None:
    """None if SSH hosts can run here, else the reason they cannot."""
    try:
        check_available()
    except HarnessUnavailable as e:
        return str(e)
    return None
