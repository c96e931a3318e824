"""Library warnings kept out of the operator's output.

asyncssh still imports cryptography's DSA support, and cryptography warns about it on every
import (`CryptographyDeprecationWarning: DSA is deprecated`). The provider server's stderr is
shown by `pulumi preview`/`up` as the stack's diagnostics, so those lines would stand before
anything the operator cares about on every run. rbee-infra never offers DSA keys; the filter
is narrowed to warnings that asyncssh's own modules trigger, so a warning of rbee-infra's or of
another library still shows.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType


def import_asyncssh(name: str = "asyncssh") -> ModuleType:
    """Import asyncssh (or one of its modules) without its import-time deprecation noise."""
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"asyncssh(\.|$)")
    try:
        from cryptography.utils import CryptographyDeprecationWarning
    except ImportError:  # pragma: no cover - cryptography is an asyncssh dependency
        pass
    else:
        warnings.filterwarnings(
            "ignore", category=CryptographyDeprecationWarning, module=r"asyncssh(\.|$)"
        )
    return importlib.import_module(name)
