"""State compatibility: stacks deployed before the package was split into layer folders
recorded their dynamic providers under this module path (the engine stores `__provider` as
dill of the provider object, classes by module reference). Keep this module while such
state may exist; new state records rbee_infra.stack.kickoff."""

from rbee_infra.stack.kickoff import BuildKickoffProvider

__all__ = ["BuildKickoffProvider"]
