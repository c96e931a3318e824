"""rbee-infra: rbee hives and workers as Pulumi dynamic resources, installed over SSH."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rbee_infra.stack.resources import Hive, HiveArgs, InstallArgs, Worker, WorkerArgs

__all__ = ["Hive", "HiveArgs", "InstallArgs", "Worker", "WorkerArgs"]


def __getattr__(name: str) -> Any:
    # the provider server imports rbee_infra.stack.providers (unpickling): not the resources
    if name in __all__:
        from rbee_infra.stack import resources

        return getattr(resources, name)
    raise AttributeError(f"module 'rbee_infra' has no attribute {name!r}")
