"""`consumer.autoscale` against a real API server and controller manager, the operator running as the
bundle's ServiceAccount, with real Kafka and Redis: replicas follow the lag (never past the partition
count), each change is an Event and shows in the status, and come back down after the cool-down once
the consumers the test runs for those replicas (the rendered command, standing in for the kubelet)
drained the backlog; the store holds every record once. `autoscale: external` leaves a hand-set
count alone across resyncs, while a product without it has its count repaired.
"""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kubernetes import client

from provisioner.kube.client import KubeClient
from provisioner.kube.products import preview
from provisioner.kube.reconcile import Settings
from provisioner.stream import kafka as kafka_helpers
from tests.integration.conftest import kafka_bootstrap, redis_server  # noqa: F401  (fixtures)

from .operator_harness import OperatorProcess, product, running_operator, secret, wait_for
from .test_operator import _consumer

pytestmark = pytest.mark.integration

RECORDS = 120_000
PARTITIONS = 3


@pytest.fixture(scope="module")
def namespace(kube_api: client.ApiClient) -> Iterator[str]:
    name = f"scale-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(kube_api).create_namespace({"metadata": {"name": name}})
    yield name
    client.CoreV1Api(kube_api).delete_namespace(name)


@pytest.fixture(scope="module")
def store_url(redis_server: Any, kube: KubeClient, namespace: str) -> str:  # noqa: F811
    url: str = redis_server.start()
    secret(kube, namespace, "store-url", {"url": url})
    return url


@pytest.fixture(scope="module")
def operator(operator_kubeconfig: Path, namespace: str, kafka_bootstrap: str, store_url: str,  # noqa: F811
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    # A cool-down of 3 s instead of 5 min, so scaling down is seen within the test.
    with running_operator(operator_kubeconfig, namespace, kafka_bootstrap, tmp_path_factory.mktemp("op"),
                          extra=["--scale-down-delay", "3"]) as op:
        yield op
        print(op.text()[-6000:])  # shown when a test of this module failed


def _replicas(kube: KubeClient, namespace: str, name: str) -> int | None:
    deployment = kube.get("Deployment", namespace, f"{name}-cache-consumer")
    return None if deployment is None else deployment["spec"].get("replicas")


def _store_status(kube: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    body = kube.get("DataProduct", namespace, name) or {}
    stores = (body.get("status") or {}).get("stores") or [{}]
    return dict(stores[0])


def _scaled(kube: KubeClient, namespace: str, name: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in kube.list("Event", namespace)
            if e.get("reason") == reason and e.get("involvedObject", {}).get("name") == name]


def test_replicas_follow_the_lag_within_the_partitions_and_come_back_down(
        kube: KubeClient, namespace: str, operator: OperatorProcess, store_url: str,
        kafka_bootstrap: str, tmp_path: Path) -> None:  # noqa: F811
    topic = f"scale.{uuid.uuid4().hex[:10]}"
    kafka_helpers.ensure_topic(kafka_bootstrap, topic, partitions=PARTITIONS)
    kafka_helpers.produce_records(kafka_bootstrap, topic, [
        kafka_helpers.OutgoingRecord(key=f"o{i}", value=json.dumps({"order_id": f"o{i}", "amount": i}).encode())
        for i in range(RECORDS)])
    # One record per store write keeps a consumer slow enough that the backlog outlasts a few refreshes;
    # draining within 1 s asks for more consumers than the 3 partitions, and maxReplicas allows 8.
    body = product("elastic", namespace, topic, consumer={
        "replicas": 1, "batchSize": 1, "autoscale": {"maxReplicas": 8, "catchUpWithin": "1s"}})
    kube.apply(body)
    wait_for("the consumer Deployment", lambda: _replicas(kube, namespace, "elastic") == 1)
    seen: list[int] = []
    consumers: list[subprocess.Popen[bytes]] = []

    def replicas() -> int:
        count = _replicas(kube, namespace, "elastic") or 0
        seen.append(count)
        return count

    try:
        consumers.append(_consumer(kube, namespace, "elastic", kafka_bootstrap, store_url, tmp_path))
        wait_for("more replicas while the backlog lasts", lambda: replicas() > 1, timeout=90)
        wait_for("the partition count", lambda: replicas() == PARTITIONS, timeout=60)
        up = wait_for("a ScaledUp Event", lambda: _scaled(kube, namespace, "elastic", "ScaledUp"))
        assert "Deployment elastic-cache-consumer from 1 to" in up[0]["message"]
        assert up[0]["type"] == "Normal"
        scale = wait_for("the choice in the status", lambda: (s := _store_status(kube, namespace, "elastic")
                                                              .get("autoscale")) and s["desired"] == PARTITIONS and s)
        assert scale["min"] == 1 and scale["max"] == PARTITIONS and scale["lastScaleTime"]
        # `plan` says the bounds and keeps the operator's choice (no change back to the floor).
        [planned] = preview(kube, [body], Settings(kafka_bootstrap=kafka_bootstrap))
        assert planned.replicas.startswith("1 to 8 by lag, never more than the partitions")
        assert [o.action for o in planned.objects if o.kind == "Deployment"] == ["unchanged"]
        # The test stands in for the kubelet: a consumer process per replica.
        consumers += [_consumer(kube, namespace, "elastic", kafka_bootstrap, store_url, tmp_path)
                      for _ in range(PARTITIONS - 1)]
        wait_for("the backlog drained", lambda: _store_status(kube, namespace, "elastic").get("lag") == 0,
                 timeout=180)
        wait_for("back to the floor after the cool-down", lambda: replicas() == 1, timeout=60)
        # Straight to the floor, or through 2 when a refresh saw a lag one consumer would not read in time.
        wait_for("a ScaledDown Event to the floor", lambda: [
            e for e in _scaled(kube, namespace, "elastic", "ScaledDown") if " to 1 replicas (" in e["message"]])
    finally:
        for process in consumers:
            process.send_signal(signal.SIGTERM)
        for process in consumers:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    assert max(seen) == PARTITIONS  # never above the partition count (maxReplicas was 8)
    assert (_store_status(kube, namespace, "elastic").get("autoscale") or {}).get("desired") == 1
    rows = redis.Redis.from_url(store_url)
    try:
        keys = {k.decode() for k in rows.scan_iter(match="elastic:*", count=10_000)}
    finally:
        rows.close()
    assert keys == {f"elastic:o{i}" for i in range(RECORDS)}  # every record, once


def test_external_autoscaler_owns_the_replicas_and_without_it_they_are_repaired(
        kube: KubeClient, namespace: str, operator: OperatorProcess) -> None:
    topic = f"scale.{uuid.uuid4().hex[:10]}"
    kube.apply(product("hpa", namespace, topic, consumer={"autoscale": "external"}))
    kube.apply(product("fixed", namespace, topic))
    for name in ("hpa", "fixed"):
        wait_for(f"{name}'s Deployment", lambda n=name: _replicas(kube, namespace, n) == 1)  # type: ignore[misc]
    deployment = kube.get("Deployment", namespace, "hpa-cache-consumer")
    assert deployment is not None
    # The operator's applies never claim the field (its create's entry holds the server's default, which
    # any later writer takes over).
    owners = [e for e in deployment["metadata"].get("managedFields") or [] if e.get("operation") == "Apply"
              and "f:replicas" in ((e.get("fieldsV1") or {}).get("f:spec") or {})]
    assert owners == [], owners

    def hand_set(name: str, count: int) -> None:
        kube.request("PATCH", f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}-cache-consumer",
                     body={"spec": {"replicas": count}}, content_type="application/merge-patch+json",
                     query={"fieldManager": "keda-operator"})

    for round_ in range(2):  # two repairs of the fixed one: two passes of the operator over the namespace
        hand_set("hpa", 4 + round_)
        hand_set("fixed", 4 + round_)
        wait_for("the fixed product's count repaired", lambda: _replicas(kube, namespace, "fixed") == 1)
    wait_for("a status refresh of the hpa product", lambda: _store_status(kube, namespace, "hpa").get("name"))
    assert _replicas(kube, namespace, "hpa") == 5
    assert "autoscale" not in _store_status(kube, namespace, "hpa")
