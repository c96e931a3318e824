"""Run the benchmarks on real sshd hosts on this machine (root needed, like the test suite):

    python -m benchmarks.run            # 1 to 7 and 11 (about 16 minutes on 2 cores)
    python -m benchmarks.run --quick    # smaller fleets, one repeat (about 3 minutes)
    python -m benchmarks.run --only 2,4 --json reports/benchmarks.json
    python -m benchmarks.run --only 5,8 --sizes 16,32,64   # at scale: 64 sshd hosts
    python -m benchmarks.run --only 9   # build once against on every host; 64 sshd hosts

Needs the `bench` extra (`pip install -e '.[bench]'`: pyinfra, ansible-core), git, cargo,
sshd, the OpenSSH client, and for benchmarks 5, 8 and 9 the Pulumi CLI
(`bash scripts/install-pulumi.sh`).
Each benchmark prints its table with the ratios measured side by side in this run; `--json`
also writes every number (default reports/benchmarks.json).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import benchmarks
import rbee_infra
from benchmarks import (
    build_once,
    cli_noop,
    cold_install,
    concurrency,
    handshake,
    inventory_read,
    noop_sync,
    scale_install,
    startup,
    status_bench,
    wan_noop,
)
from benchmarks.common import open_lab
from benchmarks.conditions import adopt_orphans, header
from tests.harness._provider_proc import hear_interrupts

BENCHMARKS = {
    "1": cold_install,
    "2": noop_sync,
    "3": concurrency,
    "4": status_bench,
    "5": cli_noop,
    "6": startup,
    "7": handshake,
    "8": scale_install,
    "9": build_once,
    "10": wan_noop,
    "11": inventory_read,
}
# run by default: 8 and 9 start 64 hosts (choose them with --only)
DEFAULT = "1,2,3,4,5,6,7,11"


def byte_compile() -> list[Path]:
    """Compile rbee-infra's modules (and the benchmarks') to bytecode, as a wheel's install
    and the set-up scripts do. A process started where PYTHONDONTWRITEBYTECODE is set would
    otherwise compile them from source again, each program and provider process of every run
    (0.1 s of CPU each), which an installed rbee-infra does not pay. Returns the packages."""
    packages = [Path(rbee_infra.__file__).parent, Path(benchmarks.__file__).parent]
    for package in packages:
        compileall.compile_dir(package, quiet=1)
    return packages


def machine() -> str:
    return f"{os.cpu_count()} cores, {platform.system()} {platform.machine()}"


def main(argv: list[str] | None = None) -> int:
    hear_interrupts()  # a run started in the background measures what one in a terminal does
    adopt_orphans()  # a run's CPU includes its processes that outlive their parent
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description="rbee-infra benchmarks on local sshd hosts"
    )
    parser.add_argument("--quick", action="store_true", help="smaller fleets, one repeat")
    parser.add_argument("--only", default=DEFAULT, help="comma-separated benchmark numbers")
    parser.add_argument(
        "--sizes", default="",
        help="fleet sizes for benchmarks 5, 8 and 10, e.g. 16,32,64 (5: 1,8,16; 8: 16,64; "
        "10: 1,16)",
    )  # fmt: skip
    parser.add_argument(
        "--naive", action="store_true",
        help="benchmark 3 also without the build kick-off (4 and 16 hosts; slow)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=Path("reports/benchmarks.json"))
    args = parser.parse_args(argv)
    chosen = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in BENCHMARKS]
    if unknown:
        parser.error(f"no benchmark {unknown[0]} (choose from {', '.join(BENCHMARKS)})")
    if os.geteuid() != 0:
        print("the benchmarks start sshd hosts as local users: run them as root", file=sys.stderr)
        return 2
    sizes = [int(n) for n in args.sizes.split(",") if n.strip()]
    hosts = max([8 if args.quick else 16, *sizes])
    if ("8" in chosen and not sizes) or "9" in chosen:
        hosts = max(hosts, 8 if args.quick else 64)
    byte_compile()
    started = time.monotonic()
    report: dict[str, Any] = {"machine": machine(), "quick": args.quick, "benchmarks": {}}
    print(f"# rbee-infra benchmarks ({report['machine']}{', quick' if args.quick else ''})\n")
    report["conditions"] = header()
    print(f"conditions at the start: {report['conditions']}\n", flush=True)
    lab = open_lab(hosts)
    try:
        for number in chosen:
            module = BENCHMARKS[number]
            t0 = time.monotonic()
            kwargs: dict[str, Any] = {"quick": args.quick}
            if number == "3":
                kwargs["naive"] = args.naive
            if number in ("5", "8", "10") and sizes:
                kwargs["sizes"] = sizes
            result = module.run(lab, **kwargs)
            result["wall_seconds"] = round(time.monotonic() - t0, 1)
            report["benchmarks"][number] = result
            verdict = "met" if result["met"] else "NOT met"
            result["conditions"] = header()
            print(f"## {number}. {result['name']}\n\n{result['table']}\n")
            print(f"conditions after it: {result['conditions']}")
            took = result["wall_seconds"]
            print(f"target {result['target']}: {verdict} ({took} s)\n", flush=True)
    finally:
        lab.close()
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"all numbers: {args.json} ({report['wall_seconds']} s in all)")
    return 0 if all(r["met"] for r in report["benchmarks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
