"""Secrets never leave as plain text: after runs with a token-bearing repo URL and an inline
private key, the token and the key appear in no state output, log, error, progress line or
file on the host."""

from __future__ import annotations

import pytest

from tests.harness.engine import Engine
from tests.harness.fixture_repo import RbeeRepo
from tests.harness.fleet import declare, hive_config, make_fleet
from tests.harness.git_http import GitHttpServer
from tests.harness.hosts import HostSet
from tests.harness.installs import version
from tests.metrics import record

pytestmark = pytest.mark.hosts

TOKEN = "ghp_S3cr3tT0kenValue0123456789"


def test_token_in_repo_url_and_inline_key_never_leak(
    hosts1: HostSet, rbee_repo: RbeeRepo, engine: Engine
) -> None:
    (host,) = hosts1.hosts
    server = GitHttpServer(rbee_repo.path.parent, TOKEN)
    try:
        url = server.url(rbee_repo.path.name)
        key_body = hosts1.client_key_pem.strip().splitlines()[1]

        def config(**ref: str) -> dict:
            c = make_fleet(hosts1, rbee_repo, workers_per_hive=1,
                           **{"rbee:sshPrivateKey": hosts1.client_key_pem})
            del c["rbee:sshPrivateKeyPath"]
            hive_config(c, "host1")["installMethod"] = {"git": {"repo": url, **ref}}
            return c

        secret_keys = ("rbee:sshPrivateKey", "rbee:hives")
        texts: list[str] = []
        ok = engine.up(declare(config(tag="v0.1.0"), secret_keys))
        assert ok.ok, ok.errors
        assert version(host, ".local/bin/rbee-hive") == "rbee-hive 0.1.0"
        assert server.requests > server.unauthorized > 0  # the token was really used

        plan = engine.preview(declare(config(tag="v0.2.0"), secret_keys))
        missing = engine.up(declare(config(tag="v9.9.9"), secret_keys))
        broken = engine.up(declare(config(branch="broken"), secret_keys))
        for result in (plan, missing, broken):
            texts.extend(result.errors.values())
            texts.extend(result.warnings)
        assert "hive host1: resolve failed: tag 'v9.9.9' not found in " in missing.errors["hive-host1"]
        assert "http://***@127.0.0.1" in missing.errors["hive-host1"]
        assert "build failed (exit 101)" in broken.errors["hive-host1"]

        texts.append(engine.state_path.read_text())
        texts.append(engine.provider_log_path.read_text())
        for entry in engine.state().values():
            public = {k: v for k, v in entry.outputs.items() if k not in entry.secret_outputs}
            texts.append(repr(public))
            for key in ("connection", "source"):
                assert key not in entry.outputs or key in entry.secret_outputs
        on_host = host.run(
            f"grep -rlF -e {TOKEN} -e '{key_body}' . --exclude-dir=.ssh --exclude-dir=.cargo || true"
        ).stdout
        texts.append(on_host)
        for text in texts:
            assert TOKEN not in text
            assert key_body not in text
        assert on_host == ""
        record("fault", fault="secret scan (token URL, inline key)", survived=True, data_lost=0)
    finally:
        server.close()
