"""The local method: a binary (or a .tar.gz holding it) on this machine, uploaded over SFTP.

The file's sha256 is the version: `check` computes it, so a changed file previews as an update.
A relative path is relative to the directory the Pulumi program runs in.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from rbee_infra.base.errors import ConfigError, HostError
from rbee_infra.base.progress import report
from rbee_infra.config.fleet import LocalSource
from rbee_infra.config.spec import InstallSpec
from rbee_infra.decide import plan
from rbee_infra.host.remote import Link, cleanup_install
from rbee_infra.install import Staged, assets, transfer


def _path(spec: InstallSpec) -> Path:
    source = spec.source
    assert isinstance(source, LocalSource)
    return Path(os.path.expanduser(source.path))


def file_sha(spec: InstallSpec) -> str:
    """The local file's sha256; a missing file or a pinned sha256 it does not match is a
    configuration error naming the field."""
    source = spec.source
    assert isinstance(source, LocalSource)
    path = _path(spec)
    try:
        sha = transfer.sha256_file(path)
    except IsADirectoryError:
        raise ConfigError([("source.path", f"{source.path} is a directory, not a file")]) from None
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError([("source.path", f"{source.path} cannot be read: {reason}")]) from None
    if source.sha256 and source.sha256 != sha:
        raise ConfigError(
            [("source.sha256", f"{source.path} has sha256 {sha}, not {source.sha256}")]
        )
    return sha


async def stage(link: Link, spec: InstallSpec, iid: str, *, fresh: bool, abort: str) -> Staged:
    """Upload the file (or the binary unpacked from it); `fresh` changes nothing here."""
    path = _path(spec)
    sha = await asyncio.to_thread(file_sha, spec)
    rid = plan.release_id(spec, sha)
    report(spec.label, f"uploading {path.name} ({sha[:12]})")
    try:
        with tempfile.TemporaryDirectory(prefix="rbee-local-") as tmp:
            binary = path
            if assets.is_archive(path.name):
                binary = Path(tmp) / spec.binary
                try:
                    present = await asyncio.to_thread(
                        transfer.unpack_binary, path, spec.binary, binary
                    )
                except (OSError, EOFError, ValueError) as error:
                    raise HostError(
                        spec.label, "upload", f"could not unpack {path.name}: {error}"
                    ) from None
                if not present:
                    raise HostError(
                        spec.label, "upload", f"{path.name} holds no file named {spec.binary}"
                    )
            # a raw binary must still be the file hashed above: the host re-checks it
            binary_sha = sha
            if binary != path:
                binary_sha = await asyncio.to_thread(transfer.sha256_file, binary)
            await transfer.upload_binary(link, spec, rid, binary, binary_sha, path.name)
    except HostError:
        # the release dir itself is only replaced on success: clean up the temp dir only
        await cleanup_install(link, spec, abort, iid, [f"{rid}.incoming"])
        raise
    return Staged(release_id=rid, version_key=sha)
