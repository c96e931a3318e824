"""Scrubbing secrets out of anything that leaves a provider: errors, logs, receipts, outputs."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit, urlunsplit

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
    # both patterns need these: a host's probe output (checksums, keys) seldom holds them,
    # and the userinfo pattern backtracks through every long word
    if "://" in text:
        text = _USERINFO.sub(lambda m: f"{m['scheme'] or m['scheme2']}***@", text)
    return _QUERY_SECRET.sub(r"\1***", text) if "=" in text else text


def redact_rejected(value: str) -> str:
    """A value that failed validation, for an error message: like `redact_text`, but any
    userinfo goes, even one with characters a valid URL cannot hold (a space, a quote)."""
    return redact_text(re.sub(r"(://).*@", r"\1***@", value, count=1, flags=re.S))


def url_has_credentials(url: str) -> bool:
    return redact_text(url) != url


def url_secrets(url: str) -> list[str]:
    """The secret parts of a URL (password or token in the userinfo, secret query values), as
    written and percent-decoded."""
    found: list[str] = []
    split = split_userinfo(url)
    if split is not None and split[1] is not None:
        user, colon, password = split[1].partition(":")
        # a password, or a bare token used as the user name
        for part in (password,) if colon else (user,):
            found += [part, unquote(part)] if part else []
    try:
        password = urlsplit(url).password  # how Python (and curl) read it, if they differ
    except ValueError:
        password = None
    if password:
        found += [password, unquote(password)]
    found.extend(m.group(0).split("=", 1)[1] for m in _QUERY_SECRET.finditer(url))
    return list(dict.fromkeys(found))


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def split_userinfo(url: str) -> tuple[str, str | None, str] | None:
    """An http(s) URL as git reads it for credentials: (scheme, userinfo still percent-encoded
    or None, the rest: host[:port] and path). git ends the authority at the first '/' only
    (`credential_from_url`); see `ambiguous_userinfo` for URLs others read differently. None
    for any other URL."""
    m = _SCHEME.match(url)
    if m is None or m[1].lower() not in ("http", "https"):
        return None
    rest = url[m.end():]
    slash = rest.find("/")
    authority = rest if slash < 0 else rest[:slash]
    at = authority.find("@")
    if at < 0:
        return m[1], None, rest
    return m[1], rest[:at], rest[at + 1 :]


def ambiguous_userinfo(url: str) -> str | None:
    """Why git, curl and Python would not agree on this http(s) URL's user name and password
    (so a credential could end up in plain sight, or be sent wrong), or None. Never quotes
    the URL."""
    split = split_userinfo(url)
    if split is None:
        return None
    _, userinfo, rest = split
    encode = "percent-encode it in the user name or password"
    if userinfo is None:
        if "@" in rest:
            return (
                "has an '@' after the host: a user name or password with an unencoded '/' "
                f"({encode}: %2F; '@' is %40)?"
            )
        return None
    if "@" in rest.split("/", 1)[0]:
        return f"has more than one '@' before the host ({encode}: %40)"
    for char, code in (("?", "%3F"), ("#", "%23")):
        if char in userinfo:
            return f"has a {char!r} in its user name or password ({encode}: {code})"
    if _PERCENT.search(userinfo):
        return "has a '%' in its user name or password that starts no %XX escape (write %25)"
    return None


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
    None for any other argument. The userinfo is read as git reads it and decoded once, then
    encoded once for the store line (which git decodes again)."""
    split = split_userinfo(url)
    if split is None or not split[1]:
        return None
    scheme, userinfo, rest = split
    host = rest.split("/", 1)[0]
    if not host:
        return None
    user, colon, password = userinfo.partition(":")
    line_user = quote(unquote(user), safe="")
    secret = f":{quote(unquote(password), safe='')}" if colon else ""
    return f"{scheme}://{rest}", f"{scheme.lower()}://{line_user}{secret}@{host}"
