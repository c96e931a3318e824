"""known_hosts lookups that pin pulumi-command's hostKey, checked against OpenSSH's own tools."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from rbee_infra.host.known_hosts import host_keys, host_pattern_name

pytestmark = pytest.mark.unit

ED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMx6pTGm0DSd8Vs0nWvXkK0jM1wV6d0bJ5hKk1c3yb5g"
ED_OTHER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHv6cJpC0x8xq9H1cM8mX0jB3rJqv0pV4uS7yq8w6L2Q"
RSA = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7"
ECDSA = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY="


def test_names_follow_openssh() -> None:
    assert host_pattern_name("Gpu-Host.example", 22) == "gpu-host.example"
    assert host_pattern_name("127.0.0.2", 2222) == "[127.0.0.2]:2222"


def test_plain_entries_by_port_with_the_preferred_key_first() -> None:
    text = "\n".join(
        [
            "# comment",
            f"10.0.0.5 {RSA} root@gpu",
            f"10.0.0.5,gpu-host {ECDSA}",
            f"[10.0.0.5]:2222 {ED_OTHER}",
            f"10.0.0.5 {ED}",
            "",
        ]
    )
    assert host_keys(text, "10.0.0.5") == [ED, ECDSA, RSA]
    assert host_keys(text, "GPU-HOST") == [ECDSA]
    assert host_keys(text, "10.0.0.5", 2222) == [ED_OTHER]
    assert host_keys(text, "10.0.0.6") == []


def test_wildcards_negation_markers_and_revocation() -> None:
    text = "\n".join(
        [
            f"*.lab,!bad.lab {ED}",
            f"@cert-authority *.lab {ED_OTHER}",
            f"@revoked * {RSA}",
            f"old.lab {RSA}",
            f"[10.0.0.?]:2222 {ECDSA}",
            "broken-line-without-key",
        ]
    )
    assert host_keys(text, "10.0.0.7", 2222) == [ECDSA]
    assert host_keys(text, "10.0.0.17", 2222) == []
    assert host_keys(text, "gpu.lab") == [ED]
    assert host_keys(text, "bad.lab") == []  # negated, and the CA line is not a host key
    assert host_keys(text, "old.lab") == [ED]  # its RSA key is revoked


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen is not installed")
def test_hashed_entries_written_by_ssh_keygen_are_found(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.2]:2222 {ED}\n10.0.0.5 {ED_OTHER}\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(known)], check=True, capture_output=True)
    hashed = known.read_text()
    assert "127.0.0.2" not in hashed and hashed.startswith("|1|")
    assert host_keys(hashed, "127.0.0.2", 2222) == [ED]
    assert host_keys(hashed, "10.0.0.5") == [ED_OTHER]
    assert host_keys(hashed, "127.0.0.2") == []  # port 22 is a different entry
    # the same answer as OpenSSH's own lookup
    found = subprocess.run(
        ["ssh-keygen", "-F", "[127.0.0.2]:2222", "-f", str(known)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert ED.split()[1] in found
