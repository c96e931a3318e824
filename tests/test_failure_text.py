"""What the operator reads of a failure: the useful tail of a build log, and an expected
error reaching the engine as its message alone (the SDK's server wrapper, in-process)."""

from __future__ import annotations

import sys
import traceback
import types
from pathlib import Path

import pytest

from rbee_infra.base.errors import CommandError, HostError
from rbee_infra.decide.failure import useful_tail
from rbee_infra.stack import provider_server

pytestmark = pytest.mark.unit

LOGS = Path(__file__).parent / "data" / "build_logs"
PANIC = 'Failed to build rbee-hive-sdk: Os { code: 2, kind: NotFound, message: "No such file or directory" }'


def test_rbee_build_script_failure_shows_cargo_error_and_the_panic() -> None:
    # recorded shape of rbee's hive build without pnpm: 100+ rerun directives around the panic
    shown = useful_tail((LOGS / "rbee-build-script.log").read_text()).splitlines()
    assert [line.strip() for line in shown] == [
        "warning: rbee-hive@0.1.0: rbee-hive-sdk: building the web UI with pnpm",
        "error: failed to run custom build command for `rbee-hive v0.1.0 "
        "(/home/vince/.local/share/rbee/build/5f0c3a9e1b2d4c6f/checkout/bin/20_rbee_hive)`",
        "Caused by:",
        "process didn't exit successfully: `/home/vince/.local/share/rbee/build/"
        "5f0c3a9e1b2d4c6f/target/release/build/rbee-hive-3c1b2e4f5a6d7e8f/build-script-build` "
        "(exit status: 101)",
        "cargo:warning=rbee-hive-sdk: building the web UI with pnpm",
        "thread 'main' panicked at bin/20_rbee_hive/build.rs:57:10:",
        PANIC,
    ]


def test_fixture_build_script_failure_from_current_cargo() -> None:
    # what the fixture's `build-script` branch made cargo 1.95 print (panic lines name the thread id)
    shown = useful_tail((LOGS / "fixture-build-script.log").read_text())
    assert "cargo:rerun-if" not in shown and "== build" not in shown
    assert "error: failed to run custom build command for `rbee-hive v0.2.0" in shown
    assert "thread 'main' (13743) panicked at bin/rbee-hive/build.rs:17:10:" in shown
    assert shown.splitlines()[-1].strip() == PANIC


def test_a_compile_error_keeps_rustc_s_whole_message() -> None:
    shown = useful_tail((LOGS / "compile-error.log").read_text()).splitlines()
    assert shown[0] == "error[E0308]: mismatched types"
    assert shown[1].strip() == "--> bin/rbee-hive/src/main.rs:65:18"
    assert '65 |     let n: u32 = "this does not compile";' in shown
    assert shown[-1] == 'error: could not compile `rbee-hive` (bin "rbee-hive") due to 1 previous error'
    assert not any(line.lstrip().startswith("Compiling") for line in shown)


def test_the_budget_goes_to_errors_first_then_to_the_last_lines() -> None:
    log = "\n".join(
        [f"chatter {n}" for n in range(30)]
        + ["error: the first", "Caused by:", "  the cause", "  more of it", "", "  after a gap"]
        + [f"late {n}" for n in range(30)]
    )
    shown = useful_tail(log, limit=8).splitlines()
    assert shown == [
        "error: the first", "Caused by:", "  the cause", "  more of it",
        "late 26", "late 27", "late 28", "late 29",
    ]
    # more error lines than the budget: the first ones and the last one
    many = "\n".join(f"error[E0425]: cannot find value `x{n}`" for n in range(30))
    kept = useful_tail(many, limit=5).splitlines()
    assert kept == [*(f"error[E0425]: cannot find value `x{n}`" for n in range(4)),
                    "error[E0425]: cannot find value `x29`"]
    # a short log is shown whole, without its noise
    assert useful_tail("== clone\nfatal: couldn't find remote ref refs/heads/nope\n\n") == (
        "fatal: couldn't find remote ref refs/heads/nope"
    )


# --- the provider server's traceback, in-process -------------------------------------------


def _fake_server(name: str) -> types.ModuleType:
    """A module shaped like the SDK's server: its wrapper formats with its global `traceback`."""
    module = types.ModuleType(name)
    exec(  # the SDK's wrapper, as pulumi/dynamic/__main__.py writes it
        "import traceback\n"
        "class DynamicResourceProviderServicer: pass\n"
        "def _abort_with_traceback(fn):\n"
        "    def wrapper():\n"
        "        try:\n"
        "            return fn()\n"
        "        except Exception:\n"
        "            return traceback.format_exc()\n"
        "    return wrapper\n",
        module.__dict__,
    )
    return module


@pytest.mark.parametrize("name", provider_server.SERVER_MODULES)
def test_an_expected_error_is_its_message_and_a_bug_keeps_its_traceback(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = _fake_server(name)
    monkeypatch.setitem(sys.modules, name, server)
    if name != "__main__":  # the test process's own __main__ is no server
        assert provider_server.server_module() is server
    assert provider_server.quiet_expected_errors()
    assert provider_server.quiet_expected_errors()  # idempotent: wrapped once
    assert server.traceback.real is traceback

    def build() -> None:
        raise CommandError("hive acc1", "build", 101, "the tail", "cargo build --release --bin rbee-hive")

    def bug() -> None:
        raise KeyError("oops")

    wrap = server._abort_with_traceback
    assert wrap(build)() == (
        "hive acc1: build failed (exit 101): cargo build --release --bin rbee-hive\nthe tail"
    )
    assert wrap(lambda: (_ for _ in ()).throw(HostError("hive a", "lock", "held")))() == (
        "hive a: lock failed: held"
    )
    shown = wrap(bug)()
    assert shown.startswith("Traceback (most recent call last):") and "KeyError: 'oops'" in shown


def test_no_server_no_change(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = types.ModuleType("__main__")
    plain.traceback = traceback  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "__main__", plain)
    monkeypatch.delitem(sys.modules, "pulumi.dynamic.__main__", raising=False)
    assert provider_server.server_module() is None
    assert not provider_server.quiet_expected_errors()
    assert plain.traceback is traceback  # type: ignore[attr-defined]
