"""rbee-infra: rbee hives and workers as Pulumi dynamic resources, installed over SSH."""

from rbee_infra.resources import Hive, HiveArgs, InstallArgs, Worker, WorkerArgs

__all__ = ["Hive", "HiveArgs", "InstallArgs", "Worker", "WorkerArgs"]
