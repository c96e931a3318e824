"""Install rbee's real repository through the real `pulumi up`, on test hosts, and measure it.

    sudo python3 scripts/real-rbee.py [--tarball PATH] [--skip-host] [--skip-once]

Too long for CI (each real worker build compiles ~330 crates: minutes on 2 cores); CI runs
the main job on the same tree (tests/e2e/test_main_job.py) and fast tests on fixtures. The
tree is rbee's `git archive` at a fixed commit (`../shared/real-rbee/`, checked against its
SHA256SUMS), committed and served by `git daemon` on 127.0.0.1; crates come from crates.io.
Hosts are the test harness's: real sshd on 127.0.0.x, a unix user each (root needed).

1. `build: host`: one host; its hive is a prebuilt binary (`local`: the fixture's rbee-hive,
   since rbee's own hive cannot be built where no wasm32 target can be had) and its `cpu`
   worker is rbee's real llm-worker-rbee-cpu, built on the host: build time, disk, the check
   it passed, its version; then a second `up` (nothing to do).
2. `build: controller`: two hosts; the real worker is built once on this machine and shipped
   to both: the build's time, each host's install time, and a third host added after, which
   receives the same build without a new one.

Prints a report (Markdown) for docs/real-rbee.md, and writes it to reports/real-rbee.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.project import Project, project_on  # noqa: E402
from tests.harness import real_tree  # noqa: E402
from tests.harness.fixture_repo import make_rbee_repo  # noqa: E402
from tests.harness.fleet import make_fleet  # noqa: E402
from tests.harness.hosts import HostSet, start_hosts  # noqa: E402

WORKER = ".local/share/rbee/workers/rbee-worker-cpu"


def machine() -> str:
    cores = os.cpu_count()
    load = os.getloadavg()
    with open("/proc/uptime") as handle:
        up = float(handle.read().split()[0])
    return (f"{cores} cores, load average {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}, "
            f"up {up / 60:.0f} min")


def sh(host: Any, command: str) -> str:
    return host.run(command, check=False).stdout.strip()


def fixture_hive(base: Path) -> Path:
    """A prebuilt rbee-hive for the `local` method (the fixture's: rbee's own cannot be built
    here without a wasm32 target)."""
    repo = make_rbee_repo(base, serve=False)
    out = base / "hive-build"
    subprocess.run(["git", "clone", "-q", repo.file_url, str(out)], check=True)
    subprocess.run(["cargo", "build", "--release", "--offline", "--bin", "rbee-hive"], cwd=out,
                   check=True, capture_output=True)
    binary = base / "rbee-hive"
    shutil.copy(out / "target" / "release" / "rbee-hive", binary)
    repo.remove()
    return binary


def stack(hosts: HostSet, tree: real_tree.RealTree, hive: Path, build: str) -> dict[str, Any]:
    config = make_fleet(hosts, tree, workers_per_hive=1,  # type: ignore[arg-type]
                        ref={"branch": "main"})
    for entry in config["rbee:hives"]:
        entry["installMethod"] = {"local": {"path": str(hive)}}
        entry["workers"] = [{"type": "cpu", "installMethod": {"git": {"repo": tree.url,
                                                                      "branch": "main"}}}]
        entry["cargo"] = "/usr/bin/cargo"  # the hosts' system cargo (no rustup)
    config["rbee:build"] = build
    config["rbee:buildTimeout"] = 7200
    return config


def timed_up(project: Project) -> tuple[float, str]:
    started = time.monotonic()
    done = project.run("up", "--yes", "--skip-preview", timeout=7200)
    took = time.monotonic() - started
    out = done.stdout + done.stderr
    if done.returncode != 0:
        raise SystemExit(f"pulumi up failed after {took:.0f}s:\n{out[-6000:]}")
    return took, out


def phase(project: Project, resource: str) -> dict[str, Any]:
    state = project.export()
    for res in state["deployment"]["resources"]:
        if res["urn"].endswith(f"::{resource}"):
            return res.get("outputs", {})
    return {}


def host_mode(base: Path, tree: real_tree.RealTree, hive: Path, report: list[str]) -> None:
    hosts = start_hosts(1)
    try:
        with project_on(hosts, tree, base / "host-mode") as project:  # type: ignore[arg-type]
            project.write_config(stack(hosts, tree, hive, "host"))
            report.append(f"### `build: host`, one host ({machine()} at the start)\n")
            took, _ = timed_up(project)
            (host,) = hosts.hosts
            outs = phase(project, "worker-host1-cpu")
            receipt = json.loads(sh(host, "cat .local/share/rbee/receipts/rbee-worker-cpu.json"))
            disk = sh(host, "du -sh .local/share/rbee/build | cut -f1")
            registry = sh(host, "du -sh .cargo/registry 2>/dev/null | cut -f1") or "-"
            usage = sh(host, f"{WORKER} --help | grep -m1 Usage")
            report += [
                f"- `pulumi up` (hive shipped as a local binary, worker built on the host): "
                f"**{took:.0f} s**",
                f"- the worker's phases (seconds): `{json.dumps(outs.get('phaseSeconds'))}`",
                f"- build dir (checkout + cargo target) after the build: **{disk}**; the user's "
                f"cargo registry (crates downloaded): {registry}",
                f"- installed `{receipt['version']}` at commit `{receipt['commit'][:12]}`, "
                f"verified by `{receipt['verifiedBy']}` (`{usage}`)",
            ]
            again, out = timed_up(project)
            report.append(f"- a second `up`: {again:.0f} s, "
                          f"{'nothing changed' if 'updated' not in out else 'changes!'}")
            project.pulumi("destroy", "--yes", "--skip-preview")
            report.append("")
    finally:
        hosts.close()


def once_mode(base: Path, tree: real_tree.RealTree, hive: Path, report: list[str]) -> None:
    hosts = start_hosts(3)
    two = dataclasses.replace(hosts, hosts=hosts.hosts[:2])
    env_cache = base / "controller-cache"
    try:
        with project_on(two, tree, base / "once-mode") as project:  # type: ignore[arg-type]
            project.env["RBEE_INFRA_CACHE"] = str(env_cache)
            # this machine's system cargo, as on the hosts: rustup's would first try to add
            # the targets the tree's rust-toolchain.toml lists
            project.env["RBEE_INFRA_CARGO"] = "/usr/bin/cargo"
            project.write_config(stack(two, tree, hive, "controller"))
            report.append(f"### `build: controller`, two hosts then a third ({machine()})\n")
            took, _ = timed_up(project)
            state = project.export()["deployment"]["resources"]
            build = next(r for r in state if "::build-controller-llm-worker-rbee-cpu" in r["urn"])
            outs = build["outputs"]
            cache = subprocess.run(["du", "-sh", str(env_cache)], capture_output=True, text=True)
            report += [
                f"- `pulumi up` of two hosts, the worker built once on this machine and "
                f"shipped to both: **{took:.0f} s** (the build: {outs.get('buildSeconds')} s, "
                f"Cargo.lock {outs.get('lockOrigin')}, cache key `{outs['artifact']['key']}`)",
                f"- this machine's build cache: {cache.stdout.split()[0]}",
            ]
            project.hosts = hosts
            project.write_config(stack(hosts, tree, hive, "controller"))
            third, out = timed_up(project)
            rebuilt = "building llm-worker-rbee-cpu" in out
            what = "rebuilt!" if rebuilt else "the same build shipped, nothing compiled"
            report.append(f"- a third host added: **{third:.0f} s**, {what}")
            project.pulumi("destroy", "--yes", "--skip-preview")
            report.append("")
    finally:
        hosts.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tarball", type=Path, help="rbee's tree (default: ../shared/real-rbee)")
    parser.add_argument("--skip-host", action="store_true")
    parser.add_argument("--skip-once", action="store_true")
    args = parser.parse_args(argv)
    tarball = args.tarball
    if tarball is None:
        tarball, why = real_tree.find_tarball()
        if tarball is None:
            print(why, file=sys.stderr)
            return 2
    base = Path(tempfile.mkdtemp(prefix="rbee-real-run-"))
    base.chmod(0o755)
    tree = real_tree.serve(tarball, base)
    report = [f"## rbee's real tree ({tarball.name}), through the real `pulumi up`\n"]
    (ROOT / "reports").mkdir(exist_ok=True)
    try:
        hive = fixture_hive(base)
        if not args.skip_host:
            host_mode(base, tree, hive, report)
            save(report)
        if not args.skip_once:
            once_mode(base, tree, hive, report)
    finally:
        tree.close()
        shutil.rmtree(base, ignore_errors=True)
        save(report)  # what was measured, also when a later part failed
    print("\n".join(report))
    return 0


def save(report: list[str]) -> None:
    (ROOT / "reports" / "real-rbee.md").write_text("\n".join(report) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
