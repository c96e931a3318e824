"""Moving a binary from this machine to a host's release dir, and the files it comes from.

Shared by the release method (when the host has neither curl nor wget) and the local method:
the binary goes to `<release dir>.incoming` over SFTP, its sha256 is checked on the host, and
only then is it renamed into place.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
from pathlib import Path

from rbee_infra.base import layout
from rbee_infra.base.errors import HostError
from rbee_infra.config.spec import InstallSpec
from rbee_infra.host import scripts
from rbee_infra.host.remote import Link, holder
from rbee_infra.host.ssh import Result, tail

CHUNK = 1 << 16
UPLOAD_TIMEOUT = 60.0


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def unpack_binary(archive: Path, binary: str, dest: Path) -> bool:
    """Copy the regular file named `binary` (at any depth) out of a .tar.gz; False if absent."""
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if member.isfile() and member.name.rsplit("/", 1)[-1] == binary:
                source = tar.extractfile(member)
                if source is None:
                    continue
                with source, dest.open("wb") as out:
                    shutil.copyfileobj(source, out)
                return True
    return False


def markers(result: Result) -> tuple[dict[str, str], str]:
    """The `@@key<TAB>value` lines a script leaves on stderr, and the rest of its stderr."""
    found: dict[str, str] = {}
    rest: list[str] = []
    for line in result.stderr.splitlines():
        if line.startswith("@@") and "\t" in line:
            key, value = line[2:].split("\t", 1)
            found[key] = value
        else:
            rest.append(line)
    return found, tail("\n".join(rest), 5)


def mismatch(what: str, got: str, want: str, origin: str) -> str:
    return f"sha256 of {what} is {got}, expected {want} (from {origin}); nothing was installed"


async def upload_binary(
    link: Link, spec: InstallSpec, rid: str, local: Path, sha: str, what: str
) -> None:
    """Upload `local` as the release's binary; its sha256 (`sha`) is re-checked on the host."""
    stage = layout.release_dir(spec.install_name, rid)
    lock = (layout.LOCK_FILE, str(int(spec.lock_timeout)), holder(spec))
    await link.run(
        scripts.PREPARE_UPLOAD, *lock, stage, phase="upload", timeout=spec.lock_timeout + 60
    )
    assert link.session is not None
    await link.session.upload(local, f"{stage}.incoming/{spec.binary}", phase="upload")
    result = await link.run(
        scripts.PLACE_UPLOAD,
        *lock,
        stage,
        spec.binary,
        sha,
        phase="upload",
        check=False,
        timeout=spec.lock_timeout + 60,
    )
    if result.exit_status != 0:
        found, detail = markers(result)
        if "sha256" in found:
            message = mismatch(f"{what} after the upload", found["sha256"], sha, "this machine")
        else:
            message = f"could not place the uploaded {what} (exit {result.exit_status})"
            message += f": {detail}" if detail else ""
        raise HostError(spec.label, "upload", message)
