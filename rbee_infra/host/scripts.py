"""The remote shell scripts, read once from the `host_scripts` folder (package data).

Each constant is one script's text: values reach it only as positional arguments ("$1".."$n",
see `ssh.script_command`), so no input can ever become shell syntax. Every script starts in the
SSH user's home; all paths are relative to it (see `layout`).

`host_scripts/NAME.sh` is the constant `NAME` (upper case). A file's leading comment block
(shebang, documentation, shellcheck directives) stays on this side. Each line `. lib/HELPER.sh`
is replaced by that helper's text, so a script reads, and shellcheck checks it, as if it sourced
its helpers, while the host gets one self-contained text for `sh -c`.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files
from typing import Final

_ROOT: Final = files(__package__ or "rbee_infra") / "host_scripts"
_INCLUDE: Final = re.compile(r"^\. lib/([a-z_]+)\.sh\n", re.M)


def _body(path: str) -> str:
    """The file's text after its leading comment block."""
    lines = (_ROOT / path).read_text(encoding="utf-8").splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    return "".join(lines[start:])


@cache
def _helper(name: str) -> str:
    return _body(f"lib/{name}.sh")


def _script(name: str) -> str:
    return _INCLUDE.sub(lambda include: _helper(include[1]), _body(f"{name}.sh"))


ACTIVATE: Final = _script("activate")
ARTIFACTS: Final = _script("artifacts")
ARTIFACT_META: Final = _script("artifact_meta")
BATCH: Final = _script("batch")
BUILD_JOB: Final = _script("build_job")
DOWNLOAD_RELEASE: Final = _script("download_release")
EXTRAS_SCAN: Final = _script("extras_scan")
FETCH_TEXT: Final = _script("fetch_text")
HEALTH: Final = _script("health")
INSTALL_RUST: Final = _script("install_rust")
INSTALL_TOOL: Final = _script("install_tool")
INVENTORY: Final = _script("inventory")
JOBS: Final = _script("jobs")
JOB_LOG: Final = _script("job_log")
KILL_JOB: Final = _script("kill_job")
PLACE_UPLOAD: Final = _script("place_upload")
PREPARE_UPLOAD: Final = _script("prepare_upload")
PROBE: Final = _script("probe")
PUT_LOCK: Final = _script("put_lock")
PRUNE: Final = _script("prune")
REMOVE: Final = _script("remove")
RESOLVE: Final = _script("resolve")
START_JOB: Final = _script("start_job")
START_SERVICE: Final = _script("start_service")
STOP_SERVICE: Final = _script("stop_service")
VERIFY: Final = _script("verify")
WAIT_JOB: Final = _script("wait_job")
