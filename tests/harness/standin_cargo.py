"""A stand-in `cargo` for timing tests and benchmarks: it sleeps like a long build, then leaves
a binary that answers like the fixture's (the hive `--version`; a worker only `--help`),
without compiling anything.

Concurrency measurements need a build whose length does not depend on how many builds share
the machine's two cores; real cargo builds of 16 hosts at once would measure the CPU instead.
Hosts get it at `~/bench/cargo`; point a hive's `cargo` (or a peer tool) at `CARGO`.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Iterable
from pathlib import Path

from .hosts import Host

CARGO = "~/bench/cargo"

_SCRIPT = r"""#!/bin/sh
# stand-in cargo (benchmarks): sleeps, then writes a binary that answers like the fixture's
case "${1:-}" in
  --version) date +%s.%N >> "$HOME/bench/cargo.versions"; echo "cargo 1.80.0 (stand-in)"; exit 0;;
  build) shift;;
  *) echo "stand-in cargo: only build and --version" >&2; exit 1;;
esac
bin= features=
while [ $# -gt 0 ]; do
  case $1 in --bin) bin=$2; shift;; --features) features=$2; shift;; esac
  shift
done
[ -n "$bin" ] || { echo "stand-in cargo: --bin is required" >&2; exit 1; }
echo "   Compiling $bin (stand-in, __SECONDS__s)" >&2
log="$HOME/bench/cargo.log"
echo "start $(date +%s.%N) $bin" >> "$log"
sleep __SECONDS__
out="${CARGO_TARGET_DIR:-target}/release"
mkdir -p "$out" || exit 1
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml 2>/dev/null | head -n 1)
if [ "$bin" = rbee-hive ]; then
  printf '#!/bin/sh\necho "%s"\n' "rbee-hive ${version:-0.0.0}" > "$out/$bin.tmp"
else
  # like the fixture's (and rbee's) workers: no --version (usage error, exit 2), --help
  about="Fixture worker daemon shaped like rbee's (llm-worker-rbee ${version:-0.0.0}, features=${features:-none})"
  cat > "$out/$bin.tmp" <<EOF
#!/bin/sh
usage="Usage: \${0##*/} --worker-id <WORKER_ID> --model <MODEL> --model-ref <MODEL_REF> --port <PORT> --hive-url <HIVE_URL>"
if [ "\${1:-}" = --help ]; then printf '%s\n\n%s\n' "$about" "\$usage"; exit 0; fi
printf "error: unexpected argument '%s' found\n\n%s\n\nFor more information, try '--help'.\n" "\${1:-}" "\$usage" >&2
exit 2
EOF
fi
chmod 0755 "$out/$bin.tmp" && mv -f "$out/$bin.tmp" "$out/$bin"
echo "end $(date +%s.%N) $bin" >> "$log"
echo "    Finished release (stand-in)" >&2
"""


def script(seconds: float) -> str:
    return _SCRIPT.replace("__SECONDS__", f"{seconds:g}")


def version_queries(host: Host) -> int:
    """How many times `cargo --version` ran on `host` (a preflight's toolchain query)."""
    return int(host.run("cat bench/cargo.versions 2>/dev/null | wc -l").stdout.strip() or 0)


def builds(host: Host) -> list[tuple[float, float, str]]:
    """(start, end, binary) of every build the stand-in ran on `host` (epoch seconds)."""
    return parse_builds(host.run("cat bench/cargo.log 2>/dev/null || true").stdout)


def parse_builds(text: str) -> list[tuple[float, float, str]]:
    """(start, end, binary) of every finished build in a stand-in's `bench/cargo.log`."""
    starts: dict[str, list[float]] = {}
    out: list[tuple[float, float, str]] = []
    for line in text.splitlines():
        kind, stamp, binary = line.split(" ", 2)
        if kind == "start":
            starts.setdefault(binary, []).append(float(stamp))
        elif starts.get(binary):
            out.append((starts[binary].pop(0), float(stamp), binary))
    return out


def most_at_once(intervals: Iterable[tuple[float, float, str]]) -> int:
    """The largest number of builds that ran at the same instant."""
    edges = sorted((t, d) for a, b, _ in intervals for t, d in ((a, 1), (b, -1)))
    running = peak = 0
    for _, delta in edges:
        running += delta
        peak = max(peak, running)
    return peak


def install(hosts: Iterable[Host], seconds: float) -> str:
    """Put the stand-in on each host (replacing an earlier one); returns its `cargo` path."""
    text = script(seconds)
    for host in hosts:
        host.run(
            "mkdir -p bench && rm -f bench/cargo.log && cat > bench/cargo.tmp "
            "&& chmod 0755 bench/cargo.tmp "
            "&& mv -f bench/cargo.tmp bench/cargo",
            input=text,
        )
    return CARGO


_CONTROLLER = """#!/bin/sh
# stand-in cargo on the operator's machine (benchmarks): `build` is the stand-in's (it sleeps,
# its log under its own HOME), the rest (generate-lockfile, metadata, --version) the real cargo's
case "${1:-}" in
  build) HOME=__HOME__ exec __STANDIN__ "$@";;
esac
exec __CARGO__ "$@"
"""


def controller(folder: Path, seconds: float, cargo: str | None = None) -> Path:
    """The stand-in for this machine's cargo (`RBEE_INFRA_CARGO`, see `install.build_once`):
    builds sleep `seconds` and are logged in `folder/home/bench/cargo.log` (`controller_builds`);
    every other command goes to the real cargo (`cargo`, else the one on PATH). Returns its
    path."""
    real = cargo or shutil.which("cargo")
    if real is None:
        raise RuntimeError("the controller's stand-in needs a real cargo on PATH")
    home = folder / "home"
    (home / "bench").mkdir(parents=True, exist_ok=True)
    standin = folder / "standin-cargo"
    standin.write_text(script(seconds))
    standin.chmod(0o755)
    wrapper = folder / "cargo"
    wrapper.write_text(
        _CONTROLLER.replace("__HOME__", shlex.quote(str(home)))
        .replace("__STANDIN__", shlex.quote(str(standin)))
        .replace("__CARGO__", shlex.quote(real))
    )
    wrapper.chmod(0o755)
    return wrapper


def controller_builds(folder: Path) -> list[tuple[float, float, str]]:
    """The builds the stand-in made by `controller(folder, ...)` ran (start, end, binary)."""
    log = folder / "home" / "bench" / "cargo.log"
    return parse_builds(log.read_text() if log.exists() else "")

