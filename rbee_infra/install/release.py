"""The release method: a prebuilt binary (raw, or inside a .tar.gz) from a GitHub-style release.

The asset is downloaded on the host with curl or wget. A host with neither (or with no tar for
an archive) gets it from this machine instead: downloaded here, then uploaded over SFTP. Either
way its sha256 is checked before anything moves into the release dir, and a release with no
known checksum is refused (see `assets`). There is no cache to refresh, so `fresh` changes
nothing: every install downloads again.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from rbee_infra.base import layout
from rbee_infra.base.errors import HostError
from rbee_infra.base.progress import report
from rbee_infra.base.redact import redact_text, url_has_credentials
from rbee_infra.config.fleet import ReleaseSource
from rbee_infra.config.spec import InstallSpec
from rbee_infra.decide import plan
from rbee_infra.host import scripts
from rbee_infra.host.remote import (
    PROBE_TIMEOUT,
    Link,
    cleanup_install,
    holder,
    probe,
    secrets_of,
)
from rbee_infra.install import Staged, assets, httpget, transfer
from rbee_infra.install.httpget import TransferError

HERE = "this machine"  # the operator's, where the provider runs
NOT_PUBLISHED = ("404", "410")


def pick_tool(tools: dict[str, str], archive: bool, credential: bool = False) -> str | None:
    """curl, else wget, on the host; None when the download must happen on this machine. A
    URL with a credential goes to curl only (it never sends it on to another host a redirect
    points at; wget was given it unasked, with --auth-no-challenge), else this machine."""
    if archive and "tar" not in tools:
        return None
    usable = ("curl",) if credential else ("curl", "wget")
    return next((t for t in usable if t in tools), None)


class _Getter:
    """GETs through the host's curl/wget (`tool`), or on this machine (`tool` None)."""

    def __init__(self, link: Link, spec: InstallSpec, tool: str | None) -> None:
        self.link, self.spec, self.tool = link, spec, tool

    @property
    def via(self) -> str:
        return self.tool or HERE

    def fail(
        self, url: str, http: str, code: int | None, detail: str, *, cut: bool = False
    ) -> HostError:
        detail = redact_text(detail, secrets_of(self.spec))
        message = assets.describe_transfer(self.via, code, http, detail, url, cut=cut)
        return HostError(self.spec.label, "download", message)

    async def text(self, url: str, shown: str) -> str | None:
        """The body, or None for a 404 (not published)."""
        if self.tool is None:
            try:
                return await asyncio.to_thread(httpget.get_text, url)
            except TransferError as error:
                if error.http in NOT_PUBLISHED:
                    return None
                raise self.fail(shown, error.http, None, error.detail, cut=error.cut) from None
        result = await self.link.run(
            scripts.FETCH_TEXT,
            self.tool,
            stdin=url + "\n",
            phase="download",
            check=False,
            timeout=PROBE_TIMEOUT,
        )
        if result.exit_status == 0:
            return result.stdout
        found, detail = transfer.markers(result)
        http = found.get("http", "")
        if http in NOT_PUBLISHED:
            return None
        raise self.fail(shown, http, result.exit_status, detail)


async def published_sha(getter: _Getter, spec: InstallSpec, asset: assets.Asset) -> tuple[str, str]:
    """(sha256, where it came from) from the config or the checksum files beside the asset."""
    source = spec.source
    assert isinstance(source, ReleaseSource)
    if source.sha256:
        return source.sha256, "sha256 in the config"
    for label, url in assets.checksum_files(asset):
        text = await getter.text(url, assets.Asset(label, url).shown)
        if text is None:
            continue
        sha = assets.parse_checksum(label, text, asset.name)
        if sha:
            return sha, label
        if label != assets.SUMS_FILE:
            raise HostError(
                spec.label, "download", f"{label} is published but holds no sha256 for {asset.name}"
            )
    where = asset.shown.rsplit("/", 1)[0]
    raise HostError(
        spec.label,
        "download",
        f"refusing to install {asset.name} unverified: no sha256 in the config, and neither "
        f"{asset.name}.sha256 nor a {assets.SUMS_FILE} line for it is published at {where}; "
        "set sha256 in the release source to pin the asset",
    )


async def _on_host(
    getter: _Getter, spec: InstallSpec, asset: assets.Asset, rid: str, sha: str, origin: str
) -> None:
    assert getter.tool is not None
    result = await getter.link.run(
        scripts.DOWNLOAD_RELEASE,
        layout.LOCK_FILE,
        str(int(spec.lock_timeout)),
        holder(spec),
        getter.tool,
        layout.release_dir(spec.install_name, rid),
        asset.name,
        sha,
        spec.binary,
        "1" if asset.archive else "0",
        stdin=asset.url + "\n",
        phase="download",
        check=False,
        timeout=spec.build_timeout + spec.lock_timeout,
    )
    if result.exit_status == 0:
        return
    found, detail = transfer.markers(result)
    step = found.get("failed", "")
    if step == "download":
        raise getter.fail(asset.shown, found.get("http", ""), result.exit_status, detail)
    if step == "checksum" and "sha256" in found:
        message = transfer.mismatch(asset.name, found["sha256"], sha, origin)
    elif step == "missing":
        message = f"{asset.name} holds no file named {spec.binary}; nothing was installed"
    elif step == "unpack":
        message = f"could not unpack {asset.name} (tar exit {result.exit_status}): {detail}"
    else:
        message = f"could not stage {asset.name} (exit {result.exit_status})"
        message += f": {detail}" if detail else ""
    raise HostError(spec.label, "download", message)


async def _here(
    getter: _Getter, spec: InstallSpec, asset: assets.Asset, rid: str, sha: str, origin: str
) -> None:
    with tempfile.TemporaryDirectory(prefix="rbee-release-") as tmp:
        path = Path(tmp) / "asset"
        try:
            got = await asyncio.to_thread(httpget.download, asset.url, path)
        except TransferError as error:
            raise getter.fail(asset.shown, error.http, None, error.detail, cut=error.cut) from None
        if got != sha:
            raise HostError(spec.label, "download", transfer.mismatch(asset.name, got, sha, origin))
        binary = path
        if asset.archive:
            binary = Path(tmp) / "binary"
            try:
                present = await asyncio.to_thread(transfer.unpack_binary, path, spec.binary, binary)
            except (OSError, EOFError, ValueError) as error:
                raise HostError(
                    spec.label, "download", f"could not unpack {asset.name}: {error}"
                ) from None
            if not present:
                raise HostError(
                    spec.label,
                    "download",
                    f"{asset.name} holds no file named {spec.binary}; nothing was installed",
                )
        binary_sha = await asyncio.to_thread(transfer.sha256_file, binary)
        await transfer.upload_binary(getter.link, spec, rid, binary, binary_sha, spec.binary)


async def stage(link: Link, spec: InstallSpec, iid: str, *, fresh: bool, abort: str) -> Staged:
    source = spec.source
    assert isinstance(source, ReleaseSource) and link.session is not None
    asset = assets.asset_for(source, spec.binary)
    facts = await probe(link.session, spec)
    credential = url_has_credentials(asset.url)
    getter = _Getter(link, spec, pick_tool(facts.tools, asset.archive, credential))
    sha, origin = await published_sha(getter, spec, asset)
    rid = plan.release_id(spec, sha)
    if getter.tool:
        where = f"with {getter.tool} on the host"
    else:
        lacking = "tar" if asset.archive and "tar" not in facts.tools else "curl or wget"
        if lacking != "tar" and credential and "wget" in facts.tools:
            lacking = "curl; wget is never given a credential"
        where = f"on {HERE} (the host has no {lacking})"
    report(spec.label, f"downloading {asset.shown} {where}")
    try:
        if getter.tool:
            await _on_host(getter, spec, asset, rid, sha, origin)
        else:
            await _here(getter, spec, asset, rid, sha, origin)
    except HostError:
        # the release dir itself is only replaced on success: clean up the temp dir only
        await cleanup_install(link, spec, abort, iid, [f"{rid}.incoming"])
        raise
    return Staged(release_id=rid, version_key=sha)
