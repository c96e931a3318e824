"""A stack's state names its dynamic providers by module path (`__provider` is base64 dill of
the provider object, classes by reference): state written before the package was split into
layer folders must still load, so `destroy` and `refresh` of an old stack work."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import dill

from rbee_infra.stack.kickoff import BuildKickoffProvider
from rbee_infra.stack.providers import HiveProvider, WorkerProvider

OLD_STATE = Path(__file__).parent / "data" / "state" / "providers-0.1.json"


def test_providers_recorded_under_the_old_module_paths_still_load() -> None:
    recorded = json.loads(OLD_STATE.read_text())
    # the SDK's provider server reads `__provider` exactly so (pulumi.dynamic.__main__)
    loaded = {path: type(dill.loads(base64.b64decode(text))) for path, text in recorded.items()}
    assert loaded == {
        "rbee_infra.providers.HiveProvider": HiveProvider,
        "rbee_infra.providers.WorkerProvider": WorkerProvider,
        "rbee_infra.kickoff.BuildKickoffProvider": BuildKickoffProvider,
    }
    assert HiveProvider.__module__ == "rbee_infra.stack.providers"  # what new state records
