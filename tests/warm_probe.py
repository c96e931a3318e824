"""A dynamic provider whose Check answers with what its process sees (tests/test_warm_provider).
Pickled by reference: keep it importable as `tests.warm_probe.ProcessProbe`."""

from __future__ import annotations

import os
import sys
from typing import Any

from pulumi.dynamic import CheckResult, ResourceProvider


class ProcessProbe(ResourceProvider):
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        seen = {
            "pid": os.getpid(),
            "cwd": os.getcwd(),
            "marker": os.environ.get("WARM_PROBE", ""),
            # the server started ahead imported rbee_infra's spec models before any call
            "preloaded": "rbee_infra.config.spec" in sys.modules,
        }
        return CheckResult({**news, **seen}, [])


def read_ahead(payload: Any) -> None:
    """The program's request to read ahead (tools/pulumi/pulumi-dynamic-warm.py), recorded
    with the process that took it, in WARM_PROBE_OUT."""
    import json

    with open(os.environ["WARM_PROBE_OUT"], "w") as out:
        out.write(json.dumps({"pid": os.getpid(), "payload": payload}) + "\n")
