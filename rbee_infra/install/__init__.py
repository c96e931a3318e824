"""Install methods. Each `stage(link, spec, iid, fresh=, abort=)` leaves an executable binary at
`layout.release_dir(name, staged.release_id)/<binary>`, or cleans up and raises."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Staged:
    release_id: str
    version_key: str  # the git commit, or the sha256 of a downloaded/uploaded binary
    job_dir: str = ""  # removed once the install is active
    phase_seconds: dict[str, float] = field(default_factory=dict)  # clone, build, ... timings
    lock_sha256: str = ""  # the Cargo.lock the build used (a git build on the host)
