"""`git daemon`, served one connection at a time in `--inetd` mode behind a listening socket of
our own: `python -m tests.harness.git_inetd PORT BASE_PATH DIRECTORY`.

`git daemon` listens with a backlog of 5. When 32 or more hosts of a benchmark lab ask it at
once (a no-op's `git ls-remote` on every host), the kernel's accept queue overflows: connects
are dropped or answered by SYN cookies whose handshake the full queue then drops, and the
hosts' git reads "Connection reset by peer" (counted as `ListenOverflows` in `nstat`). A real
git server does not fail that way, so the lab should not: this server accepts with a backlog
of 1024 and hands each connection to its own `git daemon --inetd` (the same options, the same
protocol and checks). Runs until it is signalled."""

from __future__ import annotations

import socket
import subprocess
import sys

BACKLOG = 1024


def serve(port: int, base_path: str, directory: str) -> None:
    command = [
        "git", "daemon", "--inetd", "--export-all", f"--base-path={base_path}",
        "--enable=upload-pack", "--informative-errors", "--log-destination=stderr", directory,
    ]  # fmt: skip
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(BACKLOG)
        running: list[subprocess.Popen[bytes]] = []
        while True:
            conn, _ = listener.accept()
            with conn:
                running.append(subprocess.Popen(command, stdin=conn, stdout=conn))
            # reaped here, not by ignoring SIGCHLD: that would pass to git, which waits for
            # its own upload-pack
            running = [child for child in running if child.poll() is None]


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2], sys.argv[3])
