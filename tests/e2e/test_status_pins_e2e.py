"""Finding 1 of the security review: `rbee-infra status` under hostKeyPolicy "tofu" checks
each host against the key the stack's state pinned (read with the real `pulumi stack export`),
else knownHosts, and refuses a host with neither before sending it anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rbee_infra import cli
from tests.e2e.project import hosts_and_repo, needs_cli, project_on
from tests.harness.fleet import make_fleet
from tests.harness.hosts import rotate_host_key

pytestmark = needs_cli


def test_finding_1_status_checks_the_keys_pinned_in_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    tmp_path.chmod(0o755)
    with hosts_and_repo(2, tmp_path) as (hosts, repo), project_on(hosts, repo, tmp_path) as p:
        config = make_fleet(hosts, repo, **{"rbee:hostKeyPolicy": "tofu"})
        del config["rbee:knownHosts"]
        config["rbee:hives"] = config["rbee:hives"][:1]  # host2 comes later
        p.write_config(config)
        p.pulumi("up", "--yes", "--skip-preview")
        for name, value in p.env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("RBEE_INFRA_PROJECT_DIR", str(p.path))
        monkeypatch.setattr(Path, "home", lambda: tmp_path / "nobody")  # no ~/.ssh/known_hosts

        def status() -> tuple[int, dict[str, Any]]:
            capsys.readouterr()
            code = cli.main(["status", "--stack", p.stack, "--json"])
            return code, json.loads(capsys.readouterr().out)

        code, report = status()
        assert code == 0, report
        assert report["summary"]["inSync"] == 1

        # a hive the state has no pin for, and knownHosts does not list: refused, untouched
        p.write_config(make_fleet(hosts, repo, **{"rbee:hostKeyPolicy": "tofu"}) | {
            "rbee:knownHosts": str(tmp_path / "empty_known_hosts")})
        (tmp_path / "empty_known_hosts").write_text("")
        before = hosts[1].sshd_log.read_text().count("Accepted publickey")
        code, report = status()
        assert code == 2
        host2 = next(h for h in report["hives"] if h["alias"] == "host2")
        assert "no host key to check" in json.dumps(host2)
        assert hosts[1].sshd_log.read_text().count("Accepted publickey") == before

        # the pinned host's key changes: refused, naming the pin
        rotate_host_key(hosts[0])
        code, report = status()
        host1 = next(h for h in report["hives"] if h["alias"] == "host1")
        assert code == 2
        assert "does not match pinned key" in json.dumps(host1), host1
