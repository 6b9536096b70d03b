"""The operator while its Kafka broker is down, against a real API server and a real broker that the
test stops (the process ends: connections are refused) or freezes (SIGSTOP: connections hang
unanswered, the harder case for timeouts): drift is still repaired at once, the status says KafkaUnavailable within a status
interval or two, and SIGTERM ends the process cleanly (exit code 0, Lease released, webhook removed)
well inside the Pod's grace period. The seconds each took are printed (`pytest -s` shows them).

The broker is the test's own (started here, stopped mid-test), not the session's shared one.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner.kube.client import KubeClient
from provisioner.local import devbroker
from provisioner.stream import kafka as kafka_helpers
from tests.integration.conftest import redis_server  # noqa: F401  (fixture)

from .operator_harness import LEASE_NAMESPACE, OperatorProcess, condition, product, secret, wait_children, wait_for

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _probe(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


@pytest.fixture
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A broker of this test's own: (bootstrap, state directory to stop it with)."""
    state = tmp_path_factory.mktemp("outage-kafka")
    bootstrap = devbroker.up(state, port=0)
    try:
        yield bootstrap, state
    finally:
        found = devbroker.status(state)
        if found is not None:
            os.kill(found.pid, signal.SIGCONT)  # a frozen broker is thawed to be stopped
        devbroker.down(state, purge=True)


def _webhooks(kube: KubeClient, name: str) -> list[dict[str, Any]] | None:
    return (kube.get("ValidatingWebhookConfiguration", None, name) or {}).get("webhooks") or None


def _break(state: Path, how: str) -> None:
    if how == "stopped":
        assert devbroker.down(state)
    else:
        found = devbroker.status(state)
        assert found is not None
        os.kill(found.pid, signal.SIGSTOP)


@pytest.mark.parametrize("how", ["stopped", "frozen"])
def test_with_kafka_down_drift_is_repaired_the_status_says_so_and_sigterm_stops_cleanly(
        operator_kubeconfig: Path, kube: KubeClient, namespace: str, broker: tuple[str, Path],
        redis_server: Any, tmp_path: Path, how: str) -> None:  # noqa: F811
    bootstrap, state = broker
    topic = f"outage.{uuid.uuid4().hex[:8]}"
    kafka_helpers.ensure_topic(bootstrap, topic, partitions=2)
    secret(kube, namespace, "store-url", {"url": redis_server.url})
    health_port, webhook_port = _free_port(), _free_port()
    configuration = "provisioner.dev"  # the bundle's: the one the operator may patch
    extra = ["--health-port", str(health_port), "--webhook", "--webhook-host", "127.0.0.1",
             "--webhook-port", str(webhook_port), "--webhook-configuration", configuration,
             "--webhook-cert-dir", str(tmp_path / "certs"), "--resync", "2"]
    operator = OperatorProcess(operator_kubeconfig, namespace, bootstrap, tmp_path, lease="outage", extra=extra)
    try:
        kube.apply(product("orders", namespace, topic, freshness="30s"))
        wait_children(kube, namespace, "orders", 3)
        # Kafka answers: no member in the group yet (a new broker may first lack a group coordinator).
        wait_for("ConsumersReady=NoConsumer with Kafka up", lambda: (c := condition(
            kube.get("DataProduct", namespace, "orders"), "ConsumersReady")) and c["reason"] == "NoConsumer",
            timeout=120)
        fresh = condition(kube.get("DataProduct", namespace, "orders"), "Fresh")
        assert fresh is not None and fresh["status"] == "Unknown", fresh  # never seen caught up
        wait_for("the webhook configured", lambda: _webhooks(kube, configuration))
        assert _probe(health_port, "/healthz")[0] == 200
        assert wait_for("ready", lambda: _probe(health_port, "/readyz")[0] == 200)

        _break(state, how)
        stopped = time.monotonic()
        unavailable = wait_for("ConsumersReady=KafkaUnavailable", lambda: (c := condition(
            kube.get("DataProduct", namespace, "orders"), "ConsumersReady")) and c["reason"] == "KafkaUnavailable"
            and c, timeout=120)
        condition_s = time.monotonic() - stopped
        assert unavailable["status"] == "Unknown"
        assert "is unavailable" in (kube.get("DataProduct", namespace, "orders") or {})["status"]["stores"][0][
            "lastError"]

        # Drift repair, measured a few times over several status refreshes (some of them waiting on
        # the broker, some failing at once while it is known to be down).
        repairs = []
        for attempt in range(5):
            if attempt:
                time.sleep(1.3)
            old = kube.get("ConfigMap", namespace, "orders-spec")
            assert old is not None
            kube.delete("ConfigMap", namespace, "orders-spec")
            deleted = time.monotonic()
            wait_for("the ConfigMap restored", lambda uid=old["metadata"]["uid"]: (
                c := kube.get("ConfigMap", namespace, "orders-spec")) and c["metadata"]["uid"] != uid,
                timeout=120, every=0.05)
            repairs.append(time.monotonic() - deleted)
        # An edit converges too: a second store's objects appear.
        kube.apply(product("orders", namespace, topic, freshness="30s", stores=[
            {"name": "cache", "redis": {"connection": {"secretRef": {"name": "store-url", "key": "url"}}}},
            {"name": "more", "redis": {"connection": {"secretRef": {"name": "store-url", "key": "url"}}}}]))
        edited = time.monotonic()
        wait_children(kube, namespace, "orders", 5, timeout=120)
        edit_s = time.monotonic() - edited
        assert _probe(health_port, "/healthz")[0] == 200

        operator.proc.terminate()
        signalled = time.monotonic()
        code = operator.proc.wait(120)
        stop_s = time.monotonic() - signalled
        assert code == 0, operator.text()[-3000:]
        lease = kube.get("Lease", LEASE_NAMESPACE, operator.lease_name)
        assert lease is not None and not lease["spec"].get("holderIdentity"), lease
        assert _webhooks(kube, configuration) is None
        print(f"\nKafka {how}: ConsumersReady=KafkaUnavailable after {condition_s:.1f} s (status every 2 s); "
              f"ConfigMap restored after {', '.join(f'{s:.3f}' for s in repairs)} s; edit applied after "
              f"{edit_s:.2f} s; SIGTERM to exit {stop_s:.1f} s")
        text = operator.text()
        assert "Traceback" not in text, text[-3000:]
        assert "not stopped within" not in text  # the clean path, not the watchdog
    finally:
        operator.stop()
