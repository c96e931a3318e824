"""Scrubbing secrets out of anything that leaves a provider: errors, logs, receipts, outputs."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, urlsplit, urlunsplit

# Any password, and any user name in http(s) URLs (a bare token); `ssh://git@host` stays readable.
_USERINFO = re.compile(
    r"(?P<scheme>(?i:https?)://)(?P<userinfo>[^/@\s]+)@|(?P<scheme2>[A-Za-z][A-Za-z0-9+.-]*://)"
    r"(?P<user>[^/@:\s]*):(?P<password>[^/@\s]+)@"
)
_QUERY_SECRET = re.compile(
    r"(?i)([?&](?:token|access_token|auth|key|sig|signature|password|secret)=)[^&\s#'\"]+"
)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove credentials from URLs (`https://user:tok@h/` -> `https://***@h/`) and secrets."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _USERINFO.sub(lambda m: f"{m['scheme'] or m['scheme2']}***@", text)
    return _QUERY_SECRET.sub(r"\1***", text)


def redact_rejected(value: str) -> str:
    """A value that failed validation, for an error message: like `redact_text`, but any
    userinfo goes, even one with characters a valid URL cannot hold (a space, a quote)."""
    return redact_text(re.sub(r"(://)[^/]*@", r"\1***@", value, count=1))


def url_has_credentials(url: str) -> bool:
    return redact_text(url) != url


def url_secrets(url: str) -> list[str]:
    """The secret parts of a URL (password or token in the userinfo, secret query values)."""
    found: list[str] = []
    try:
        parts = urlsplit(url)
    except ValueError:
        return found
    if parts.password:
        found.append(parts.password)
    bare_token = parts.scheme.lower() in ("http", "https") and parts.password is None
    if parts.username and bare_token:
        found.append(parts.username)  # a bare token used as the user name
    found.extend(m.group(0).split("=", 1)[1] for m in _QUERY_SECRET.finditer(url))
    return found


def redact_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if "@" in parts.netloc and url_has_credentials(url):
        host = parts.netloc.rsplit("@", 1)[1]
        url = urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))
    return redact_text(url)


def git_credential(url: str) -> tuple[str, str] | None:
    """For an http(s) URL with a user (and password or token) in it: the URL without them,
    and the git-credential-store line that gives them to git (`https://user:pass@host`).
    None for any other argument."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.username or not parts.hostname:
        return None
    host = parts.netloc.rsplit("@", 1)[1]
    public = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    user = quote(parts.username, safe="")
    secret = f":{quote(parts.password, safe='')}" if parts.password is not None else ""
    return public, f"{parts.scheme.lower()}://{user}{secret}@{host}"
