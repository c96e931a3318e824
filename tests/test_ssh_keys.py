"""Reading the operator's private key: each way it can fail says what is really wrong.

Keys are made by OpenSSH's own `ssh-keygen` (its default format, bcrypt-derived encryption),
as an operator's key would be.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import asyncssh
import pytest

from rbee_infra.base.errors import AuthError
from rbee_infra.config.spec import Connection
from rbee_infra.host.ssh import _client_keys

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def encrypted_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "right-pass", "-f", str(path)], check=True
    )
    assert path.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    return path


def _read(path: Path, password: str | None) -> list[asyncssh.SSHKey] | None:
    connection = Connection(
        host="127.0.0.1", user="rbee", private_key_path=str(path), private_key_password=password
    )
    return _client_keys(connection, "hive gpu")


def test_the_right_passphrase_decrypts_an_openssh_key(encrypted_key: Path) -> None:
    keys = _read(encrypted_key, "right-pass")
    assert keys is not None and keys[0].get_algorithm() == "ssh-ed25519"


def test_a_wrong_passphrase_says_so(encrypted_key: Path) -> None:
    with pytest.raises(AuthError) as caught:
        _read(encrypted_key, "wrong-pass")
    assert str(caught.value) == (
        "hive gpu: connect failed: the private key could not be decrypted (wrong passphrase?)"
    )


def test_no_passphrase_for_an_encrypted_key_says_which_setting(encrypted_key: Path) -> None:
    with pytest.raises(AuthError) as caught:
        _read(encrypted_key, None)
    assert str(caught.value) == (
        "hive gpu: connect failed: the private key is encrypted: set rbee:sshPrivateKeyPassword"
    )


def test_missing_bcrypt_is_reported_as_missing_bcrypt_not_a_wrong_passphrase(
    encrypted_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asyncssh decides at import whether bcrypt's KDF is there; this is that decision, as on a
    # machine where `asyncssh` was installed without its `bcrypt` extra
    monkeypatch.setattr(asyncssh.public_key, "_bcrypt_available", False)
    with pytest.raises(AuthError) as caught:
        _read(encrypted_key, "right-pass")
    message = str(caught.value)
    assert "wrong passphrase" not in message
    assert message == (
        "hive gpu: connect failed: the private key is encrypted in OpenSSH format and "
        "decrypting it needs the Python package bcrypt, which is not installed: "
        "pip install 'asyncssh[bcrypt]'"
    )


def test_the_project_depends_on_asyncssh_with_bcrypt() -> None:
    root = Path(__file__).resolve().parents[1]
    for name in ("requirements.txt", "pyproject.toml"):
        text = (root / name).read_text()
        assert "asyncssh[bcrypt]" in text, name
    assert asyncssh.public_key._bcrypt_available
