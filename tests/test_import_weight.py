"""Every `pulumi preview`/`up` starts the program and the provider server afresh: what they
import before their first registration and their first Check is paid on every run, for every
stack. These tests fail loudly when a heavy import creeps back into that path (the seconds are
measured by benchmark 6, not asserted here)."""

from __future__ import annotations

import pytest

from tests.harness.startup import PROGRAM_CONFIG, program_start, provider_start

# Not needed before the first registration: the host work (SSH, install steps, the provider's
# spec models), pulumi-command (only for `rbee:commands`), the status CLI and its rendering.
PROGRAM_MUST_NOT_IMPORT = (
    "pulumi_command",
    "parver",
    "asyncssh",
    "cryptography",
    "rich",
    "tomli_w",
    "rbee_infra.stack.command",
    "rbee_infra.config.spec",
    "rbee_infra.decide.plan",
    "rbee_infra.install.lifecycle",
    "rbee_infra.host.hostview",
    "rbee_infra.host.pool",
    "rbee_infra.host.ssh",
    "rbee_infra.host.remote",
    "rbee_infra.install",
    "rbee_infra.status.collect",
    "rbee_infra.status.model",
    "rbee_infra.status.render",
    "rbee_infra.config.hivesconf",
    "rbee_infra.cli",
    "rbee_infra.stack.automation",
)

# The provider server unpickles the provider classes; it needs neither the program's resource
# classes nor pulumi-command, and asyncssh only at its first connection.
PROVIDER_MUST_NOT_IMPORT = (
    "pulumi_command",
    "parver",
    "asyncssh",
    "rich",
    "tomli_w",
    "rbee_infra.stack.resources",
    "rbee_infra.stack.program",
    "rbee_infra.stack.command",
    "rbee_infra.status.collect",
    "rbee_infra.status.model",
    "rbee_infra.status.render",
    "rbee_infra.config.hivesconf",
    "rbee_infra.cli",
    "rbee_infra.stack.automation",
)


@pytest.mark.unit
def test_the_program_reaches_its_first_registration_without_heavy_imports() -> None:
    start = program_start()
    assert "rbee_infra.stack.program" in start.modules  # the probe ran the real program
    assert sorted(m for m in PROGRAM_MUST_NOT_IMPORT if m in start.modules) == []


@pytest.mark.unit
def test_a_stack_with_commands_imports_pulumi_command() -> None:
    config = {
        **PROGRAM_CONFIG,
        "rbee:commands": [{"hive": "h1", "name": "hello", "create": "echo hello"}],
    }
    start = program_start(config)
    assert "pulumi_command" in start.modules


@pytest.mark.unit
def test_the_provider_server_answers_its_first_check_without_heavy_imports() -> None:
    start, _ = provider_start()
    assert "rbee_infra.stack.providers" in start.modules  # the probe's Check ran our provider
    assert sorted(m for m in PROVIDER_MUST_NOT_IMPORT if m in start.modules) == []
