"""Preflight and the hive service, the pure half: what a host lacks (each problem's exact text),
the facts the probe reports (the real PROBE script run locally), the diff decisions service
state drives, the systemd unit, the health parser, and the new config fields."""

from __future__ import annotations

import os
import subprocess
import tempfile
from shutil import which
from typing import Any

import pytest

from rbee_infra.base.errors import ConfigError
from rbee_infra.config.fleet import parse_fleet
from rbee_infra.config.spec import InstallSpec, parse_spec
from rbee_infra.decide import plan, preflight
from rbee_infra.decide.facts import HostFacts, parse_probe
from rbee_infra.host import scripts, service
from rbee_infra.host.ssh import script_command

pytestmark = pytest.mark.unit

CONN = {"host": "127.0.0.5", "port": 22, "user": "vagrant", "knownHosts": "/k"}
GIT = {"method": "git", "repo": "https://example.org/r.git", "tag": "v1"}
RELEASE = {"method": "release", "tag": "v1", "sha256": "a" * 64}
TOOLS = {"git": "/usr/bin/git", "flock": "/usr/bin/flock", "curl": "/usr/bin/curl"}
GB = 1024 * 1024  # KiB


def spec(**extra: Any) -> InstallSpec:
    props: dict[str, Any] = {
        "alias": "cpu-host",
        "component": "hive",
        "binary": "rbee-hive",
        "source": GIT,
        "connection": CONN,
    }
    props.update(extra)
    return parse_spec(props)


def cuda_worker(**extra: Any) -> InstallSpec:
    return spec(
        component="worker",
        workerType="cuda",
        binary="llm-worker-rbee-cuda",
        features=["cuda"],
        **extra,
    )


def facts(**changes: Any) -> HostFacts:
    """A Linux host that can build: git, flock, curl, cargo, rustc, 10 GB free."""
    base: dict[str, Any] = {
        "home": "/home/vagrant",
        "user": "vagrant",
        "uname": "Linux x86_64",
        "tools": dict(TOOLS),
        "cargo_path": "/usr/bin/cargo",
        "cargo_version": "cargo 1.80.0",
        "rustc_version": "rustc 1.80.0",
        "free_kib": {"data": 10 * GB, "bin": 10 * GB},
    }
    base.update(changes)
    return HostFacts(**base)


NO_CARGO = {"cargo_path": "", "cargo_version": "", "rustc_version": ""}


def test_a_capable_host_has_no_problems() -> None:
    assert preflight.preflight_problems(spec(), facts()) == []
    assert preflight.preflight_problems(spec(source=RELEASE), facts(tools={"flock": "f"})) == []


def test_missing_cargo_says_who_and_how_to_fix_it() -> None:
    assert preflight.preflight_problems(spec(), facts(**NO_CARGO)) == [
        "cargo not found on PATH for user vagrant; install Rust (rustup), set `cargo` on the "
        "hive, or set `ensureToolchain: true` to install it with rustup"
    ]
    assert preflight.preflight_problems(spec(cargo="/opt/rust/cargo"), facts(**NO_CARGO)) == [
        "cargo not found at /opt/rust/cargo for user vagrant; install Rust (rustup), set `cargo` "
        "on the hive, or set `ensureToolchain: true` to install it with rustup"
    ]


def test_rustup_cargo_off_path_is_pointed_at() -> None:
    found = facts(**NO_CARGO, home_cargo="cargo 1.81.0")
    assert preflight.preflight_problems(spec(), found) == [
        "cargo not found on PATH for user vagrant, but ~/.cargo/bin/cargo is installed "
        "(cargo 1.81.0); set `cargo: ~/.cargo/bin/cargo` on the hive"
    ]
    # with ensureToolchain that install is simply used
    assert preflight.preflight_problems(spec(ensureToolchain=True), found) == []
    assert not preflight.needs_toolchain(spec(ensureToolchain=True), found)


def test_broken_cargo_and_missing_rustc() -> None:
    broken = facts(cargo_version="", rustc_version="")
    assert preflight.preflight_problems(spec(), broken) == [
        "cargo (/usr/bin/cargo) does not run: `cargo --version` failed for user vagrant; "
        "repair the Rust install or set `cargo` on the hive"
    ]
    assert preflight.preflight_problems(spec(), facts(rustc_version="")) == [
        "rustc not found next to cargo or on PATH for user vagrant; install Rust (rustup) or "
        "set `cargo` on the hive to a complete toolchain"
    ]


def test_ensure_toolchain_needs_a_downloader() -> None:
    wanted = spec(ensureToolchain=True)
    assert preflight.needs_toolchain(wanted, facts(**NO_CARGO))
    assert preflight.preflight_problems(wanted, facts(**NO_CARGO)) == []
    bare = facts(**NO_CARGO, tools={"git": "g", "flock": "f"})
    assert preflight.preflight_problems(wanted, bare) == [
        "cargo not found on PATH for user vagrant, and ensureToolchain needs curl or wget on the "
        "host to download rustup; install one of them, or install Rust"
    ]
    # a prebuilt binary needs no toolchain at all
    assert not preflight.needs_toolchain(spec(source=RELEASE, ensureToolchain=True), bare)


def test_git_and_flock() -> None:
    assert preflight.preflight_problems(spec(), facts(tools={"curl": "c"})) == [
        "git not found on PATH for user vagrant; install git (e.g. `apt-get install git`)",
        "flock not found on PATH for user vagrant; install it (util-linux on Linux, "
        "`brew install flock` on macOS)",
    ]
    assert preflight.preflight_problems(spec(source=RELEASE), facts(tools={"flock": "f"})) == []


SKIP = "or set `checkPlatform: false` on the hive to install it anyway"
NO_SMI = (
    "feature cuda needs an NVIDIA driver, but nvidia-smi is not on PATH for user vagrant; "
    f"install the NVIDIA driver, {SKIP}"
)
NO_NVCC = (
    "feature cuda needs the CUDA toolkit to build, but nvcc is neither on PATH nor in "
    f"/usr/local/cuda/bin for user vagrant; install the CUDA toolkit, {SKIP}"
)


def test_cuda_needs_the_driver_and_to_build_the_toolkit() -> None:
    assert preflight.preflight_problems(cuda_worker(), facts()) == [NO_SMI, NO_NVCC]
    with_nvcc = facts(tools={**TOOLS, "nvcc": "/usr/local/cuda/bin/nvcc"}, nvcc_version="12.4")
    assert preflight.preflight_problems(cuda_worker(), with_nvcc) == [NO_SMI]
    gpu = facts(
        tools={**TOOLS, "nvcc": "/usr/local/cuda/bin/nvcc", "nvidia-smi": "/usr/bin/nvidia-smi"},
        nvcc_version="release 12.4",
        gpus=("NVIDIA L4, 550.54.15",),
    )
    assert preflight.preflight_problems(cuda_worker(), gpu) == []
    no_gpu = facts(tools=gpu.tools, nvcc_version="release 12.4")
    assert preflight.preflight_problems(cuda_worker(), no_gpu) == [
        "feature cuda needs an NVIDIA GPU, but nvidia-smi lists none (is the driver loaded?); "
        f"fix the driver, {SKIP}"
    ]
    # a prebuilt cuda binary needs the driver, not the compiler
    assert preflight.preflight_problems(cuda_worker(source=RELEASE), facts()) == [NO_SMI]
    assert preflight.preflight_problems(cuda_worker(checkPlatform=False), facts()) == []


def test_metal_needs_macos() -> None:
    metal = spec(
        component="worker", workerType="metal", binary="llm-worker-rbee-metal", features=["metal"]
    )
    assert preflight.preflight_problems(metal, facts()) == [
        f"feature metal needs macOS, but the host runs Linux; drop the metal feature, {SKIP}"
    ]
    assert preflight.preflight_problems(metal, facts(uname="Darwin arm64")) == []


def test_too_little_disk_names_the_numbers_and_the_knob() -> None:
    small = facts(free_kib={"data": 500 * 1024, "bin": 500 * 1024})
    assert preflight.preflight_problems(spec(), small) == [
        "only 500 MB free on the filesystem holding ~/.local/share/rbee; a git install needs at "
        "least 3072 MB (free some space, or set `minFreeDiskMb` on the hive)"
    ]
    assert preflight.preflight_problems(spec(minFreeDiskMb=400), small) == []
    assert preflight.preflight_problems(spec(source=RELEASE), small) == []
    assert preflight.preflight_problems(spec(), facts(free_kib={})) == []  # unknown: no claim
    full_bin = facts(free_kib={"data": 10 * GB, "bin": 100})
    assert preflight.preflight_problems(spec(), full_bin) == [
        "no space left on the filesystem holding ~/.local/bin; free some space"
    ]


def test_several_problems_make_one_message() -> None:
    assert preflight.describe(["a"]) == "a"
    assert preflight.describe(["a", "b"]) == "2 problems:\n- a\n- b"


def test_probe_parser_reads_the_new_facts() -> None:
    out = "\n".join(
        [
            "home\t/home/vagrant",
            "user\tvagrant",
            "uname\tLinux aarch64",
            "os\tUbuntu 22.04.4 LTS",
            "tool\tnvidia-smi\t/usr/bin/nvidia-smi",
            "tool\tnvcc\t",
            "gpu\tNVIDIA L4, 550.54.15",
            "cargopath\t",
            "cargo\t",
            "rustc\trustc 1.80.0 (051478957 2024-07-21)",
            "homecargo\tcargo 1.80.0",
            "disk\tdata\t2097152",
            "disk\tbin\t",
            "systemd\tyes",
        ]
    )
    found = parse_probe(out)
    assert (found.os, found.arch, found.os_name, found.user) == (
        "Linux",
        "aarch64",
        "Ubuntu 22.04.4 LTS",
        "vagrant",
    )
    assert found.tools == {"nvidia-smi": "/usr/bin/nvidia-smi"}
    assert found.gpus == ("NVIDIA L4, 550.54.15",)
    assert (found.cargo_version, found.home_cargo) == ("", "cargo 1.80.0")
    assert found.free_mb("data") == 2048 and found.free_mb("bin") is None
    assert found.systemd_user
    assert preflight.host_facts_output(found) == {
        "os": "Linux",
        "arch": "aarch64",
        "osName": "Ubuntu 22.04.4 LTS",
        "cargo": None,
        "rustc": "rustc 1.80.0 (051478957 2024-07-21)",
        "freeDiskMb": {"data": 2048},
        "gpu": {
            "nvidiaSmi": "/usr/bin/nvidia-smi",
            "nvcc": None,
            "devices": ["NVIDIA L4, 550.54.15"],
        },
        "serviceManager": "systemd",
    }


def test_the_real_probe_script_reports_this_machine() -> None:
    """PROBE itself, run here under sh with a throwaway home: one round trip's worth of facts."""
    with tempfile.TemporaryDirectory() as home:
        env = {"HOME": home, "PATH": os.environ["PATH"]}
        command = script_command(scripts.PROBE, "cargo-missing", "rbee-hive", ".local/bin/x", "r")
        out = subprocess.run(
            ["sh", "-c", command], env=env, capture_output=True, text=True, check=True
        ).stdout
    found = parse_probe(out)
    assert found.home == home and found.os == os.uname().sysname
    assert found.cargo_version == "" and found.cargo_path == ""
    assert found.free_mb("data") is not None and found.free_mb("data") > 0
    # the same filesystem here; other writers on the machine move it between the two reads
    assert abs((found.free_mb("bin") or 0) - found.free_mb("data")) < 512
    assert "sh" not in found.tools and ("flock" in found.tools) == bool(which("flock"))
    assert found.installed["rbee-hive"].kind == "missing"


@pytest.mark.parametrize(
    "name", ["PROBE", "HEALTH", "START_SERVICE", "STOP_SERVICE", "INSTALL_RUST"]
)
def test_scripts_parse_under_posix_sh(name: str) -> None:
    shell = "dash" if which("dash") else "sh"
    result = subprocess.run([shell, "-n", "-c", getattr(scripts, name)], capture_output=True)
    assert result.returncode == 0, result.stderr


# --- the service's diff decisions -----------------------------------------------------------

OLDS = {"alias": "a", "autoStart": True, "hivePort": 8600, "serviceState": "running"}


@pytest.mark.parametrize(
    ("news", "changed"),
    [
        ({**OLDS}, []),
        ({**OLDS, "serviceState": "stopped"}, ["serviceState"]),
        ({**OLDS, "serviceState": "not listening on port 8600"}, ["serviceState"]),
        ({**OLDS, "hivePort": 8700}, ["hivePort"]),
        ({**OLDS, "autoStart": False, "serviceState": None}, ["autoStart"]),
        ({**OLDS, "preflight": ["cargo not found"]}, ["preflight"]),
    ],
)
def test_service_changes_update_without_a_rebuild(news: dict[str, Any], changed: list[str]) -> None:
    decision = plan.decide_diff(OLDS, {k: v for k, v in news.items() if v is not None})
    assert decision.changed == changed and decision.changes == bool(changed)
    assert not decision.reinstall


def test_a_stopped_service_stays_a_change_after_refresh() -> None:
    """refresh records `stopped`; the next check still sees a hive that should run."""
    olds = {**OLDS, "serviceState": "stopped"}
    assert plan.decide_diff(olds, olds).changed == ["serviceState"]


# --- the service itself ---------------------------------------------------------------------


def test_unit_file_runs_the_stable_path_with_rbee_hives_flags() -> None:
    text = service.unit_text(8600, "gpu-1")
    assert "ExecStart=%h/.local/bin/rbee-hive --port 8600 --hive-id gpu-1\n" in text
    assert "WantedBy=default.target" in text and "Restart=on-failure" in text
    assert "/home" not in text  # %h: the same file fits any user
    queen = service.unit_text(8600, "gpu-1", "http://queen:7833/a%20b")
    assert (
        "ExecStart=%h/.local/bin/rbee-hive --port 8600 --hive-id gpu-1 "
        "--queen-url http://queen:7833/a%%20b\n"  # systemd's specifier sign, escaped
    ) in queen
    assert service.start_args("pidfile", 9000, "h", None) == ["pidfile", "9000", "", "h", ""]
    assert service.start_args("systemd", 9000, "h", "http://q:1")[2:] == [
        service.unit_text(9000, "h", "http://q:1"), "h", "http://q:1"
    ]


def test_a_hive_that_listens_but_answers_health_with_an_error_is_unhealthy() -> None:
    sick = service.parse_health(
        "mode\tpidfile\npid\t42\nrunning\tyes\nlistening\tyes\n"
        "health\tfail 503 starting: no worker yet\n",
        8600,
    )
    assert sick.unhealthy and not sick.healthy
    assert sick.summary == "unhealthy on port 8600: /health answered 503 starting: no worker yet"
    assert sick.why() == (
        "rbee-hive (pid 42) listens on port 8600 but GET /health answered "
        "503 starting: no worker yet"
    )
    # a host that cannot ask (no curl, no bash) judges by the listening socket alone
    unknown = service.parse_health(
        "mode\tpidfile\npid\t42\nrunning\tyes\nlistening\tyes\nhealth\tunknown\n", 8600
    )
    assert unknown.healthy and unknown.summary == "running"


def test_health_output_becomes_a_state() -> None:
    ok = service.parse_health("mode\tpidfile\npid\t42\nrunning\tyes\nlistening\tyes\n", 8600)
    assert ok.healthy and ok.summary == "running" and ok.pid == 42
    assert service.outputs(ok) == {
        "service": {"mode": "pidfile", "state": "running", "pid": 42, "port": 8600}
    }
    dead = service.parse_health(
        "mode\tpidfile\npid\t42\nrunning\tno\nlistening\tno\nlog\tboom\nlog\tcannot bind\n", 8600
    )
    assert not dead.healthy and dead.summary == "stopped"
    assert dead.why() == (
        "rbee-hive exited instead of listening on port 8600; its log ends with:\nboom\ncannot bind"
    )
    deaf = service.parse_health("mode\tsystemd\npid\t7\nrunning\tyes\nlistening\tno\n", 9)
    assert deaf.summary == "not listening on port 9"
    assert deaf.why() == "rbee-hive (pid 7) runs but does not listen on port 9"
    unknown = service.parse_health("mode\tpidfile\npid\t7\nrunning\tyes\nlistening\tunknown\n", 9)
    assert unknown.healthy and unknown.listening is None
    assert service.parse_health("mode\tsystemd\npid\t0\nrunning\tno\n", 9).pid is None


# --- config ---------------------------------------------------------------------------------


def test_hive_defaults_follow_rbee_and_preflight_fields_are_validated() -> None:
    hive = parse_fleet({"hives": [{"alias": "a", "hostname": "h", "sshUser": "u"}]}).hives[0]
    assert (hive.auto_start, hive.hive_port, hive.ensure_toolchain) == (True, 8600, False)
    assert (hive.rustup_url, hive.min_free_disk_mb, hive.check_platform) == (
        "https://sh.rustup.rs",
        None,
        True,
    )
    bad = {"alias": "a", "hostname": "h", "rustupUrl": "http://sh.rustup.rs", "minFreeDiskMb": -1}
    with pytest.raises(ConfigError) as caught:
        parse_fleet({"hives": [bad]})
    assert caught.value.problems == [
        ("hives[0].rustupUrl", "'http://sh.rustup.rs' is not allowed; expected an https:// URL"),
        ("hives[0].minFreeDiskMb", "Input should be greater than or equal to 0"),
    ]
    # a bare spec (not from the program) runs no service
    assert spec().auto_start is False


def test_rustup_url_never_becomes_shell_text() -> None:
    with pytest.raises(ConfigError):
        spec(rustupUrl="https://x;touch /tmp/pwned")
