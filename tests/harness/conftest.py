from __future__ import annotations

import pytest

PLUGIN = "tests.harness.fixtures"


def pytest_configure(config: pytest.Config) -> None:
    # tests/conftest.py may already load the fixtures as a plugin; load them once either way
    if not config.pluginmanager.has_plugin(PLUGIN):
        config.pluginmanager.import_plugin(PLUGIN)
