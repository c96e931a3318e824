"""A loopback HTTP server laid out like GitHub releases, with its failure modes.

Serves `/<owner>/<repo>/releases/download/<tag>/<asset>` from a dict of bytes. A path can be
set to fail: `404`, `500`, or `cut` (the headers promise the whole body, half of it is sent,
then the connection closes).
"""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
from dataclasses import dataclass, field
from types import TracebackType

MODES = ("404", "500", "cut")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def script_binary(first_line: str, *, exit_code: int = 0) -> bytes:
    """A stand-in binary: a shell script answering `--version` with `first_line`."""
    return (
        "#!/bin/sh\n"
        f'if [ "${{1:-}}" = --version ]; then echo "{first_line}"; exit {exit_code}; fi\n'
        "echo usage\n"
    ).encode()


def tar_gz(files: dict[str, bytes]) -> bytes:
    """A .tar.gz holding `files` (path -> content), executable, in a fixed order."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@dataclass
class Request:
    path: str
    authorization: str | None


@dataclass
class ReleaseServer:
    host: str = "127.0.0.1"
    files: dict[str, bytes] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    required_auth: str | None = None  # e.g. "Basic ..." : other requests get 404, like GitHub
    _server: http.server.ThreadingHTTPServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @staticmethod
    def path(repo: str, tag: str, name: str) -> str:
        return f"/{repo}/releases/download/{tag}/{name}"

    def publish(
        self,
        repo: str,
        tag: str,
        name: str,
        data: bytes,
        *,
        checksum: str | None = None,
        sha: str | None = None,
    ) -> str:
        """Serve `data` as asset `name`; `checksum` = "file" also serves `<name>.sha256`,
        "sums" adds a line to the tag's SHA256SUMS (with `sha` instead of the real one, if
        given, to publish a wrong checksum). Returns the asset's real sha256."""
        real = sha256(data)
        self.files[self.path(repo, tag, name)] = data
        published = sha or real
        if checksum == "file":
            self.files[self.path(repo, tag, f"{name}.sha256")] = f"{published}  {name}\n".encode()
        elif checksum == "sums":
            sums = self.path(repo, tag, "SHA256SUMS")
            lines = self.files.get(sums, b"").decode().splitlines()
            lines = [ln for ln in lines if not ln.endswith(f" {name}")]
            lines.append(f"{published}  {name}")
            self.files[sums] = ("\n".join(sorted(lines)) + "\n").encode()
        return real

    def fail(self, repo: str, tag: str, name: str, mode: str) -> None:
        assert mode in MODES, mode
        self.modes[self.path(repo, tag, name)] = mode

    def heal(self) -> None:
        self.modes.clear()

    def hits(self, name: str) -> int:
        return sum(1 for r in self.requests if r.path.endswith(f"/{name}"))

    def start(self) -> ReleaseServer:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(Request(self.path, self.headers.get("Authorization")))
                mode = server.modes.get(self.path)
                data = server.files.get(self.path)
                authorized = (
                    server.required_auth is None
                    or self.headers.get("Authorization") == server.required_auth
                )
                if mode == "500":
                    self._reply(500, b"Internal Server Error")
                elif mode == "404" or data is None or not authorized:
                    self._reply(404, b"Not Found")
                elif mode == "cut":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: max(1, len(data) // 2)])
                    self.wfile.flush()
                    self.close_connection = True
                else:
                    self._reply(200, data)

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ReleaseServer:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
