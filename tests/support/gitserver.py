"""A small git server over HTTP for laptops and tests: the GitOps source a Flux source-controller
(see flux.py) clones from.

Requests are handed to `git http-backend` as CGI, so the smart HTTP protocol (v0-v2, fetch and
push) is git's own. It serves every bare repository under one directory at
http://127.0.0.1:PORT/<name> (a free loopback port), exports them all and accepts pushes. Run it in
a thread (`serve(root)`, an object with `url` and `stop()`) or by hand
(`python -m tests.support.gitserver ROOT`).

`create_bare_repo()` and `commit_folder()` prepare content with the git CLI. Commits are made in
a throwaway repository whose identity is set in its own config: no global git config is read or
written, and the caller's checkout is never touched.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import ClassVar

from provisioner.errors import SetupError

__all__ = [
    "GitServer",
    "GitServerError",
    "commit_folder",
    "create_bare_repo",
    "serve",
]

HOST = "127.0.0.1"
COMMITTER_NAME = "provisioner-local"
COMMITTER_EMAIL = "provisioner-local@localhost"
# Variables that would point git at another repository or configuration than the one we name.
_GIT_ENV_DROPPED = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR",
                    "GIT_NAMESPACE", "GIT_CONFIG", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT")


class GitServerError(SetupError):
    """A git command or the server failed; the message carries git's output."""


def _git_env() -> dict[str, str]:
    """The caller's environment without git overrides, with no system or global git config."""
    env = {key: value for key, value in os.environ.items() if key not in _GIT_ENV_DROPPED}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0")
    return env


def _git(*args: str, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, env=_git_env(), capture_output=True, text=True, check=False)
    except OSError as exc:
        raise GitServerError(f"cannot run git: {exc}") from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()
        raise GitServerError(f"git {' '.join(args)} failed (exit {done.returncode}):\n{output}")
    return done.stdout


# ---------------------------------------------------------------------------------------------
# Repositories


def create_bare_repo(root: Path, name: str, *, branch: str = "main") -> Path:
    """Create the empty bare repository `root/name` (e.g. "repo.git") whose HEAD is `branch`."""
    path = Path(root) / name
    if path.exists():
        raise GitServerError(f"{path} exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    _git("init", "--quiet", "--bare", f"--initial-branch={branch}", str(path))
    _git("--git-dir", str(path), "config", "http.receivepack", "true")
    return path


def commit_folder(repo: str | Path, folder: Path, message: str, *, branch: str = "main") -> str:
    """Make `branch` of `repo` (a URL or a bare repository's path) hold exactly the files of
    `folder`, as one new commit on top of the branch (or its first commit), and push it.

    Returns the commit's id. Files missing from `folder` are deleted in that commit, so a test
    removes a manifest by deleting it from its folder and committing again.
    """
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise GitServerError(f"{folder} is not a directory")
    remote = str(repo)
    ref = f"refs/heads/{branch}"
    with tempfile.TemporaryDirectory(prefix="gitserver-commit-") as scratch:
        git_dir = str(Path(scratch) / "git")
        _git("init", "--quiet", "--bare", f"--initial-branch={branch}", git_dir)
        _git("--git-dir", git_dir, "config", "user.name", COMMITTER_NAME)
        _git("--git-dir", git_dir, "config", "user.email", COMMITTER_EMAIL)
        tree = ["--git-dir", git_dir, "--work-tree", str(folder)]
        if _git("ls-remote", remote, ref).strip():
            _git("--git-dir", git_dir, "fetch", "--quiet", remote, f"{ref}:{ref}")
        _git(*tree, "add", "--all", "--", ".")
        _git(*tree, "commit", "--quiet", "--allow-empty", "--no-verify", "-m", message)
        _git("--git-dir", git_dir, "push", "--quiet", remote, f"{ref}:{ref}")
        return _git("--git-dir", git_dir, "rev-parse", ref).strip()


# ---------------------------------------------------------------------------------------------
# The server


def _read_chunked(stream: io.BufferedIOBase) -> bytes:
    body = bytearray()
    while True:
        size = int(stream.readline().split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while stream.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return bytes(body)
        body += stream.read(size)
        stream.readline()  # the CRLF after each chunk


class _Handler(BaseHTTPRequestHandler):
    """Runs `git http-backend` for each request (CGI/1.1) and relays its answer."""

    server_version = "provisioner-gitserver"
    root: ClassVar[Path]  # set on the subclass each server makes
    backend: ClassVar[list[str]]

    def do_GET(self) -> None:
        self._cgi()

    def do_POST(self) -> None:
        self._cgi()

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: tests read git's and the controllers' errors, not an access log

    def _cgi(self) -> None:
        path, _, query = self.path.partition("?")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = _read_chunked(self.rfile)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = _git_env()
        env.update(
            GIT_PROJECT_ROOT=str(self.root),
            GIT_HTTP_EXPORT_ALL="1",
            # Pushes need an authenticated REMOTE_USER unless http.receivepack is set: set it here.
            GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="http.receivepack", GIT_CONFIG_VALUE_0="true",
            GATEWAY_INTERFACE="CGI/1.1",
            SERVER_PROTOCOL=self.request_version,
            SERVER_SOFTWARE=self.server_version,
            REQUEST_METHOD=self.command,
            PATH_INFO=path,
            QUERY_STRING=query,
            REMOTE_ADDR=self.client_address[0],
            CONTENT_TYPE=self.headers.get("Content-Type", ""),
            CONTENT_LENGTH=str(len(body)),
        )
        for key, value in self.headers.items():
            if key.lower() not in ("content-type", "content-length", "transfer-encoding"):
                env[f"HTTP_{key.upper().replace('-', '_')}"] = value  # Git-Protocol, Content-Encoding, ...
        done = subprocess.run(self.backend, input=body, env=env, capture_output=True, check=False)
        head, separator, payload = done.stdout.partition(b"\r\n\r\n")
        if not separator:
            head, separator, payload = done.stdout.partition(b"\n\n")
        if done.returncode != 0 and not separator:
            message = done.stderr.decode(errors="replace").strip() or f"git http-backend exit {done.returncode}"
            self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR, message)
            return
        status, headers = HTTPStatus.OK.value, []
        for line in head.decode("latin-1").splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() == "status":
                status = int(value.split()[0])
            elif key.strip():
                headers.append((key.strip(), value.strip()))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


class GitServer:
    """Serves the bare repositories under `root` at `url` from a background thread."""

    def __init__(self, root: Path, port: int = 0) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        git = shutil.which("git")
        if git is None:
            raise GitServerError("the git server needs git on PATH")
        handler = type("Handler", (_Handler,), {"root": self.root, "backend": [git, "http-backend"]})
        self._httpd = ThreadingHTTPServer((HOST, port), handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self.url = f"http://{HOST}:{self.port}"
        self._thread: threading.Thread | None = None

    def repo_url(self, name: str) -> str:
        """The clone URL of `root/name`."""
        return f"{self.url}/{name}"

    def start(self) -> GitServer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"gitserver-{self.port}",
                                            daemon=True)
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until `stop()` is called from another one."""
        self._httpd.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> GitServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"GitServer(url={self.url!r}, root={str(self.root)!r})"


def serve(root: Path, port: int = 0) -> GitServer:
    """Start serving the bare repositories under `root` from a daemon thread."""
    return GitServer(root, port).start()


def _main(argv: list[str]) -> int:
    if len(argv) not in (1, 2) or (len(argv) == 2 and not argv[1].isdigit()):
        print("usage: python -m tests.support.gitserver ROOT [PORT]", file=sys.stderr)
        return 2
    server = GitServer(Path(argv[0]), int(argv[1]) if len(argv) == 2 else 0)

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(server.url, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
