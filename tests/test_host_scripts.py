"""The host scripts as shell files: every file is a constant, shellcheck passes on the files
and on the assembled texts (POSIX sh), and the helpers that need no host state give the same
exact output under dash and bash."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rbee_infra.host import hostview, scripts

pytestmark = pytest.mark.unit

HOST_SCRIPTS = Path(scripts.__file__).parent / "host_scripts"
NAMES = sorted(path.stem.upper() for path in HOST_SCRIPTS.glob("*.sh"))


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not installed (Debian package `{name}`): these checks need it")
    return path


# --- the loader ---------------------------------------------------------------------------


def test_every_script_file_is_a_constant_and_back() -> None:
    constants = sorted(
        name for name, value in vars(scripts).items() if name.isupper() and isinstance(value, str)
    )
    assert constants == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_a_script_is_one_text_with_its_helpers_in_place(name: str) -> None:
    text = getattr(scripts, name)
    assert ". lib/" not in text and not text.startswith("#!")
    assert text.startswith('set -u\ncd "$HOME" || exit 1\n')  # lib/env.sh comes first


# --- shellcheck -----------------------------------------------------------------------------


def shellcheck(*args: str) -> None:
    check = subprocess.run(
        [tool("shellcheck"), "--shell=sh", *args], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_shellcheck_passes_on_the_files() -> None:
    # host_scripts/.shellcheckrc makes it follow each `. lib/NAME.sh` line
    files = sorted(HOST_SCRIPTS.glob("*.sh")) + sorted(HOST_SCRIPTS.glob("lib/*.sh"))
    shellcheck(*map(str, files))


@pytest.mark.parametrize("name", NAMES)
def test_shellcheck_passes_on_the_assembled_script(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name.lower()}.sh"
    # SC2317: a helper library's functions that this script does not call look unreachable
    path.write_text("#!/bin/sh\n# shellcheck disable=SC2317\n" + getattr(scripts, name))
    shellcheck(str(path))


# --- the helpers under dash and bash ----------------------------------------------------------


@pytest.fixture(params=["dash", "bash"])
def shell(request: pytest.FixtureRequest) -> str:
    return tool(request.param)


def helpers(*libs: str) -> str:
    return "set -u\n" + "".join((HOST_SCRIPTS / "lib" / f"{lib}.sh").read_text() for lib in libs)


def run(
    shell: str,
    libs: tuple[str, ...],
    code: str,
    *args: str,
    cwd: Path,
    stdin: str = "",
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [shell, "-c", helpers(*libs) + code, "rbee", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "HOME": str(cwd), **(env or {})},
        timeout=30,
    )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_rbee_sha(shell: str, tmp_path: Path) -> None:
    (tmp_path / "a file").write_bytes(b"hello\n")
    out = run(shell, ("sha",), 'rbee_sha "$1"', "a file", cwd=tmp_path)
    assert (out.returncode, out.stdout) == (0, sha256(b"hello\n") + "\n")


def test_set_aside_takes_the_first_free_name_and_put_back_the_first(
    shell: str, tmp_path: Path
) -> None:
    (tmp_path / "bin").write_text("mine\n")
    (tmp_path / "bin.pre-rbee-infra").write_text("saved before\n")
    (tmp_path / "bin.pre-rbee-infra.1").symlink_to("gone")  # dangling: still taken
    out = run(shell, ("set_aside",), 'rbee_set_aside bin && echo "$saved"', cwd=tmp_path)
    assert (out.returncode, out.stdout) == (0, "bin.pre-rbee-infra.2\n")
    assert (tmp_path / "bin.pre-rbee-infra.2").read_text() == "mine\n"
    assert not (tmp_path / "bin").exists()

    out = run(shell, ("set_aside",), "rbee_put_back bin", cwd=tmp_path)
    assert out.returncode == 0 and (tmp_path / "bin").read_text() == "saved before\n"
    (tmp_path / "bin.pre-rbee-infra").write_text("another\n")
    out = run(shell, ("set_aside",), "rbee_put_back bin", cwd=tmp_path)  # bin is there: kept
    assert out.returncode == 0 and (tmp_path / "bin").read_text() == "saved before\n"


def test_creds_in_keeps_only_non_empty_input_in_a_private_file(shell: str, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"TMPDIR": str(tmp)}
    out = run(shell, ("git_creds",), "rbee_creds_in", cwd=tmp_path, env=env)
    assert (out.returncode, out.stdout, list(tmp.iterdir())) == (0, "", [])

    for lines, kept in [
        ("https://user:secret@example.org\n", "https://user:secret@example.org\n"),
        ("https://a:1@one.example\nhttps://b:2@two.example\n", None),
        ("https://a:1@one.example", "https://a:1@one.example\n"),  # no end of line
    ]:
        out = run(shell, ("git_creds",), "rbee_creds_in", cwd=tmp_path, stdin=lines, env=env)
        path = Path(out.stdout.strip())
        assert out.returncode == 0 and path.parent == tmp
        assert path.read_text() == (kept or lines) and path.stat().st_mode & 0o777 == 0o600
        path.unlink()


def test_rbee_git_adds_the_store_helper_only_with_a_credentials_file(
    shell: str, tmp_path: Path
) -> None:
    fake = "git() { printf '[%s]' \"$@\"; echo; }\n"
    code = fake + 'RBEE_GIT_CREDENTIALS=$1; shift; rbee_git "$@"'
    out = run(shell, ("git_creds",), code, "", "ls-remote", "--", "a repo", cwd=tmp_path)
    assert out.stdout == "[ls-remote][--][a repo]\n"
    out = run(shell, ("git_creds",), code, "j/cred", "fetch", cwd=tmp_path)
    assert out.stdout == (
        "[-c][credential.helper=][-c][credential.helper=store --file='j/cred'][fetch]\n"
    )


def wait_for_zombie(pid: int) -> None:
    """Until the killed child (not reaped yet) is a zombie."""
    stat = Path(f"/proc/{pid}/stat")
    deadline = time.monotonic() + 10
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, f"{pid} did not end"
        time.sleep(0.05)


@pytest.fixture
def job(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    # `; :` keeps the shell itself running (a lone command may be exec'd in its place)
    process = subprocess.Popen(["sh", "-c", "sleep 30; :", "rbee-job", "jobs/a"], cwd=tmp_path)
    yield process
    process.kill()
    process.wait()


def test_job_alive_accepts_only_the_job_itself(
    shell: str, tmp_path: Path, job: subprocess.Popen[bytes]
) -> None:
    code = 'for p in "$@"; do if rbee_job_alive "$p" jobs/a; then echo yes; else echo no; fi; done'
    pids = [str(job.pid), "", "0", "x1", "-1", "1"]
    out = run(shell, ("job_alive",), code, *pids, cwd=tmp_path)
    assert out.stdout.split() == ["yes", "no", "no", "no", "no", "no"]
    out = run(shell, ("job_alive",), f"rbee_job_alive {job.pid} jobs/b", cwd=tmp_path)
    assert out.returncode == 1  # another job's dir


def test_a_zombie_is_not_alive(shell: str, tmp_path: Path, job: subprocess.Popen[bytes]) -> None:
    job.send_signal(signal.SIGKILL)
    wait_for_zombie(job.pid)
    out = run(shell, ("job_alive",), f"rbee_alive {job.pid}", cwd=tmp_path)
    assert out.returncode == 1


def linked_binary(home: Path, data: bytes, shell: str | None = None) -> None:
    """`bin/b`, a link to `rel/b1` holding `data`, as activation leaves a binary; with `shell`,
    its checksum recorded beside it too (`rbee_sign`)."""
    (home / "rel").mkdir(exist_ok=True)
    (home / "bin").mkdir(exist_ok=True)
    (home / "rel" / "b1").write_bytes(data)
    (home / "bin" / "b").symlink_to("../rel/b1")
    if shell is not None:
        assert run(shell, ("sha",), 'rbee_sign "$1"', "rel/b1", cwd=home).returncode == 0


def test_inventory_reports_kind_link_sha_and_receipt(shell: str, tmp_path: Path) -> None:
    linked_binary(tmp_path, b"B")
    (tmp_path / "bin" / "a").write_bytes(b"A")
    (tmp_path / "r.json").write_text('{"installId": "x"}\n')
    args = ["a", "bin/a", "r.json", "b", "bin/b", "none.json", "c", "bin/c", "none.json", "odd"]
    out = run(shell, ("sha", "inventory"), "", *args, cwd=tmp_path)
    assert out.returncode == 0
    assert out.stdout.splitlines() == [
        f"home\t{tmp_path}",
        f"item\ta\tfile\t\t{sha256(b'A')}\t" + '{"installId": "x"}',
        f"item\tb\tsymlink\t../rel/b1\t{sha256(b'B')}\t",
        "item\tc\tmissing\t\t-\t",
    ]


@pytest.mark.parametrize(
    "text",
    [
        b'{"a": 1}\n{"b": 2}\n',  # two lines
        b'{"a": 1}\n\n',
        b'{"a": 1}',  # no end of line
        b'{"a":\t1}\n',  # a tab would split the line's fields
        b'{"a": "\xc3\xa9"}\n',  # not ASCII
        b'{"a": "\r"}\n',
        b"[1]\n",  # does not open with "{"
        b"e30K\n",  # base64 of "{}" itself
    ],
)
def test_inventory_sends_any_other_receipt_as_base64(
    shell: str, tmp_path: Path, text: bytes
) -> None:
    (tmp_path / "r.json").write_bytes(text)
    out = run(shell, ("sha", "inventory"), "", "a", "bin/a", "r.json", cwd=tmp_path)
    assert out.stdout.splitlines()[1] == f"item\ta\tmissing\t\t-\t{base64.b64encode(text).decode()}"


@pytest.mark.parametrize("recorded", ["x" * 64, "a" * 63, "a\tb" + "a" * 61, ""])
def test_a_recorded_checksum_that_is_not_one_is_not_reported(
    shell: str, tmp_path: Path, recorded: str
) -> None:
    """The stat still matches, but what the signature names as the checksum is not 64 hex
    digits: the binary is hashed instead, and nothing of the signature reaches the line."""
    linked_binary(tmp_path, b"B", shell)
    signature = tmp_path / "rel" / "b1.rbee-stat"
    stat = signature.read_text().rsplit(" ", 1)[0]
    signature.write_text(f"{stat} {recorded}\n")
    out = run(shell, ("sha", "inventory"), "", "b", "bin/b", "r.json", cwd=tmp_path)
    assert out.stdout.splitlines()[1] == f"item\tb\tsymlink\t../rel/b1\t{sha256(b'B')}\t"


def test_a_no_op_read_starts_two_processes_per_binary_and_one_shell_per_part(
    shell: str, tmp_path: Path
) -> None:
    """What a no-op's batched read (the inventory and the extras scan, as `hostview` sends
    them) costs the host: a shell per part, `readlink` and `stat` per binary; no hash, no
    `base64`, and no credentials file made when no credentials come."""
    logged = tmp_path / "started"
    wrappers = tmp_path / "wrap"
    wrappers.mkdir()
    names = ("sh", "readlink", "stat", "sha256sum", "base64", "tr", "cut", "mktemp", "cat", "rm")
    for name in names:
        real = tool(name)
        (wrappers / name).write_text(f'#!/bin/sh\necho {name} >> "{logged}"\nexec {real} "$@"\n')
        (wrappers / name).chmod(0o755)
    linked_binary(tmp_path, b"B" * 4096, shell)
    (tmp_path / "r.json").write_text('{"installId": "x"}\n')
    parts = [(scripts.INVENTORY, ["b", "bin/b", "r.json"]), (scripts.EXTRAS_SCAN, ["w", "r", "c"])]
    out = subprocess.run(
        [shell, "-c", scripts.BATCH, "rbee", *hostview.encode(parts)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "HOME": str(tmp_path), "PATH": f"{wrappers}:{os.environ['PATH']}"},
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    results = hostview.split_batch(out.stdout)
    assert [r.exit_status for r in results] == [0, 0], out.stdout + out.stderr
    assert results[0].stdout.splitlines()[1] == (
        f"item\tb\tsymlink\t../rel/b1\t{sha256(b'B' * 4096)}\t" + '{"installId": "x"}'
    )
    assert logged.read_text().split() == ["sh", "readlink", "stat", "sh"]


def test_free_space_of_a_missing_path_is_its_nearest_parents(shell: str, tmp_path: Path) -> None:
    out = run(shell, ("facts",), 'rbee_free "$1"', "not/yet/made", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip().isdigit()


FAKE_CURL = 'curl() { cat > curl.in; printf "%s\\n" "$@" > curl.args; printf 404; return 22; }\n'
FAKE_WGET = (
    'wget() { cat > wget.in; printf "%s\\n" "$@" > wget.args\n'
    '  echo "12:00:00 ERROR 403: Forbidden." >&2; return 8; }\n'
)


def test_get_with_curl_reads_the_url_from_stdin(shell: str, tmp_path: Path) -> None:
    code = FAKE_CURL + 'rbee_get curl out; echo "status $?"'
    out = run(shell, ("get",), code, cwd=tmp_path, stdin="https://t@example.org/a b\n")
    assert (out.stdout, out.stderr) == ("status 22\n", "@@http\t404\n")
    assert (tmp_path / "curl.in").read_text() == 'url = "https://t@example.org/a b"\n'
    assert (tmp_path / "curl.args").read_text().splitlines() == [
        *("-sS", "--fail", "--location", "--connect-timeout", "30"),
        *("--speed-time", "120", "--speed-limit", "1"),
        *("-K", "-", "-o", "out", "-w", "%{http_code}"),
    ]


def test_get_with_wget_passes_a_plain_url_on_standard_input(shell: str, tmp_path: Path) -> None:
    url = "https://example.org/a@b"  # an '@' in the path is no credential
    code = FAKE_WGET + 'rbee_get wget out; echo "status $?"'
    out = run(shell, ("get",), code, cwd=tmp_path, stdin=url + "\n")
    assert out.stdout == "status 8\n"
    assert out.stderr == "12:00:00 ERROR 403: Forbidden.\n@@http\t403\n"
    assert (tmp_path / "wget.in").read_text() == url + "\n"
    assert not (tmp_path / "out.log").exists()


@pytest.mark.parametrize("url", ["https://TOKEN@example.org/x", "https://user:pw@example.org/x"])
def test_get_never_gives_wget_a_credential(shell: str, tmp_path: Path, url: str) -> None:
    code = FAKE_WGET + 'rbee_get wget out; echo "status $?"'
    out = run(shell, ("get",), code, cwd=tmp_path, stdin=url + "\n")
    assert out.stdout == "status 2\n"
    assert out.stderr == "wget is never given a URL with a credential\n@@http\t000\n"
    assert not (tmp_path / "wget.in").exists()


def service(shell: str, tmp_path: Path, code: str, *args: str) -> str:
    return run(shell, ("systemd", "set_aside", "service"), code, *args, cwd=tmp_path).stdout


@pytest.mark.parametrize(
    ("reply", "health"),
    [
        ("ok\n200", "ok"),
        ("boom\nmore\n500", "fail 500 boom"),
        ("nope\n200", "fail 200 nope"),
        ("\n000", "fail 000 "),
        ("x" * 300 + "\n503", "fail 503 " + "x" * 200),
    ],
)
def test_health_shapes_the_answer(shell: str, tmp_path: Path, reply: str, health: str) -> None:
    code = "reply=$1\ncurl() { printf '%s' \"$reply\"; }\nrbee_health 8600"
    assert service(shell, tmp_path, code, reply) == health + "\n"


def test_listening_matches_port_and_pid(shell: str, tmp_path: Path) -> None:
    fake = (
        "ss() { printf '%s\\n' 'State Recv-Q Send-Q Local Peer Process' "
        "'LISTEN 0 128 127.0.0.1:8600 0.0.0.0:* users:((\"rbee-hive\",pid=4242,fd=3))'; }\n"
    )
    code = fake + 'rbee_listening "$1" "$2"'
    assert service(shell, tmp_path, code, "8600", "4242") == "yes\n"
    assert service(shell, tmp_path, code, "8600", "4243") == "no\n"
    assert service(shell, tmp_path, code, "860", "4242") == "no\n"


def test_log_and_unit_are_ours_only_with_the_mark(shell: str, tmp_path: Path) -> None:
    code = 'if "$@"; then echo yes; else echo no; fi'
    logs = {
        "a": "== rbee-infra 2024-01-01T00:00:00Z: x\n",
        "b": "== 2024-01-01 older mark\n",
        "c": "a log of the user's\n",
    }
    for name, text in logs.items():
        (tmp_path / name).write_text(text)
    answers = [service(shell, tmp_path, code, "rbee_log_mine", n) for n in [*logs, "none"]]
    assert answers == ["yes\n", "yes\n", "no\n", "no\n"]

    unit = tmp_path / ".config/systemd/user/rbee-hive.service"
    assert service(shell, tmp_path, code, "rbee_unit_mine") == "no\n"  # none yet
    unit.parent.mkdir(parents=True)
    for text, mine in [
        ("# rbee-infra managed unit\n[Unit]\n", "yes\n"),
        ("[Unit]\nDescription=rbee hive (installed by rbee-infra)\n", "yes\n"),
        ("[Unit]\nDescription=my own hive\n", "no\n"),
    ]:
        unit.write_text(text)
        assert service(shell, tmp_path, code, "rbee_unit_mine") == mine


def test_ours_is_only_the_hive_from_the_stable_path(shell: str, tmp_path: Path) -> None:
    hive = tmp_path / ".local/bin/rbee-hive"
    hive.parent.mkdir(parents=True)
    shutil.copy(tool("sleep"), hive)
    other = tmp_path / "sleep"
    shutil.copy(tool("sleep"), other)
    code = 'for p in "$@"; do if rbee_ours "$p"; then echo yes; else echo no; fi; done'
    with (
        subprocess.Popen([str(hive), "30"]) as ours,
        subprocess.Popen([str(other), "30"]) as not_ours,
    ):
        try:
            pids = [str(ours.pid), str(not_ours.pid), "", "0", "x"]
            assert service(shell, tmp_path, code, *pids).split() == ["yes", "no", "no", "no", "no"]
            running = 'if rbee_running "$1"; then echo yes; else echo no; fi'
            assert service(shell, tmp_path, running, str(ours.pid)) == "yes\n"
            ours.kill()
            wait_for_zombie(ours.pid)
            assert service(shell, tmp_path, running, str(ours.pid)) == "no\n"  # a zombie
        finally:
            ours.kill()
            not_ours.kill()


# --- whole scripts under dash and bash ---------------------------------------------------------


def script(shell: str, name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The assembled script `name`, run as the host runs it, in a home of its own."""
    return subprocess.run(
        [shell, "-c", getattr(scripts, name), "rbee", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "HOME": str(cwd)},
        timeout=60,
    )


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


# like rbee's worker: clap without `version` (usage error, exit 2), `--help` exits 0
CLAP_WORKER = """#!/bin/sh
case "${1:-}" in
  --help) printf 'A worker\\n\\nUsage: %s --port <PORT>\\n' "${0##*/}"; exit 0;;
  *) printf "error: unexpected argument '%s' found\\n\\nUsage: %s --port <PORT>\\n" "$1" "${0##*/}" >&2
     exit 2;;
esac
"""


def verify_runs(out: str) -> list[tuple[str, str, str]]:
    found = []
    for line in out.splitlines():
        if line.startswith("@@run\t"):
            _, check, code, text = line.split("\t")
            found.append((check, code, base64.b64decode(text).decode()))
    return found


def test_verify_runs_help_only_when_version_does_not_answer(shell: str, tmp_path: Path) -> None:
    worker = executable(tmp_path / "rel" / "llm-worker-rbee-cpu", CLAP_WORKER)
    (tmp_path / "meta.json").write_text('{"packages": [\n]}\n')
    out = script(shell, "VERIFY", "5", "rel/llm-worker-rbee-cpu", "llm-worker-rbee-cpu", "1",
                 "meta.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert verify_runs(out.stdout) == [
        ("--version", "2", "error: unexpected argument '--version' found\n\n"
         "Usage: llm-worker-rbee-cpu --port <PORT>\n"),
        ("--help", "0", "A worker\n\nUsage: llm-worker-rbee-cpu --port <PORT>\n"),
    ]
    lines = out.stdout.splitlines()
    assert lines[-2] == f"@@sha256\t{sha256(worker.read_bytes())}"
    assert lines[-1] == '@@metadata\t{"packages": []}'  # on one line

    hive = executable(tmp_path / "rbee-hive", '#!/bin/sh\necho "rbee-hive 0.1.0"\n')
    out = script(shell, "VERIFY", "5", "rbee-hive", "rbee-hive", "0", "", cwd=tmp_path)
    assert verify_runs(out.stdout) == [("--version", "0", "rbee-hive 0.1.0\n")]
    assert "@@sha256" not in out.stdout and "@@metadata" not in out.stdout
    assert hive.exists()

    # `--version` answers, but names another program: `--help` runs too
    executable(tmp_path / "x", '#!/bin/sh\n[ "$1" = --help ] && echo "Usage: x"; echo "other 1.0"\n')
    out = script(shell, "VERIFY", "5", "x", "llm-worker-rbee-cpu", "0", "", cwd=tmp_path)
    assert [run[0] for run in verify_runs(out.stdout)] == ["--version", "--help"]


def test_verify_runs_only_the_configured_check_with_literal_arguments(
    shell: str, tmp_path: Path
) -> None:
    executable(tmp_path / "b", '#!/bin/sh\nprintf "[%s]" "$@"; echo; exit 4\n')
    out = script(shell, "VERIFY", "5", "b", "b", "0", "", "--check", "$(id) a", cwd=tmp_path)
    assert verify_runs(out.stdout) == [("configured", "4", "[--check][$(id) a]\n")]


def test_verify_of_a_missing_binary_runs_nothing(shell: str, tmp_path: Path) -> None:
    out = script(shell, "VERIFY", "5", "gone", "gone", "1", "no-such.json", cwd=tmp_path)
    assert (out.returncode, out.stdout) == (0, "")


def test_verify_bounds_a_run_that_hangs(shell: str, tmp_path: Path) -> None:
    tool("timeout")
    executable(tmp_path / "slow", "#!/bin/sh\nsleep 30\n")
    started = time.monotonic()
    out = script(shell, "VERIFY", "1", "slow", "slow", "0", "", "--x", cwd=tmp_path)
    assert verify_runs(out.stdout) == [("configured", "124", "\n")]
    assert time.monotonic() - started < 10


ROOT = ".local/share/rbee"
SRC = f"{ROOT}/build/abc"


def build_host(home: Path, *users: str) -> None:
    """A host with a build cache used by `users` and one release of rbee-worker-cpu."""
    for d in (f"{SRC}/checkout/.git", f"{SRC}/target/release", f"{SRC}/users",
              f"{ROOT}/releases/rbee-worker-cpu/r1", f"{ROOT}/jobs/me/j1"):
        (home / d).mkdir(parents=True, exist_ok=True)
    for user in users:
        (home / SRC / "users" / user).write_text("")
    (home / ROOT / "releases/rbee-worker-cpu/r1/llm-worker-rbee-cpu").write_text("bin")


def remove(shell: str, home: Path, mode: str, src: str = SRC, rid: str = "r1") -> None:
    out = script(
        shell, "REMOVE", f"{ROOT}/.lock", "5", "test", mode,
        f"{ROOT}/workers/rbee-worker-cpu", f"{ROOT}/receipts/rbee-worker-cpu.json", "me",
        f"{ROOT}/releases/rbee-worker-cpu", src, f"{src}/users/me" if src else "",
        f"{ROOT}/jobs/me", "5" if mode == "delete" else "now", rid, cwd=home,
    )
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("mode", ["abort-create", "abort-update", "undo-create"])
def test_a_failed_install_keeps_the_build_cache(shell: str, tmp_path: Path, mode: str) -> None:
    tool("flock")
    build_host(tmp_path, "me")
    remove(shell, tmp_path, mode)
    assert (tmp_path / SRC / "checkout/.git").is_dir() and (tmp_path / SRC / "target").is_dir()
    assert not (tmp_path / ROOT / "releases/rbee-worker-cpu").exists()  # the failed release
    assert not (tmp_path / ROOT / "jobs/me").exists()
    # a failed update's resource still uses the cache; a failed create's does not (yet)
    assert (tmp_path / SRC / "users/me").exists() == (mode == "abort-update")


def test_delete_removes_the_cache_with_its_last_user_and_orphans_once_idle(
    shell: str, tmp_path: Path
) -> None:
    tool("flock")
    build_host(tmp_path, "me", "other")
    remove(shell, tmp_path, "delete")
    assert (tmp_path / SRC / "target").is_dir()  # `other` still builds from it
    (tmp_path / SRC / "users/other").unlink()  # e.g. `other` was a failed create
    (tmp_path / ROOT / "jobs/someone/j").mkdir(parents=True)  # a build under way
    remove(shell, tmp_path, "delete", src="")  # a resource that does not build (local)
    assert (tmp_path / SRC / "target").is_dir()
    shutil.rmtree(tmp_path / ROOT / "jobs/someone")  # its job is done and activated
    remove(shell, tmp_path, "delete", src="")
    assert not (tmp_path / ROOT).exists()
