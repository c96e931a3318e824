"""The pyinfra peer of rbee-infra: the same idempotent install of a hive and two workers.

Facts first (pyinfra's model): what the tag means now (`git ls-remote`), what is installed
(the recorded commit) and whether the binaries still match their recorded sha256; only when
something differs are the fetch and the builds run. Settings come from the inventory's host
data (see benchmarks/peers/pyinfra_peer.py); parallelism is pyinfra's default (all hosts).
"""

from pyinfra import host
from pyinfra.facts.server import Command
from pyinfra.operations import files, server

ROOT = ".rbee-peer-pyinfra"
BINARIES = (
    ("rbee-hive", "rbee-hive", ""),
    ("rbee-worker-cpu", "llm-worker-rbee-cpu", "cpu"),
    ("rbee-worker-cuda", "llm-worker-rbee-cuda", "cuda"),
)

repo, tag, cargo = host.data.repo, host.data.tag, host.data.cargo
commit = host.get_fact(
    Command, f"git ls-remote {repo} 'refs/tags/{tag}^{{}}' 'refs/tags/{tag}' | head -n 1 | cut -f1"
)
installed = host.get_fact(Command, f"cat {ROOT}/receipts/commit 2>/dev/null || true")
intact = host.get_fact(
    Command,
    f"cd {ROOT} 2>/dev/null && sha256sum -c --quiet receipts/sums 2>/dev/null && echo ok || true",
)

if installed != commit or intact != "ok":
    server.shell(
        name="Fetch the tag into the shared checkout",
        commands=[
            f"mkdir -p {ROOT}/receipts"
            f" && ( [ -d {ROOT}/checkout/.git ] || git init -q {ROOT}/checkout )"
            f" && git -C {ROOT}/checkout fetch -q --depth 1 --no-tags {repo} refs/tags/{tag}"
            f" && git -C {ROOT}/checkout checkout -q --force --detach FETCH_HEAD",
        ],
    )
    for name, binary, features in BINARIES:
        release = f"$HOME/{ROOT}/releases/{name}/{commit}"
        flags = f"--features {features}" if features else ""
        server.shell(
            name=f"Build and stage {binary}",
            commands=[
                f"cd {ROOT}/checkout && CARGO_TARGET_DIR=$HOME/{ROOT}/target"
                f" {cargo} build -q --release --bin {binary} {flags}"
                f" && mkdir -p {release}"
                f" && cp $HOME/{ROOT}/target/release/{binary} {release}/{binary}"
                f" && {{ {release}/{binary} --version 2>/dev/null | grep -q -- {binary}"
                f" || {release}/{binary} --help | grep -qi '^usage:'; }}",
            ],
        )

for name, binary, _ in BINARIES:
    files.link(
        name=f"Link {name}",
        path=f"{ROOT}/bin/{name}",
        target=f"../releases/{name}/{commit}/{binary}",
    )

if installed != commit or intact != "ok":
    server.shell(
        name="Record commit and sha256",
        commands=[
            f"cd {ROOT} && echo {commit} > receipts/commit"
            f" && sha256sum {' '.join(f'bin/{n}' for n, _, _ in BINARIES)} > receipts/sums",
        ],
    )
