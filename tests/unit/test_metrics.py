"""The consumer's metrics server: /metrics for Prometheus, /healthz for a liveness probe."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from provisioner.runtime.metrics import DEFAULT_STALL_AFTER, ConsumerMetrics


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_healthz_follows_the_loop_heartbeat() -> None:
    metrics = ConsumerMetrics("p", "s")
    assert metrics.stall_after == DEFAULT_STALL_AFTER
    port = metrics.serve(0, "127.0.0.1", stall_after=0.2)
    base = f"http://127.0.0.1:{port}"
    metrics.beat()
    assert get(base + "/healthz") == (200, "ok\n")
    time.sleep(0.3)
    code, body = get(base + "/healthz")
    assert code == 503 and "stalled" in body
    metrics.beat()
    assert get(base + "/healthz")[0] == 200


def test_metrics_are_served_beside_healthz() -> None:
    metrics = ConsumerMetrics("p", "s")
    metrics.records.inc(3)
    port = metrics.serve(0)
    code, body = get(f"http://127.0.0.1:{port}/metrics")
    assert code == 200
    assert 'provisioner_records_total{product="p",store="s"} 3.0' in body


def test_metrics_bind_the_given_host() -> None:
    metrics = ConsumerMetrics("p", "s")
    port = metrics.serve(0, "0.0.0.0")
    assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
