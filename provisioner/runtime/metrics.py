"""Prometheus metrics of one store consumer (one process per store, so labels stay few), and the
health of its loop.

`serve` exposes both on one HTTP server: `/metrics` for Prometheus and `/healthz` for a liveness
probe, which answers 200 while the consume loop completes iterations and 503 once it has not for
longer than `stall_after` seconds. An idle loop (a poll that found nothing) still completes
iterations; a loop blocked in a store write or a Kafka call does not.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from threading import Thread
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

DEFAULT_STALL_AFTER = 120.0


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    """No access log line per probe or scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class ConsumerMetrics:
    """records/s (rate of records), ops by kind, dead letters by stage, lag, freshness, last error."""

    def __init__(self, product: str, store: str) -> None:
        self.registry = CollectorRegistry()
        labels = {"product": product, "store": store}
        self._labels = labels
        self.records = Counter("provisioner_records", "Records read from the source topic",
                               list(labels), registry=self.registry).labels(**labels)
        self._ops = Counter("provisioner_ops", "Ops applied (or skipped) by kind",
                            [*labels, "kind"], registry=self.registry)
        self._dead_letters = Counter("provisioner_dead_letters", "Dead letters by stage",
                                     [*labels, "stage"], registry=self.registry)
        self._stale = Counter("provisioner_stale_ops", "Upserts and deletes skipped as older than their key's last",
                              list(labels), registry=self.registry).labels(**labels)
        self.lag = Gauge("provisioner_lag_records", "Records between the store's position and the topic's end",
                         list(labels), registry=self.registry).labels(**labels)
        self.freshness = Gauge("provisioner_freshness_seconds",
                               "Age of the newest applied record while behind; 0 when caught up",
                               list(labels), registry=self.registry).labels(**labels)
        self.records_per_second = Gauge("provisioner_records_per_second", "Records per second, last interval",
                                        list(labels), registry=self.registry).labels(**labels)
        self.errors = Counter("provisioner_errors", "Errors that forced a retry (Kafka or store unreachable)",
                              list(labels), registry=self.registry).labels(**labels)
        self.last_error = Gauge("provisioner_last_error_timestamp_seconds", "When the last error happened",
                                list(labels), registry=self.registry).labels(**labels)
        self.conflicts = Counter("provisioner_position_conflicts", "Batches discarded by position fencing",
                                 list(labels), registry=self.registry).labels(**labels)
        self.stall_after = DEFAULT_STALL_AFTER
        self._beat = time.monotonic()
        self.batch_seconds = Histogram("provisioner_batch_seconds", "Time to apply one batch to the store",
                                       list(labels), registry=self.registry).labels(**labels)

    def op(self, kind: str, count: int) -> None:
        if count:
            self._ops.labels(**self._labels, kind=kind).inc(count)

    def stale(self, count: int) -> None:
        if count:
            self._stale.inc(count)

    def dead_letter(self, stage: str) -> None:
        self._dead_letters.labels(**self._labels, stage=stage).inc()

    def beat(self) -> None:
        """The consume loop completed an iteration (called once per iteration, so cheap)."""
        self._beat = time.monotonic()

    def stalled_for(self) -> float:
        """Seconds since the loop last completed an iteration."""
        return time.monotonic() - self._beat

    def healthy(self) -> bool:
        return self.stalled_for() <= self.stall_after

    def serve(self, port: int, host: str = "127.0.0.1", *, stall_after: float | None = None) -> int:
        """Expose /metrics and /healthz on `host`:`port` (port 0 picks a free one); returns the port."""
        if stall_after is not None:
            self.stall_after = stall_after
        metrics_app = make_wsgi_app(self.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO") == "/healthz":
                stalled = self.stalled_for()
                if stalled <= self.stall_after:
                    status, body = "200 OK", b"ok\n"
                else:
                    status = "503 Service Unavailable"
                    body = b"stalled: the consume loop has not completed an iteration for %.0fs\n" % stalled
                start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                                        ("Content-Length", str(len(body)))])
                return [body]
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]

        server_class = _Server6 if ":" in host else _Server
        server = make_server(host, port, app, server_class, handler_class=_QuietHandler)
        Thread(target=server.serve_forever, name="metrics-server", daemon=True).start()
        return int(server.server_port)
