"""The operator's probes: `GET /healthz` (liveness) and `GET /readyz` (readiness), plain HTTP on one port.

Liveness: the work loop is turning. The leader's queue wakes at least every second, a standby's
Lease polling every second; when neither has turned for `stale_after` seconds the process is
stuck (a blocked event loop, a dead thread) and the kubelet restarts it. Readiness: the caches are
primed and the Lease is held, or the process is a standby whose Lease polls get answers from the
API server; never while stopping. Each answers 200 or 503 with one line saying why.

The server is a daemon thread of the standard library's HTTP server: no privileges, any port above
1024 (restricted Pod Security compatible), nothing but the two paths.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Health", "serve"]


class Health:
    """What the probes are answered from; updated by the work loop, the Lease and the stop path."""

    def __init__(self, *, stale_after: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._stale_after = stale_after
        self._lock = threading.Lock()
        self._beat = clock()
        self._ready = False
        self._why = "starting"

    def beat(self) -> None:
        """The work loop (or a standby's Lease polling) turned."""
        with self._lock:
            self._beat = self._clock()

    def set_ready(self, ready: bool, why: str) -> None:
        with self._lock:
            self._ready, self._why = ready, why

    def standby(self, answered: bool) -> None:
        """A standby's Lease poll: alive either way; ready while the API server answers."""
        self.beat()
        self.set_ready(answered, "standby: another operator holds the Lease" if answered
                       else "standby: the API server does not answer")

    def liveness(self) -> tuple[bool, str]:
        with self._lock:
            age = self._clock() - self._beat
        if age > self._stale_after:
            return False, f"the work loop has not turned for {age:.0f} s"
        return True, "the work loop turns"

    def readiness(self) -> tuple[bool, str]:
        with self._lock:
            return self._ready, self._why


def serve(health: Health, port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:  # noqa: S104  (probes come from the kubelet)
    """Answer the probes on `host:port` from a daemon thread until the process exits."""
    checks = {"/healthz": health.liveness, "/readyz": health.readiness}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            check = checks.get(self.path.split("?", 1)[0])
            ok, why = check() if check is not None else (False, "not found: use /healthz or /readyz")
            body = f"{'ok' if ok else 'not ok'}: {why}\n".encode()
            self.send_response(200 if ok else 404 if check is None else 503)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:  # a probe every few seconds is not worth a log line
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
