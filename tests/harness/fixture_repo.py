"""A tiny dependency-free Rust workspace shaped like rbee, in git, served by `git daemon`
(`git_inetd`)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from .hosts import Host, free_port, stop_process

WORKER_BINS = ("llm-worker-rbee-cpu", "llm-worker-rbee-cuda", "llm-worker-rbee-metal")
FEATURES = ("cpu", "cuda", "metal")
HIVE_BIN = "rbee-hive"

_EPOCH = 1_700_000_000

# --------------------------------------------------------------------------- sources

_WORKSPACE_TOML = """\
[workspace]
members = ["bin/rbee-hive", "bin/llm-worker-rbee"]
resolver = "2"

[workspace.package]
version = "{version}"
edition = "2021"
"""

_HIVE_TOML = """\
[package]
name = "rbee-hive"
version.workspace = true
edition.workspace = true

[[bin]]
name = "rbee-hive"
path = "src/main.rs"
"""

_WORKER_TOML_HEAD = """\
[package]
name = "llm-worker-rbee"
version.workspace = true
edition.workspace = true

[lib]
name = "llm_worker_rbee"
path = "src/lib.rs"

[features]
default = [{default}]
cpu = []
cuda = []
metal = []
"""

_WORKER_BIN_TOML = """
[[bin]]
name = "llm-worker-rbee-{feature}"
path = "src/bin/{feature}.rs"
{required}"""

_HIVE_MAIN = r"""use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;

// rbee-hive's interface: -p/--port (default 7835), --hive-id (default localhost), --queen-url
// (default http://localhost:7833); binds 127.0.0.1 only; GET /health answers `ok`.
const USAGE: &str = "usage: rbee-hive [--version] [-p|--port PORT] [--hive-id ID] [--queen-url URL]";

fn serve(mut stream: TcpStream) {
    let mut buf = [0u8; 2048];
    let n = stream.read(&mut buf).unwrap_or(0);
    let request = String::from_utf8_lossy(&buf[..n]);
    let line = request.lines().next().unwrap_or("");
    let (status, body) = if line.starts_with("GET /health ") {
        __HEALTH__
    } else {
        ("404 Not Found", "not found")
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes());
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--version") {
__VERSION_BODY__
    }
    if args.first().map(String::as_str) == Some("--help") {
__HELP_BODY__
    }
    let mut port: u16 = 7835;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let value = it.next();
        match (arg.as_str(), value) {
            ("-p" | "--port", Some(v)) => match v.parse() {
                Ok(p) => port = p,
                Err(_) => {
                    eprintln!("{USAGE}");
                    return ExitCode::from(2);
                }
            },
            ("--hive-id" | "--queen-url", Some(_)) => {}
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rbee-hive: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::from(1);
        }
    };
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || serve(stream));
    }
    ExitCode::SUCCESS
}
__BROKEN__"""

_HIVE_VERSION_OK = """\
        println!("rbee-hive {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;"""

# clap's help: the about line, then the usage (clap names the program after argv[0])
_HIVE_HELP_OK = """\
        let argv0 = std::env::args().next().unwrap_or_default();
        let path = std::path::Path::new(&argv0);
        let name = path.file_name().and_then(|f| f.to_str()).unwrap_or("rbee-hive");
        println!("rbee hive daemon (fixture)\\n\\nUsage: {name} [OPTIONS]\\n\\nOptions:");
        println!("  -p, --port <PORT>        HTTP port");
        println!("      --hive-id <HIVE_ID>  Hive ID");
        println!("      --queen-url <URL>    Queen URL");
        println!("  -h, --help               Print help");
        println!("  -V, --version            Print version");
        return ExitCode::SUCCESS;"""

# Shaped like rbee's real workers (`bin/30_llm_worker_rbee/src/bin/<type>.rs`, clap 4 derive):
# no `version` attribute, so `--version` is an unexpected argument (exit 2, usage on stderr);
# five required arguments; `--help` prints the about line, the usage and the options, exit 0.
# The about line says what was built (version and features), for the tests to read.
_WORKER_LIB = r"""use std::process::ExitCode;

const ARGS: [(&str, &str, &str); 5] = [
    ("--worker-id", "<WORKER_ID>", "Worker ID (UUID) - assigned by pool-managerd"),
    ("--model", "<MODEL>", "Model file path (GGUF or SafeTensors format)"),
    ("--model-ref", "<MODEL_REF>", "Model reference (e.g., \"hf:tinyllama\")"),
    ("--port", "<PORT>", "HTTP server port - assigned by pool-managerd"),
    ("--hive-url", "<HIVE_URL>", "Hive URL - where to send heartbeats"),
];

pub fn features() -> String {
    let mut enabled: Vec<&str> = Vec::new();
    if cfg!(feature = "cpu") {
        enabled.push("cpu");
    }
    if cfg!(feature = "cuda") {
        enabled.push("cuda");
    }
    if cfg!(feature = "metal") {
        enabled.push("metal");
    }
    if enabled.is_empty() {
        "none".to_string()
    } else {
        enabled.join(",")
    }
}

fn usage(name: &str) -> String {
    let args: Vec<String> = ARGS.iter().map(|(flag, value, _)| format!("{flag} {value}")).collect();
    format!("Usage: {name} {}", args.join(" "))
}

fn fail(name: &str, error: &str) -> ExitCode {
    eprintln!("error: {error}\n\n{}\n\nFor more information, try '--help'.", usage(name));
    ExitCode::from(2)
}

pub fn run(bin: &str) -> ExitCode {
    // clap names the program after argv[0]
    let argv0 = std::env::args().next().unwrap_or_default();
    let name = std::path::Path::new(&argv0)
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or(bin)
        .to_string();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut given: Vec<(String, String)> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
__HELP_BODY__
        }
        match ARGS.iter().find(|(flag, _, _)| flag == arg) {
            Some((flag, value, _)) => match it.next() {
                Some(v) => given.push((flag.to_string(), v.clone())),
                None => {
                    let error = format!("a value is required for '{flag} {value}' but none was supplied");
                    return fail(&name, &error);
                }
            },
            None => return fail(&name, &format!("unexpected argument '{arg}' found")),
        }
    }
    let missing: Vec<String> = ARGS
        .iter()
        .filter(|(flag, _, _)| !given.iter().any(|(g, _)| g == flag))
        .map(|(flag, value, _)| format!("  {flag} {value}"))
        .collect();
    if !missing.is_empty() {
        let error = format!("the following required arguments were not provided:\n{}", missing.join("\n"));
        return fail(&name, &error);
    }
    println!("{name}: a worker would serve here (fixture, features={})", features());
    ExitCode::SUCCESS
}
__BROKEN__"""

_WORKER_HELP_OK = """\
            println!(
                "Fixture worker daemon shaped like rbee's (llm-worker-rbee {}, features={})\\n\\n{}\\n\\nOptions:",
                env!("CARGO_PKG_VERSION"),
                features(),
                usage(&name)
            );
            for (flag, value, help) in ARGS {
                println!("      {flag} {value}  {help}");
            }
            println!("  -h, --help  Print help");
            return ExitCode::SUCCESS;"""

_BAD_VERSION = """\
        eprintln!("version check failed");
        return ExitCode::from(3);"""

_BAD_HELP = """\
            eprintln!("help check failed");
            return ExitCode::from(3);"""

_BROKEN = """
pub fn broken() -> u32 {
    let n: u32 = "this does not compile";
    n
}
"""

_WORKER_BIN_MAIN = """fn main() -> std::process::ExitCode {{
    llm_worker_rbee::run("llm-worker-rbee-{feature}")
}}
"""


# `build-script` (see `RbeeRepo.build_script_branch`): a hive build script that fails the way
# rbee's does on a host without pnpm (bin/20_rbee_hive/build.rs): it panics after printing its
# rerun directives, and cargo reports "failed to run custom build command". Preflight now
# refuses a build script that runs pnpm before any build, so this one runs a UI builder that
# preflight cannot foresee (`rbee-ui-build`, looked up on an empty PATH, never found): a
# build-script failure that only the build shows. Each build script appends
# `<event> <epoch seconds>` to ~/rbee-fixture-build.log.
_STAMP = r"""
fn stamp(event: &str) {
    use std::io::Write;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".to_string());
    if let Ok(mut log) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(format!("{home}/rbee-fixture-build.log"))
    {
        let _ = writeln!(log, "{event} {now:.3}");
    }
}
"""

_HIVE_BUILD_RS = r"""use std::process::Command;

fn main() {
    for n in 0..40 {
        println!("cargo:rerun-if-changed=ui/packages/rbee-hive-sdk/src/part{n}.ts");
    }
    for var in ["PNPM_HOME", "NODE_ENV", "npm_config_user_agent", "RBEE_SKIP_UI", "CI",
                "VITE_API_URL", "VITE_QUEEN_URL", "RBEE_UI_DIST", "NODE_OPTIONS", "PATH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:warning=building the rbee-hive UI");
    stamp("hive-build-script-panics");
    Command::new("rbee-ui-build")
        .args(["--filter", "@rbee/rbee-hive-sdk", "build"])
        .env("PATH", "/nonexistent")
        .status()
        .expect("Failed to build rbee-hive-sdk");
}
""" + _STAMP

# a worker build script that keeps both cores busy for __SECONDS__ s (a long compile)
_WORKER_BUILD_RS = r"""use std::time::{Duration, Instant};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    stamp("worker-build-script-starts");
    let end = Instant::now() + Duration::from_secs_f64(__SECONDS__);
    let burners: Vec<_> = (0..2u64)
        .map(|seed| {
            std::thread::spawn(move || {
                let mut x = seed;
                while Instant::now() < end {
                    for _ in 0..100_000 {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    }
                }
                x
            })
        })
        .collect();
    let sum = burners.into_iter().map(|b| b.join().unwrap_or(0)).fold(0, u64::wrapping_add);
    println!("cargo:rustc-env=RBEE_FIXTURE_BURN={sum}");
    stamp("worker-build-script-ends");
}
""" + _STAMP


# the hive build script's panic message, as cargo shows it
BUILD_SCRIPT_PANIC = (
    'Failed to build rbee-hive-sdk: Os { code: 2, kind: NotFound, message: "No such file or '
    'directory" }'
)


def build_script_events(host: Host) -> dict[str, float]:
    """What the `build-script` branch's build scripts stamped on `host`: event -> epoch."""
    text = host.run("cat rbee-fixture-build.log 2>/dev/null || true").stdout
    return {event: float(stamp) for event, stamp in (ln.split() for ln in text.splitlines())}


def build_processes(host: Host) -> list[str]:
    """The command lines of cargo (the real one or the stand-in) and of build scripts running
    as `host`'s user."""
    out = host.run('ps -u "$(id -u)" -o args= || true').stdout
    return [ln for ln in out.splitlines() if "build-script-build" in ln or "cargo build" in ln]


def build_script_files(*, worker_seconds: float = 0.0) -> dict[str, str]:
    """The `build-script` variant: the hive's build script fails like rbee's without pnpm,
    the worker's build script burns both cores for `worker_seconds` first."""
    return {
        "bin/rbee-hive/build.rs": _HIVE_BUILD_RS,
        "bin/llm-worker-rbee/build.rs": _WORKER_BUILD_RS.replace(
            "__SECONDS__", f"{float(worker_seconds)!r}"
        ),
    }


# `unhealthy`: it listens, but /health says it is not ready
_UNHEALTHY = '("503 Service Unavailable", "starting: no worker yet")'

# `no-listen`: --version answers, but serving (`--port N`) exits 1 at once
_NO_LISTEN = """\
    if !args.is_empty() {
        eprintln!("rbee-hive: refusing to listen (no-listen fixture)");
        return ExitCode::from(1);
    }
"""


def _hive_main(
    *, bad_version: bool = False, broken: bool = False, no_listen: bool = False,
    unhealthy: bool = False,
) -> str:
    text = (
        _HIVE_MAIN.replace("__VERSION_BODY__", _BAD_VERSION if bad_version else _HIVE_VERSION_OK)
        .replace("__HELP_BODY__", _BAD_HELP if bad_version else _HIVE_HELP_OK)
        .replace("__BROKEN__", _BROKEN if broken else "")
        .replace("__HEALTH__", _UNHEALTHY if unhealthy else '("200 OK", "ok")')
    )
    if no_listen:
        anchor = "    let mut port: u16 = 7835;\n"
        text = text.replace(anchor, _NO_LISTEN + anchor, 1)
    return text


def _worker_lib(*, bad_version: bool = False, broken: bool = False) -> str:
    """`bad_version`: `--help` fails too (exit 3), so no check can pass."""
    return _WORKER_LIB.replace("__HELP_BODY__", _BAD_HELP if bad_version else _WORKER_HELP_OK).replace(
        "__BROKEN__", _BROKEN if broken else ""
    )


def _worker_toml(default_features: tuple[str, ...], required_features: bool) -> str:
    text = _WORKER_TOML_HEAD.format(default=", ".join(f'"{f}"' for f in default_features))
    for feat in FEATURES:
        req = f'required-features = ["{feat}"]\n' if required_features else ""
        text += _WORKER_BIN_TOML.format(feature=feat, required=req)
    return text


def workspace_files(
    version: str,
    *,
    bad_version: bool = False,
    broken: bool = False,
    no_listen: bool = False,
    unhealthy: bool = False,
    worker_default_features: tuple[str, ...] = (),
    worker_required_features: bool = False,
) -> dict[str, str]:
    files = {
        ".gitignore": "/target\nCargo.lock\n",
        "README.md": "Test fixture shaped like rbee (no dependencies).\n",
        "Cargo.toml": _WORKSPACE_TOML.format(version=version),
        "bin/rbee-hive/Cargo.toml": _HIVE_TOML,
        "bin/rbee-hive/src/main.rs": _hive_main(
            bad_version=bad_version, broken=broken, no_listen=no_listen, unhealthy=unhealthy
        ),
        "bin/llm-worker-rbee/Cargo.toml": _worker_toml(
            worker_default_features, worker_required_features
        ),
        "bin/llm-worker-rbee/src/lib.rs": _worker_lib(bad_version=bad_version, broken=broken),
    }
    for feat in FEATURES:
        files[f"bin/llm-worker-rbee/src/bin/{feat}.rs"] = _WORKER_BIN_MAIN.format(feature=feat)
    return files


def expected_version_line(bin_name: str, version: str) -> str:
    """The exact `--version` line the fixture's hive prints. Its workers, like rbee's, have
    no `--version` (see `expected_worker_about`)."""
    if bin_name != HIVE_BIN:
        raise ValueError(f"{bin_name} has no --version (as in rbee): use expected_worker_about")
    return f"rbee-hive {version}"


def expected_worker_about(version: str, features: tuple[str, ...] = ()) -> str:
    """The first line of a fixture worker's `--help`: what was built."""
    enabled = [f for f in FEATURES if f in features]
    return (
        f"Fixture worker daemon shaped like rbee's (llm-worker-rbee {version}, "
        f"features={','.join(enabled) or 'none'})"
    )


def worker_usage(name: str) -> str:
    """The usage line of a fixture worker run as `name` (clap names it after argv[0])."""
    return (
        f"Usage: {name} --worker-id <WORKER_ID> --model <MODEL> --model-ref <MODEL_REF> "
        "--port <PORT> --hive-url <HIVE_URL>"
    )


# --------------------------------------------------------------------------- git


def _git_env(tick: int) -> dict[str, str]:
    date = f"{_EPOCH + tick * 60} +0000"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_AUTHOR_NAME="rbee fixture",
        GIT_AUTHOR_EMAIL="fixture@rbee.invalid",
        GIT_COMMITTER_NAME="rbee fixture",
        GIT_COMMITTER_EMAIL="fixture@rbee.invalid",
        GIT_AUTHOR_DATE=date,
        GIT_COMMITTER_DATE=date,
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
    )
    return env


def _wait_port(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"git daemon exited with {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.01)
    raise TimeoutError(f"git daemon on {host}:{port} not ready")


@dataclass
class RbeeRepo:
    base_dir: Path
    path: Path  # bare repository that is served
    work_path: Path  # non-bare clone used to make commits
    port: int = 0
    worker_default_features: tuple[str, ...] = ()
    worker_required_features: bool = False
    _daemon: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _tick: int = field(default=0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def url(self) -> str:
        if self._daemon is None:
            raise RuntimeError("git daemon is not running (make_rbee_repo(serve=False)?)")
        return f"git://127.0.0.1:{self.port}/{self.path.name}"

    @property
    def file_url(self) -> str:
        return self.path.as_uri()

    def git(self, *args: str, cwd: Path | None = None) -> str:
        self._tick += 1
        r = subprocess.run(
            ["git", *args], cwd=cwd or self.work_path, env=_git_env(self._tick),
            capture_output=True, text=True,
        )
        if r.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {r.stderr}")
        return r.stdout.strip()

    def commit_of(self, ref: str) -> str:
        return self.git("rev-parse", f"{ref}^{{commit}}", cwd=self.path)

    @property
    def tags(self) -> dict[str, str]:
        out = self.git("tag", "--list", cwd=self.path)
        return {t: self.commit_of(t) for t in out.split()}

    @property
    def branches(self) -> dict[str, str]:
        out = self.git("for-each-ref", "--format=%(refname:short) %(objectname)",
                       "refs/heads", cwd=self.path)
        return dict(line.split() for line in out.splitlines())

    def write_files(self, files: dict[str, str]) -> None:
        for rel, text in files.items():
            p = self.work_path / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)

    def commit(self, branch: str, files: dict[str, str], message: str) -> str:
        """Commit `files` on `branch` (created from main if missing), publish, return sha."""
        with self._lock:
            start = self.branches.get(branch) or self.commit_of("main")
            self.git("checkout", "-q", "-B", branch, start)
            self.write_files(files)
            self.git("add", "-A")
            self.git("commit", "-q", "-m", message)
            sha = self.git("rev-parse", "HEAD")
            self.git("push", "-q", "--force", "origin", f"{branch}:{branch}")
            self.git("checkout", "-q", "main")
            return sha

    def advance_branch(self, branch: str, version: str, **variant: bool) -> str:
        """Add a commit on `branch` that sets the workspace version; returns its sha."""
        files = workspace_files(
            version,
            worker_default_features=self.worker_default_features,
            worker_required_features=self.worker_required_features,
            **variant,
        )
        return self.commit(branch, files, f"{branch}: version {version}")

    def build_script_branch(self, branch: str, *, worker_seconds: float = 0.0) -> str:
        """A branch (from main, version 0.2.0) whose hive's build script panics as rbee's does
        without pnpm, and whose workers' build script keeps both cores busy for
        `worker_seconds` (see `build_script_files`); returns its commit."""
        files = {
            **workspace_files(
                "0.2.0",
                worker_default_features=self.worker_default_features,
                worker_required_features=self.worker_required_features,
            ),
            **build_script_files(worker_seconds=worker_seconds),
        }
        return self.commit(branch, files, f"{branch}: the hive's build script fails")

    def tag(self, name: str, ref: str) -> str:
        with self._lock:
            self.git("tag", "-a", name, "-m", name, ref)
            self.git("push", "-q", "origin", f"refs/tags/{name}")
        return self.commit_of(name)

    def serve(self) -> None:
        if self._daemon is not None:
            return
        self.port = free_port()
        log = open(self.base_dir / "git-daemon.log", "ab")  # noqa: SIM115 - lives with daemon
        # `git daemon --inetd` per connection behind a listening socket with a real backlog:
        # the benchmarks' 64 hosts ask at once, which git daemon's own backlog of 5 drops
        self._daemon = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("git_inetd.py")), str(self.port),
             str(self.path.parent), str(self.path.parent)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )  # fmt: skip
        log.close()
        _wait_port("127.0.0.1", self.port, self._daemon)

    @property
    def server_pid(self) -> int | None:
        """The git server's process, while it serves (its connections' CPU is its children's)."""
        return self._daemon.pid if self._daemon is not None else None

    def close(self) -> None:
        if self._daemon is not None:
            stop_process(self._daemon)
            self._daemon = None

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> RbeeRepo:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def cargo_build_check(self, ref: str = "main", *, features: str = "cpu,cuda,metal") -> None:
        """Build `ref` once with the machine's cargo (as the current user) to prove it compiles."""
        with tempfile.TemporaryDirectory(prefix="rbee-build-check-") as tmp:
            src = Path(tmp) / "src"
            subprocess.run(["git", "clone", "-q", "--branch", ref, self.file_url, str(src)],
                           check=True, capture_output=True)
            r = subprocess.run(
                ["cargo", "build", "--release", "--offline", "--workspace", "--features",
                 f"llm-worker-rbee/{features.replace(',', ',llm-worker-rbee/')}"],
                cwd=src, capture_output=True, text=True,
            )
            if r.returncode != 0:
                raise RuntimeError(f"cargo build of {ref} failed:\n{r.stderr[-3000:]}")


def make_rbee_repo(
    base_dir: Path,
    *,
    serve: bool = True,
    worker_default_features: tuple[str, ...] = (),
    worker_required_features: bool = False,
) -> RbeeRepo:
    """Create the fixture repo under a new directory in `base_dir` (made world-readable).

    History: v0.1.0 (tag) -> v0.2.0 (tag, main); branches `broken`, `bad-version` (no binary
    passes a check: `--version` and `--help` exit 3) and `moving` start at main; `no-listen` (version 0.3.0: `--version` works, `--port` exits 1);
    `unhealthy` (version 0.3.0: it listens, but GET /health answers 503).
    """
    root = Path(tempfile.mkdtemp(prefix="rbee-repo-", dir=base_dir))
    root.chmod(0o755)
    srv = root / "srv"
    srv.mkdir()
    bare = srv / "rbee.git"
    work = root / "work"
    repo = RbeeRepo(root, bare, work, worker_default_features=worker_default_features,
                    worker_required_features=worker_required_features)

    def files(version: str, **flags: bool) -> dict[str, str]:
        return workspace_files(
            version,
            worker_default_features=worker_default_features,
            worker_required_features=worker_required_features,
            **flags,
        )

    try:
        repo.git("init", "-q", "-b", "main", str(work), cwd=root)
        repo.write_files(files("0.1.0"))
        repo.git("add", "-A")
        repo.git("commit", "-q", "-m", "rbee 0.1.0")
        repo.git("tag", "-a", "v0.1.0", "-m", "v0.1.0")
        repo.write_files(files("0.2.0"))
        repo.git("commit", "-q", "-am", "rbee 0.2.0")
        repo.git("tag", "-a", "v0.2.0", "-m", "v0.2.0")
        repo.git("clone", "-q", "--bare", str(work), str(bare), cwd=root)
        repo.git("remote", "add", "origin", str(bare))
        repo.commit("broken", files("0.2.0", broken=True), "broken: does not compile")
        repo.commit("bad-version", files("0.2.0", bad_version=True), "bad-version: --version and --help fail")
        repo.commit("no-listen", files("0.3.0", no_listen=True), "no-listen: --port exits 1")
        repo.commit("unhealthy", files("0.3.0", unhealthy=True), "unhealthy: /health says 503")
        repo.git("push", "-q", "origin", "main:moving")
        subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
        if serve:
            repo.serve()
    except BaseException:
        repo.remove()
        raise
    return repo


# --------------------------------------------------------------------------- web UI variant

# rbee's hive has a build script that builds its web UI with pnpm and wasm-pack (Node.js, pnpm,
# the pnpm workspace's install, wasm-pack and the wasm32 target), a rust-toolchain.toml with
# targets, and no Cargo.lock. This variant has the same shape, dependency-free: `pnpm build`
# in bin/rbee-hive/ui runs `wasm-pack build`, and the UI's workspace dependency is only there
# once `pnpm install` ran in the root (the build script refuses to go on without it).
WEB_UI_PNPM = "9.15.0"

_WEB_UI_BUILD_RS = r"""// Builds the hive's web UI before the hive (as rbee's bin/20_rbee_hive/build.rs does).
use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=ui/package.json");
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let ui = Path::new(&manifest_dir).join("ui");
    if !ui.join("node_modules").exists() {
        panic!("the UI's dependencies are not installed: run 'pnpm install' in the workspace root");
    }
    let status = Command::new("pnpm")
        .args(["build"])
        .current_dir(&ui)
        .status()
        .expect("Failed to build the hive UI");
    if !status.success() {
        panic!("UI build failed! Run 'cd bin/rbee-hive/ui && pnpm build' to debug.");
    }
    if !ui.join("pkg").exists() {
        panic!("UI output not found at {:?} after build", ui.join("pkg"));
    }
}
"""

_WEB_UI_FILES = {
    ".gitignore": "/target\nCargo.lock\nnode_modules\n/bin/rbee-hive/ui/pkg\n",
    "rust-toolchain.toml": (
        '[toolchain]\nchannel = "stable"\ncomponents = ["rustfmt", "clippy"]\n'
        'targets = ["wasm32-wasip1", "wasm32-wasip1-threads"]\n'
    ),
    "package.json": (
        '{\n  "name": "rbee-fixture",\n  "private": true,\n'
        f'  "packageManager": "pnpm@{WEB_UI_PNPM}",\n'
        '  "engines": {\n    "node": ">=18"\n  }\n}\n'
    ),
    "pnpm-workspace.yaml": "packages:\n  - bin/rbee-hive/ui\n  - bin/rbee-hive/ui/sdk\n",
    # written by pnpm 9.15.0 for this workspace
    "pnpm-lock.yaml": """\
lockfileVersion: '9.0'

settings:
  autoInstallPeers: true
  excludeLinksFromLockfile: false

importers:

  .: {}

  bin/rbee-hive/ui:
    dependencies:
      '@rbee/fixture-hive-sdk':
        specifier: workspace:*
        version: link:sdk

  bin/rbee-hive/ui/sdk: {}
""",
    "bin/rbee-hive/build.rs": _WEB_UI_BUILD_RS,
    "bin/rbee-hive/ui/package.json": """\
{
  "name": "@rbee/fixture-hive-ui",
  "private": true,
  "scripts": {
    "build": "wasm-pack build --target bundler --out-dir pkg"
  },
  "dependencies": {
    "@rbee/fixture-hive-sdk": "workspace:*"
  }
}
""",
    "bin/rbee-hive/ui/sdk/package.json": (
        '{\n  "name": "@rbee/fixture-hive-sdk",\n  "version": "0.1.0",\n  "private": true\n}\n'
    ),
}


def web_ui_files(version: str, **variant: bool) -> dict[str, str]:
    """The workspace at `version` with the web UI build of rbee's hive (see above)."""
    return {**workspace_files(version, **variant), **_WEB_UI_FILES}


def add_web_ui_branch(repo: RbeeRepo, branch: str = "web-ui", version: str = "0.3.0") -> str:
    """Commit the web UI variant on `branch` (from main); returns its commit."""
    files = web_ui_files(
        version,
        worker_default_features=repo.worker_default_features,
        worker_required_features=repo.worker_required_features,
    )
    return repo.commit(branch, files, f"{branch}: the hive builds a web UI (pnpm, wasm-pack)")
