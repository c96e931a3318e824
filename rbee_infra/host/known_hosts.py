"""Look a host up in OpenSSH known_hosts text (pure; the caller reads the file).

Used to pin a `hostKey` for pulumi-command, which skips host key checks when none is given.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

# pulumi-command pins exactly one key; prefer the type current OpenSSH servers offer first.
_PREFERENCE = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")


def host_pattern_name(host: str, port: int) -> str:
    """How known_hosts names a target: `host` on port 22, else `[host]:port`."""
    host = host.lower()
    return host if port == 22 else f"[{host}]:{port}"


def _hashed_match(entry: str, name: str) -> bool:
    parts = entry.split("|")  # |1|salt|hash
    if len(parts) != 4 or parts[1] != "1":
        return False
    try:
        salt, digest = base64.b64decode(parts[2]), base64.b64decode(parts[3])
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(hmac.new(salt, name.encode(), hashlib.sha1).digest(), digest)


def _glob(pattern: str, name: str) -> bool:
    """OpenSSH patterns: only `*` and `?` are special (`[host]:port` is literal)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name) is not None


def _matches(patterns: str, name: str) -> bool:
    if patterns.startswith("|"):
        return _hashed_match(patterns, name)
    matched = False
    for pattern in patterns.lower().split(","):
        if pattern.startswith("!"):
            if _glob(pattern[1:], name):
                return False
        elif _glob(pattern, name):
            matched = True
    return matched


def entries(text: str, host: str, port: int = 22) -> tuple[list[str], set[str], bool]:
    """What the file says of host:port: its plain keys (`type base64`, in file order), the
    keys marked `@revoked` for it, and whether a `@cert-authority` line names it."""
    name = host_pattern_name(host, port)
    found: list[str] = []
    revoked: set[str] = set()
    authority = False
    for raw in text.splitlines():
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = fields.pop(0) if fields[0].startswith("@") else ""
        if len(fields) < 3:
            continue
        key = f"{fields[1]} {fields[2]}"
        if marker == "@revoked" and _matches(fields[0], name):
            revoked.add(key)
        elif not _matches(fields[0], name):
            continue
        elif marker == "@cert-authority":
            authority = True
        elif not marker and key not in found:
            found.append(key)
    return found, revoked, authority


def host_keys(text: str, host: str, port: int = 22) -> list[str]:
    """The plain (not CA, not revoked) keys listed for host:port, as `type base64`, best first."""
    found, revoked, _ = entries(text, host, port)
    keys = [key for key in found if key not in revoked]

    def rank(key: str) -> int:
        kind = key.split(" ", 1)[0]
        return _PREFERENCE.index(kind) if kind in _PREFERENCE else len(_PREFERENCE)

    return sorted(keys, key=rank)
