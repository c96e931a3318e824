"""Third security review, through the real Pulumi CLI (docs/security.md)."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.project import exists, hosts_and_repo, needs_cli, project_on
from tests.harness.fleet import make_fleet
from tests.harness.hosts import rotate_host_key

pytestmark = needs_cli

WORKER = ".local/share/rbee/workers/rbee-worker-cpu"


def test_r3_2_a_worker_added_under_target_to_a_host_whose_key_changed_is_refused(
    tmp_path: Path,
) -> None:
    """Under `pulumi up --target <new worker>` the engine checks only that worker: the
    others' checks, which would have pinned the host's key in the provider, do not run. The
    worker still gets the key the stack pinned for its host, from the stack's state."""
    tmp_path.chmod(0o755)
    with hosts_and_repo(1, tmp_path) as (hosts, repo), project_on(hosts, repo, tmp_path) as p:
        (host,) = hosts.hosts
        config = make_fleet(hosts, repo, **{"rbee:hostKeyPolicy": "tofu"})
        del config["rbee:knownHosts"]
        p.write_config(config)
        p.pulumi("up", "--yes", "--skip-preview")
        pinned = {f"{host.address}:{host.port}": host.host_key_public.strip()}

        rotate_host_key(host)  # a reinstalled host, or an impostor on its address
        p.write_config(make_fleet(hosts, repo, workers_per_hive=1, **{
            "rbee:hostKeyPolicy": "tofu"}) | {"rbee:knownHosts": str(tmp_path / "none")})
        urn = f"urn:pulumi:{p.stack}::rbee-infra::pulumi-python:dynamic:Resource::worker-host1-cpu"
        result = p.run("up", "--yes", "--skip-preview", "--target", urn)
        out = result.stdout + result.stderr
        assert result.returncode != 0, out[-4000:]
        assert "does not match pinned key" in out, out[-4000:]
        assert "trusting the host key seen on first use" not in out
        # the engine checked the worker alone: neither the hive nor the kick-off said a word
        assert "worker host1/cpu:" in out and "hive host1:" not in out
        assert "build host1:" not in out
        assert not exists(host, WORKER)
        # the stack exports the pins its resources hold: the next run reads them back
        assert p.outputs()["rbee:hostKeys"] == pinned
