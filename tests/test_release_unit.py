"""The release and local methods without hosts: asset URLs, checksum files, transfer errors,
the operator-side HTTP client against a loopback release server, unpacking, extras."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from rbee_infra.base.errors import ConfigError
from rbee_infra.config.fleet import ReleaseSource
from rbee_infra.config.spec import InstallSpec, parse_spec
from rbee_infra.decide import extras
from rbee_infra.host import scripts
from rbee_infra.host.ssh import script_command
from rbee_infra.install import assets, httpget, local, release, transfer
from tests.harness.release_server import ReleaseServer, script_binary, sha256, tar_gz

pytestmark = pytest.mark.unit

SHA_A = "a" * 64
SHA_B = "b" * 64


def test_asset_url_follows_github_layout_and_default_name() -> None:
    source = ReleaseSource(repo="veighnsche/llama-orch", tag="v0.2.0")
    asset = assets.asset_for(source, "rbee-hive")
    assert asset.url == (
        "https://github.com/veighnsche/llama-orch/releases/download/v0.2.0/rbee-hive"
    )
    assert not asset.archive
    mirror = ReleaseSource(
        repo="o/r", tag="v1", asset="rbee-x86_64.tar.gz", base_url="http://mirror.test/gh/"
    )
    packed = assets.asset_for(mirror, "rbee-hive")
    assert packed.url == "http://mirror.test/gh/o/r/releases/download/v1/rbee-x86_64.tar.gz"
    assert packed.archive
    assert assets.checksum_files(packed) == [
        (
            "rbee-x86_64.tar.gz.sha256",
            "http://mirror.test/gh/o/r/releases/download/v1/rbee-x86_64.tar.gz.sha256",
        ),
        ("SHA256SUMS", "http://mirror.test/gh/o/r/releases/download/v1/SHA256SUMS"),
    ]


def test_token_in_base_url_is_redacted_in_what_is_shown() -> None:
    source = ReleaseSource(repo="o/r", tag="v1", base_url="https://ghp_s3cr3tT0ken@mirror.test")
    asset = assets.asset_for(source, "rbee-hive")
    assert "ghp_s3cr3tT0ken" in asset.url
    assert "ghp_s3cr3tT0ken" not in asset.shown
    assert asset.shown == "https://***@mirror.test/o/r/releases/download/v1/rbee-hive"


@pytest.mark.parametrize(
    ("label", "text", "expected"),
    [
        ("rbee-hive.sha256", f"{SHA_A}\n", SHA_A),
        ("rbee-hive.sha256", f"{SHA_A}  rbee-hive\n", SHA_A),
        ("rbee-hive.sha256", f"{SHA_A.upper()} *dist/rbee-hive\n", SHA_A),
        ("rbee-hive.sha256", f"{SHA_A}  other-file\n", None),
        ("rbee-hive.sha256", "not a checksum\n", None),
        ("SHA256SUMS", f"{SHA_B}  rbee-hive.tar.gz\n{SHA_A}  rbee-hive\n", SHA_A),
        ("SHA256SUMS", f"{SHA_A} *./rbee-hive\n", SHA_A),
        ("SHA256SUMS", f"{SHA_A}\n", None),  # a bare sum names no file
        ("SHA256SUMS", f"{SHA_B}  rbee-hive-old\n", None),
    ],
)
def test_parse_checksum(label: str, text: str, expected: str | None) -> None:
    assert assets.parse_checksum(label, text, "rbee-hive") == expected


def test_describe_transfer_names_status_and_truncation() -> None:
    url = "http://127.0.0.1:1/o/r/releases/download/v1/rbee-hive"
    assert assets.describe_transfer("curl", 22, "404", "curl: (22) error: 404", url) == (
        f"GET {url} returned HTTP 404 (curl exit 22): curl: (22) error: 404"
    )
    assert "was cut short" in assets.describe_transfer("curl", 18, "200", "", url)
    wget = "Connection closed at byte 50. Giving up."
    assert "was cut short" in assets.describe_transfer("wget", 4, "", wget, url)
    assert assets.describe_transfer("curl", 7, "000", "refused", url) == (
        f"GET {url} failed (curl exit 7): refused"
    )


def test_pick_tool_prefers_curl_and_needs_tar_for_archives() -> None:
    every = {"curl": "/usr/bin/curl", "wget": "/usr/bin/wget", "tar": "/usr/bin/tar"}
    assert release.pick_tool(every, archive=True) == "curl"
    assert release.pick_tool({"wget": "/w", "tar": "/t"}, archive=False) == "wget"
    assert release.pick_tool({"tar": "/t"}, archive=False) is None
    assert release.pick_tool({"curl": "/c"}, archive=True) is None  # unpacks on this machine
    assert release.pick_tool({"curl": "/c"}, archive=False) == "curl"


def test_base_url_must_be_http() -> None:
    with pytest.raises(ConfigError) as info:
        parse_spec(
            {
                "alias": "h",
                "component": "hive",
                "binary": "rbee-hive",
                "source": {"method": "release", "tag": "v1", "baseUrl": "ssh://mirror/x"},
                "connection": {"host": "127.0.0.1", "user": "u"},
            }
        )
    assert info.value.problems[0][0] == "source.release.baseUrl"
    assert "an http(s) URL" in info.value.problems[0][1]


# --------------------------------------------------------------- operator-side HTTP client


@pytest.fixture
def server() -> ReleaseServer:
    with ReleaseServer() as srv:
        yield srv


def test_httpget_download_verifies_length_and_reports_status(
    server: ReleaseServer, tmp_path: Path
) -> None:
    data = script_binary("rbee-hive 0.3.0") * 50
    real = server.publish("o/r", "v1", "rbee-hive", data)
    url = server.base_url + server.path("o/r", "v1", "rbee-hive")
    assert httpget.download(url, tmp_path / "a") == real
    assert (tmp_path / "a").read_bytes() == data

    server.fail("o/r", "v1", "rbee-hive", "cut")
    with pytest.raises(httpget.TransferError) as cut:
        httpget.download(url, tmp_path / "b")
    assert cut.value.cut
    assert f"of {len(data)} bytes" in cut.value.detail

    server.fail("o/r", "v1", "rbee-hive", "404")
    with pytest.raises(httpget.TransferError) as missing:
        httpget.download(url, tmp_path / "c")
    assert missing.value.http == "404"


def test_httpget_sends_url_credentials_as_basic_auth(server: ReleaseServer) -> None:
    server.publish("o/r", "v1", "SHA256SUMS", b"x\n")
    server.required_auth = "Basic " + base64.b64encode(b"tok3n-abc:").decode()
    url = f"http://tok3n-abc@127.0.0.1:{server.port}/o/r/releases/download/v1/SHA256SUMS"
    assert httpget.get_text(url) == "x\n"
    assert server.requests[-1].path == "/o/r/releases/download/v1/SHA256SUMS"
    with pytest.raises(httpget.TransferError) as denied:
        httpget.get_text(url.replace("tok3n-abc@", ""))
    assert denied.value.http == "404"


def test_unpack_binary_finds_it_at_any_depth(tmp_path: Path) -> None:
    binary = script_binary("rbee-hive 0.3.0")
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(tar_gz({"README": b"hi", "rbee-0.3.0/bin/rbee-hive": binary}))
    assert transfer.unpack_binary(archive, "rbee-hive", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == binary
    assert not transfer.unpack_binary(archive, "llm-worker-rbee-cpu", tmp_path / "none")


# --------------------------------------------------------------- local file


def local_spec(path: str, sha: str | None = None) -> InstallSpec:
    source: dict[str, object] = {"method": "local", "path": path}
    if sha:
        source["sha256"] = sha
    return parse_spec(
        {
            "alias": "h",
            "component": "hive",
            "binary": "rbee-hive",
            "source": source,
            "connection": {"host": "127.0.0.1", "user": "u"},
        }
    )


def test_local_sha_and_its_errors_name_the_field(tmp_path: Path) -> None:
    data = script_binary("rbee-hive 0.3.0")
    path = tmp_path / "rbee-hive"
    path.write_bytes(data)
    assert local.file_sha(local_spec(str(path))) == sha256(data)
    with pytest.raises(ConfigError) as missing:
        local.file_sha(local_spec(str(tmp_path / "nope")))
    assert missing.value.problems[0][0] == "source.path"
    assert "cannot be read: No such file or directory" in missing.value.problems[0][1]
    with pytest.raises(ConfigError) as pinned:
        local.file_sha(local_spec(str(path), sha=SHA_A))
    assert pinned.value.problems == [
        ("source.sha256", f"{path} has sha256 {sha256(data)}, not {SHA_A}")
    ]


# --------------------------------------------------------------- extras


def test_extras_are_only_names_no_configured_worker_owns() -> None:
    scan = extras.parse_scan(
        "worker\trbee-worker-cpu\n"
        "worker\trbee-worker-cpu.pre-rbee-infra\n"
        "worker\trbee-worker-rocm\n"
        "worker\tllm-worker-rbee-cuda\n"
        "worker\tbad name\n"
        "release\trbee-hive\n"
        "release\trbee-worker-cpu\n"
        "release\trbee-worker-rocm\n"
        "release\trbee-worker-old\n"
        "receipt\trbee-worker-rocm\n"
        "receipt\trbee-hive\n"
        f"path\t{extras.HAND_MADE_HIVE}\n"
        "path\t.local/bin/something-else\n"
    )
    found = extras.find_extras(scan, ["cpu"])
    assert found == [
        ".local/bin/rbee-hive.pre-rbee-infra",
        ".local/share/rbee/receipts/rbee-worker-rocm.json",
        ".local/share/rbee/releases/rbee-worker-old",
        ".local/share/rbee/releases/rbee-worker-rocm",
        ".local/share/rbee/workers/llm-worker-rbee-cuda",
        ".local/share/rbee/workers/rbee-worker-rocm",
    ]
    # configure rocm: its files are no longer extras
    assert ".local/share/rbee/workers/rbee-worker-rocm" not in extras.find_extras(
        scan, ["cpu", "rocm"]
    )
    shown = extras.shown(found)
    assert shown[0] == "~/.local/bin/rbee-hive.pre-rbee-infra"
    # up removes only what preview listed and is still extra
    assert extras.to_remove([shown[0], "~/.ssh/authorized_keys"], found) == [found[0]]


def run_script(home: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin"}
    command = script_command(script, *args)
    return subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True)


def test_scan_and_prune_scripts_stay_inside_rbee_directories(tmp_path: Path) -> None:
    root = tmp_path / ".local/share/rbee"
    (root / "workers").mkdir(parents=True)
    (root / "workers/rbee-worker-rocm").write_text("x")
    (root / "workers/rbee-worker-cpu").write_text("x")
    (root / "releases/rbee-worker-rocm/abc").mkdir(parents=True)
    (tmp_path / ".local/bin").mkdir()
    (tmp_path / ".local/bin/rbee-hive.pre-rbee-infra").write_text("x")
    (tmp_path / "keep").write_text("x")
    scan = run_script(
        tmp_path,
        scripts.EXTRAS_SCAN,
        ".local/share/rbee/workers",
        ".local/share/rbee/releases",
        ".local/share/rbee/receipts",
        extras.HAND_MADE_HIVE,
    )
    found = extras.find_extras(extras.parse_scan(scan.stdout), ["cpu"])
    assert found == [
        ".local/bin/rbee-hive.pre-rbee-infra",
        ".local/share/rbee/releases/rbee-worker-rocm",
        ".local/share/rbee/workers/rbee-worker-rocm",
    ]
    lock = (".local/share/rbee/.lock", "5", "test")
    for outside in ("keep", ".local/share/rbee/../../../keep", ".local/share/rbee/workers/x/y/z"):
        refused = run_script(tmp_path, scripts.PRUNE, *lock, found[0], outside)
        assert refused.returncode == 2, refused
        assert f"refusing to remove {outside}" in refused.stderr
        assert (tmp_path / found[0]).exists()  # nothing removed when one path is refused
    done = run_script(tmp_path, scripts.PRUNE, *lock, *found)
    assert done.returncode == 0, done.stderr
    assert not any((tmp_path / p).exists() for p in found)
    assert (root / "workers/rbee-worker-cpu").exists() and (tmp_path / "keep").exists()
