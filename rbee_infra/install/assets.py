"""Release assets, pure: where an asset lives, how it is packed, what a checksum file says.

An asset is verified before anything is installed. Its sha256 comes from, in order: the
`sha256` in the config, a published `<asset>.sha256`, a published `SHA256SUMS` line for the
asset. When none of them exists the install is refused: a release is never installed
unverified (pin `sha256` for releases that publish no checksums).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rbee_infra.base.redact import redact_url
from rbee_infra.config.fleet import ReleaseSource

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
SUMS_FILE = "SHA256SUMS"
_SHA = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class Asset:
    name: str
    url: str  # may hold credentials: pass it to the download only, never into a message

    @property
    def archive(self) -> bool:
        return is_archive(self.name)

    @property
    def shown(self) -> str:
        """The URL as it may appear in errors and logs."""
        return redact_url(self.url)


def is_archive(name: str) -> bool:
    return name.endswith(ARCHIVE_SUFFIXES)


def download_base(source: ReleaseSource) -> str:
    """`<baseUrl>/<repo>/releases/download/<tag>`: GitHub's layout, also used by mirrors."""
    return f"{source.base_url.rstrip('/')}/{source.repo}/releases/download/{source.tag}"


def asset_for(source: ReleaseSource, binary: str) -> Asset:
    name = source.asset or binary
    return Asset(name=name, url=f"{download_base(source)}/{name}")


def checksum_files(asset: Asset) -> list[tuple[str, str]]:
    """(label, url) of the published checksum files to try, in order."""
    base = asset.url.rsplit("/", 1)[0]
    return [
        (f"{asset.name}.sha256", f"{asset.url}.sha256"),
        (SUMS_FILE, f"{base}/{SUMS_FILE}"),
    ]


def parse_checksum(label: str, text: str, asset_name: str) -> str | None:
    """The asset's sha256 from a `<asset>.sha256` (`<sha>` or `<sha>  <name>`) or a
    `SHA256SUMS` file (`<sha>  <name>` lines, `*<name>` in binary mode)."""
    single = label != SUMS_FILE
    for line in text.splitlines():
        fields = line.strip().split()
        if not fields or not _SHA.match(fields[0]):
            continue
        if len(fields) == 1:
            if single:
                return fields[0].lower()
            continue
        name = fields[1].lstrip("*")
        name = name[2:] if name.startswith("./") else name
        if name == asset_name or (single and name.rsplit("/", 1)[-1] == asset_name):
            return fields[0].lower()
    return None


def describe_transfer(
    via: str, exit_code: int | None, http: str, detail: str, url: str, *, cut: bool = False
) -> str:
    """One sentence for a failed GET, from the tool's exit code and the HTTP status it saw."""
    how = f"{via} exit {exit_code}" if exit_code is not None else via
    tail = f": {detail}" if detail else ""
    if http and http not in ("000", "200") and http.isdigit():
        return f"GET {url} returned HTTP {http} ({how}){tail}"
    # curl 18: fewer bytes than Content-Length; wget says "Connection closed at byte N"
    if cut or (via == "curl" and exit_code == 18) or "connection closed" in detail.lower():
        return f"GET {url} was cut short: the connection closed mid-download ({how}){tail}"
    return f"GET {url} failed ({how}){tail}"
