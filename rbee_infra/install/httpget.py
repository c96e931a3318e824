"""HTTP GETs on this machine (for hosts with neither curl nor wget). Blocking: call them
through `asyncio.to_thread`.

Credentials in the URL (`https://token@mirror/...`) become a Basic Authorization header that is
not forwarded on redirects (GitHub redirects release downloads to another host).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

TIMEOUT = 60.0
CHUNK = 1 << 16
TEXT_LIMIT = 1 << 20


class TransferError(Exception):
    def __init__(self, http: str, detail: str, *, cut: bool = False) -> None:
        self.http = http
        self.detail = detail
        self.cut = cut
        super().__init__(detail)


def _request(url: str) -> urllib.request.Request:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return urllib.request.Request(url)
    host = parts.netloc.rsplit("@", 1)[1]
    clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    request = urllib.request.Request(clean)
    userinfo = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    token = base64.b64encode(userinfo.encode()).decode()
    request.add_unredirected_header("Authorization", f"Basic {token}")
    return request


def _open(url: str) -> http.client.HTTPResponse:
    try:
        return urllib.request.urlopen(_request(url), timeout=TIMEOUT)
    except urllib.error.HTTPError as error:
        error.close()
        raise TransferError(str(error.code), error.reason or "") from None
    except urllib.error.URLError as error:
        raise TransferError("", str(error.reason)) from None
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise TransferError("", str(error) or type(error).__name__) from None


def get_text(url: str) -> str:
    with _open(url) as response:
        try:
            return response.read(TEXT_LIMIT).decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as error:
            raise TransferError("", str(error) or type(error).__name__, cut=True) from None


def download(url: str, dest: Path) -> str:
    """Stream `url` into `dest`; return its sha256. A body shorter than its Content-Length
    (the connection closed early) is an error, not a short file."""
    digest = hashlib.sha256()
    got = 0
    with _open(url) as response, dest.open("wb") as out:
        length = response.headers.get("Content-Length")
        try:
            while block := response.read(CHUNK):
                out.write(block)
                digest.update(block)
                got += len(block)
        except (OSError, http.client.HTTPException) as error:
            raise TransferError("", str(error) or type(error).__name__, cut=True) from None
        if length is not None and length.isdigit() and got != int(length):
            raise TransferError(
                "", f"got {got} of {int(length)} bytes before the connection closed", cut=True
            )
    return digest.hexdigest()
