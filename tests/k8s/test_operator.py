"""The operator against a real API server, etcd and controller manager, run as a process.

Products' objects appear with owners and are pruned, restored and garbage-collected; an invalid
spec is reported without touching a child; status comes from real data (the rendered consumer
command runs as local processes against the local Kafka and Redis, standing in for the kubelet);
an idle operator writes nothing; a SIGKILLed operator's successor converges; of two operators one
acts; a canary password appears in no log, Event, status or ConfigMap.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from provisioner.kube.client import OPERATOR_USER_AGENT, KubeClient
from provisioner.kube.reconcile import CHILD_KINDS, parse_product
from provisioner.stores.versions import open_shadow_store, open_versions, shadow_for
from provisioner.stream import kafka as kafka_helpers
from tests.integration.conftest import kafka_bootstrap, redis_server  # noqa: F401  (fixtures)

from .argocd_health import health
from .conftest import audited_requests
from .operator_harness import (
    LEASE_NAMESPACE,
    OperatorProcess,
    children,
    condition,
    list_versions,
    product,
    running_operator,
    secret,
    wait_children,
    wait_for,
    watch_writes,
)

pytestmark = pytest.mark.integration
CANARY = "canary-Pa55w0rd-7f3e"



def _namespace(kube_api: client.ApiClient) -> str:
    name = f"op-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(kube_api).create_namespace({"metadata": {"name": name}})
    return name


@pytest.fixture(scope="module")
def namespace(kube_api: client.ApiClient) -> Iterator[str]:
    name = _namespace(kube_api)
    yield name
    client.CoreV1Api(kube_api).delete_namespace(name)


@pytest.fixture(scope="module")
def store_url(redis_server: Any, kube: KubeClient, namespace: str) -> str:  # noqa: F811
    """A Secret `store-url` whose URL is the local Redis with a canary password in its query."""
    url = redis_server.start()
    secret(kube, namespace, "store-url", {"url": url})
    secret(kube, namespace, "canary", {"url": url.replace("redis://", f"redis://:{CANARY}@")})
    return url


@pytest.fixture(scope="module")
def operator(operator_kubeconfig: Path, namespace: str, kafka_bootstrap: str, store_url: str,  # noqa: F811
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    with running_operator(operator_kubeconfig, namespace, kafka_bootstrap, tmp_path_factory.mktemp("op")) as op:
        yield op
        print(op.text()[-6000:])  # shown when a test of this module failed


def _get(kube: KubeClient, namespace: str, name: str) -> dict[str, Any] | None:
    return kube.get("DataProduct", namespace, name)


def _topic() -> str:
    return f"op.{uuid.uuid4().hex[:10]}"


MANAGED = [{"name": "cache", "redis": {"connection": {"secretRef": {"name": "store-url", "key": "url"}}}},
           {"name": "db", "postgres": {}}]


def test_objects_appear_with_owners_and_follow_the_spec(kube: KubeClient, namespace: str,
                                                        operator: OperatorProcess) -> None:
    body = kube.apply(product("orders", namespace, _topic(), stores=MANAGED))
    uid = body["metadata"]["uid"]
    objects = wait_children(kube, namespace, "orders", 9)
    kinds = sorted({k for k, _ in objects})
    assert kinds == sorted(["ConfigMap", "Secret", "Service", "NetworkPolicy", "StatefulSet", "Deployment"])
    for obj in objects.values():
        assert [r["uid"] for r in obj["metadata"]["ownerReferences"]] == [uid]
    pods = [o["spec"]["template"]["spec"] for o in objects.values() if o["kind"] in ("Deployment", "StatefulSet")]
    assert pods and all(p["serviceAccountName"] == "default" and p["automountServiceAccountToken"] is False
                        for p in pods)
    # The ServiceAccount an earlier version rendered per product (labelled, owned): pruned.
    kube.create({"apiVersion": "v1", "kind": "ServiceAccount", "automountServiceAccountToken": False,
                 "metadata": {"name": "orders-provisioner", "namespace": namespace,
                              "labels": objects[("ConfigMap", "orders-spec")]["metadata"]["labels"],
                              "ownerReferences": objects[("ConfigMap", "orders-spec")]["metadata"]["ownerReferences"]}})
    wait_for("the old ServiceAccount pruned", lambda: kube.get("ServiceAccount", namespace, "orders-provisioner") is None)
    status = wait_for("a status of generation 1", lambda: (b := _get(kube, namespace, "orders"))
                      and (b.get("status") or {}).get("observedGeneration") == 1 and b)
    types = [c["type"] for c in status["status"]["conditions"]]
    assert types == ["Ready", "StoresReady", "ConsumersReady", "CaughtUp", "Fresh", "Rebuilding"]
    assert all(c["observedGeneration"] == 1 for c in status["status"]["conditions"])
    assert condition(status, "Ready")["status"] == "False"  # type: ignore[index]

    # Removing the managed store removes its objects; observedGeneration follows the edit.
    edited = product("orders", namespace, status["spec"]["source"]["topic"], stores=MANAGED[:1])
    kube.apply(edited)
    wait_for("the managed store's objects to go", lambda: not any(
        name.startswith("orders-db") for _, name in children(kube, namespace, "orders")))
    remaining = children(kube, namespace, "orders")
    assert sorted(remaining) == sorted([("ConfigMap", "orders-spec"), ("Deployment", "orders-cache-consumer"),
                                        ("NetworkPolicy", "orders-cache-consumer-egress")])
    wait_for("observedGeneration 2", lambda: ((_get(kube, namespace, "orders") or {}).get("status") or {})
             .get("observedGeneration") == 2)


def test_edited_or_deleted_children_are_restored_and_deleting_the_product_removes_them(
        kube: KubeClient, namespace: str, operator: OperatorProcess) -> None:
    kube.apply(product("drift", namespace, _topic()))
    objects = wait_children(kube, namespace, "drift", 3)
    deployment = objects[("Deployment", "drift-cache-consumer")]
    # Someone scales the consumer by hand (another field manager, forced) and deletes the ConfigMap.
    kube.request("PATCH", f"/apis/apps/v1/namespaces/{namespace}/deployments/drift-cache-consumer",
                 {"fieldManager": "someone", "force": "true"},
                 ({"apiVersion": "apps/v1", "kind": "Deployment",
                             "metadata": {"name": "drift-cache-consumer"}, "spec": {"replicas": 5}}),
                 "application/apply-patch+yaml")
    old_config = objects[("ConfigMap", "drift-spec")]["metadata"]["uid"]
    kube.delete("ConfigMap", namespace, "drift-spec")
    wait_for("the replicas restored", lambda: (d := kube.get("Deployment", namespace, "drift-cache-consumer"))
             and d["spec"]["replicas"] == deployment["spec"]["replicas"])
    restored = wait_for("the ConfigMap restored", lambda: kube.get("ConfigMap", namespace, "drift-spec"))
    assert restored["metadata"]["uid"] != old_config
    assert len(children(kube, namespace, "drift")) == 3  # no duplicates

    kube.delete("DataProduct", namespace, "drift")
    wait_for("every child collected", lambda: not children(kube, namespace, "drift"))


def test_invalid_spec_is_reported_and_changes_no_child(kube: KubeClient, namespace: str,
                                                       operator: OperatorProcess) -> None:
    topic = _topic()
    kube.apply(product("broken", namespace, topic))
    before = wait_children(kube, namespace, "broken", 3)
    # What the operator could change: the object itself (uid) and its spec (generation; objects
    # without one, by resourceVersion). Controllers update Deployments' status meanwhile.
    def versions_of(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[tuple[str, str], tuple[str, str]]:
        return {k: (o["metadata"]["uid"], str(o["metadata"].get("generation") or o["metadata"]["resourceVersion"]))
                for k, o in objects.items()}

    versions = versions_of(before)
    bad = product("broken", namespace, topic)
    bad["spec"]["fields"]["amount"] = "event.amount *"
    kube.apply(bad)
    ready = wait_for("Ready=False naming the error", lambda: (c := condition(_get(kube, namespace, "broken"), "Ready"))
                     and c["reason"] == "InvalidSpec" and c)
    assert ready["message"].startswith("spec.fields.amount: ")
    assert health(_get(kube, namespace, "broken") or {}) == ("Degraded", ready["message"])
    assert "column" in ready["message"]
    # The same words `provisioner validate` prints for the same spec in a file.
    assert ready["observedGeneration"] == 2
    time.sleep(2)  # two resyncs: still nothing changed
    after = children(kube, namespace, "broken")
    assert versions_of(after) == versions


def test_validate_prints_the_same_message(tmp_path: Path) -> None:
    spec = product("broken", "default", "t")
    spec["spec"]["fields"]["amount"] = "event.amount *"
    path = tmp_path / "p.yaml"
    path.write_text(json.dumps(spec))
    out = subprocess.run([sys.executable, "-m", "provisioner", "validate", str(path), "--output", "json"],
                         capture_output=True, text=True, check=False)
    finding = json.loads(out.stdout)["findings"][0]
    assert finding["path"] == "spec.fields.amount"
    from provisioner.kube.reconcile import SpecError, parse_product, spec_problem
    with pytest.raises(SpecError) as caught:
        parse_product({**spec, "metadata": {"name": "broken", "namespace": "default"}})
    assert spec_problem(caught.value) == f"{finding['path']}: {finding['message']}"


def _consumer(kube: KubeClient, namespace: str, name: str, kafka: str, url: str, tmp: Path) -> subprocess.Popen[bytes]:
    """The rendered consumer command, run locally in place of the Deployment's pod."""
    config = kube.get("ConfigMap", namespace, f"{name}-spec")
    assert config is not None
    spec_file = tmp / f"{name}.yaml"
    spec_file.write_text(config["data"]["product.yaml"])
    deployment = kube.get("Deployment", namespace, f"{name}-cache-consumer")
    assert deployment is not None
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    args = [a for a in args if a != "--metrics-port" and a != "9102"]
    args[args.index("--spec") + 1] = str(spec_file)
    env = {**os.environ, "PROVISIONER_STORE_URL": url, "PROVISIONER_KAFKA_BOOTSTRAP": kafka}
    with (tmp / f"{name}-consumer.log").open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "provisioner", *args], env=env, stdout=subprocess.DEVNULL,
                                stderr=log, start_new_session=True)


def test_status_from_real_data(kube: KubeClient, namespace: str, operator: OperatorProcess, store_url: str,
                               kafka_bootstrap: str, tmp_path: Path) -> None:  # noqa: F811
    topic = _topic()
    kafka_helpers.ensure_topic(kafka_bootstrap, topic, partitions=2)
    good = [{"order_id": f"o{i}", "amount": i} for i in range(40)]
    bad = [{"order_id": f"x{i}"} for i in range(3)]  # no amount: a dead letter (stage fields)
    kafka_helpers.produce_records(kafka_bootstrap, topic, [
        kafka_helpers.OutgoingRecord(key=r["order_id"], value=json.dumps(r).encode()) for r in good + bad])
    kube.apply(product("fresh", namespace, topic, freshness="4s"))
    wait_for("the ConfigMap", lambda: kube.get("ConfigMap", namespace, "fresh-spec"))
    first = wait_for("Ready=False before any consumer runs", lambda: (c := condition(_get(kube, namespace, "fresh"),
                                                                                    "ConsumersReady"))
                     and c["status"] == "False" and c)
    assert first["reason"] == "NoConsumer"
    assert health(_get(kube, namespace, "fresh") or {})[0] == "Progressing"
    consumer = _consumer(kube, namespace, "fresh", kafka_bootstrap, store_url, tmp_path)
    try:
        body = wait_for("Ready", lambda: (b := _get(kube, namespace, "fresh"))
                        and (condition(b, "Ready") or {}).get("status") == "True" and b, timeout=90)
        assert condition(body, "CaughtUp")["status"] == "True"  # type: ignore[index]
        assert health(body)[0] == "Healthy"
        store = body["status"]["stores"][0]
        assert store["lag"] == 0 and store["position"] == 43
        wait_for("3 dead letters", lambda: ((_get(kube, namespace, "fresh") or {}).get("status") or {})
                 .get("deadLetters") == 3)
    finally:
        consumer.send_signal(signal.SIGTERM)
        consumer.wait(30)
    kafka_helpers.produce_records(kafka_bootstrap, topic, [kafka_helpers.OutgoingRecord(
        key="late", value=json.dumps({"order_id": "late", "amount": 1}).encode())])
    fresh = wait_for("Fresh=False once the SLA passes", lambda: (c := condition(_get(kube, namespace, "fresh"), "Fresh"))
                     and c["status"] == "False" and c)
    assert fresh["reason"] == "Stale"
    body = _get(kube, namespace, "fresh")
    assert health(body or {})[0] == "Degraded"
    assert condition(body, "Ready")["status"] == "False"  # type: ignore[index]
    assert condition(body, "CaughtUp")["status"] == "True"  # type: ignore[index]  (pre-loaded once)
    wait_for("lag 1", lambda: ((_get(kube, namespace, "fresh") or {}).get("status") or {}).get("lag") == 1)


def test_a_rebuild_in_progress_is_reported_with_its_progress(kube: KubeClient, namespace: str,
                                                             operator: OperatorProcess, store_url: str,
                                                             kafka_bootstrap: str) -> None:  # noqa: F811
    topic = _topic()
    kafka_helpers.ensure_topic(kafka_bootstrap, topic, partitions=1)
    kafka_helpers.produce_records(kafka_bootstrap, topic, [
        kafka_helpers.OutgoingRecord(key=f"o{i}", value=json.dumps({"order_id": f"o{i}", "amount": i}).encode())
        for i in range(20)])
    kube.apply(product("rebuilt", namespace, topic))
    body = wait_for("a status", lambda: (b := _get(kube, namespace, "rebuilt")) and condition(b, "Rebuilding") and b)
    assert condition(body, "Rebuilding")["status"] == "False"  # type: ignore[index]
    # A consumer of a changed spec begins a new version beside the live store and has read 5 records.
    parsed = parse_product(body)
    store_spec = parsed.spec.stores[0]
    versions = open_versions(parsed, store_spec, store_url)
    shadow_spec, shadow = shadow_for(parsed, store_spec, "feedfacefeedface")
    try:
        versions.record(parsed, store_spec)
        versions.begin(shadow)
        building = open_shadow_store(parsed, shadow_spec, store_url)
        try:
            building.apply([], {0: None}, {0: 5})
        finally:
            building.close()
        body = wait_for("Rebuilding=True", lambda: (b := _get(kube, namespace, "rebuilt"))
                        and (condition(b, "Rebuilding") or {}).get("status") == "True" and b)
        assert condition(body, "Rebuilding")["reason"] == "Rebuilding"  # type: ignore[index]
        progress = body["status"]["stores"][0]["rebuild"]
        assert progress["version"] == "feedfacefeedface" and progress["replayed"] == 5 and progress["left"] == 15
        # Switched (here: dropped): the condition clears and the progress goes.
        versions.drop(shadow)
        body = wait_for("Rebuilding=False", lambda: (b := _get(kube, namespace, "rebuilt"))
                        and (condition(b, "Rebuilding") or {}).get("status") == "False" and b)
        assert "rebuild" not in body["status"]["stores"][0]
    finally:
        versions.close()


def test_idle_operator_writes_nothing(kube: KubeClient, namespace: str, operator: OperatorProcess,
                                      audit_log: Path | None) -> None:
    kube.apply(product("idle", namespace, _topic(), stores=MANAGED))  # a managed store too: StatefulSet, Service, Secret
    wait_for("a status", lambda: ((_get(kube, namespace, "idle") or {}).get("status") or {}).get("observedGeneration"))
    kinds = ("DataProduct", *CHILD_KINDS, "Event")

    def settled() -> bool:
        since = list_versions(kube, namespace, kinds)
        time.sleep(3)
        return not watch_writes(kube, namespace, kinds, since)

    wait_for("the namespace to settle", settled, timeout=60, every=0)
    since = list_versions(kube, namespace, kinds)
    started = time.time()
    time.sleep(60)  # the window the writes are counted in, not an assertion by itself
    assert watch_writes(kube, namespace, kinds, since) == []
    if audit_log is not None:
        # Also the requests a watch never sees (a patch that changes nothing is still a request).
        # The Lease's renewals are leader election's, not the products': they are left out.
        requests = [f"{e['verb']} {e['objectRef'].get('resource')}/{e['objectRef'].get('name')}"
                    for e in audited_requests(audit_log, started)
                    if e.get("userAgent", "").startswith(OPERATOR_USER_AGENT)
                    and e.get("objectRef", {}).get("namespace") == namespace
                    and e.get("objectRef", {}).get("resource") != "leases"]
        assert requests == []


def test_no_secret_in_logs_events_status_or_config_maps(kube: KubeClient, namespace: str,
                                                         operator: OperatorProcess) -> None:
    stores = [{"name": "cache", "redis": {"connection": {"secretRef": {"name": "canary", "key": "url"}}}},
              {"name": "db", "postgres": {}}]
    kube.apply(product("canary", namespace, _topic(), stores=stores))
    wait_for("a status with the store's error", lambda: any(
        s.get("lastError") for s in (((_get(kube, namespace, "canary") or {}).get("status") or {}).get("stores", []))))
    managed = kube.get("Secret", namespace, "canary-db-credentials")
    assert managed is not None
    password = base64.b64decode(managed["data"]["password"]).decode()
    texts = [operator.text(), json.dumps(_get(kube, namespace, "canary")),
             json.dumps(kube.list("Event", namespace)), json.dumps(kube.list("ConfigMap", namespace))]
    for text in texts:
        assert CANARY not in text
        assert password not in text


def test_killed_operator_is_replaced_and_converges_without_duplicates(
        kube: KubeClient, kube_api: client.ApiClient, operator_kubeconfig: Path, kafka_bootstrap: str,  # noqa: F811
        store_url: str, tmp_path: Path) -> None:
    namespace = _namespace(kube_api)
    try:
        secret(kube, namespace, "store-url", {"url": store_url})
        for index in range(10):
            kube.apply(product(f"p{index}", namespace, _topic(), stores=MANAGED))
        first = OperatorProcess(operator_kubeconfig, namespace, kafka_bootstrap, tmp_path, lease="kill")
        wait_for("some objects", lambda: children(kube, namespace, "p0"))
        first.kill()  # mid-reconcile: ten products of nine objects each
        with running_operator(operator_kubeconfig, namespace, kafka_bootstrap, tmp_path, lease="kill"):
            for index in range(10):
                wait_children(kube, namespace, f"p{index}", 9)
            names = [(kind, o["metadata"]["name"]) for kind in CHILD_KINDS
                     for o in kube.list(kind, namespace, {"app.kubernetes.io/managed-by": "provisioner"})]
            assert len(names) == len(set(names)) == 90
    finally:
        client.CoreV1Api(kube_api).delete_namespace(namespace)


def test_of_two_operators_only_one_acts(kube: KubeClient, kube_api: client.ApiClient, operator_kubeconfig: Path,
                                        kafka_bootstrap: str, store_url: str, tmp_path: Path) -> None:  # noqa: F811
    namespace = _namespace(kube_api)
    try:
        secret(kube, namespace, "store-url", {"url": store_url})
        with running_operator(operator_kubeconfig, namespace, kafka_bootstrap, tmp_path, lease="pair") as one, \
                running_operator(operator_kubeconfig, namespace, kafka_bootstrap, tmp_path, lease="pair") as two:
            kube.apply(product("pair", namespace, _topic()))
            wait_for("the objects", lambda: len(children(kube, namespace, "pair")) == 3)
            lease = kube.get("Lease", LEASE_NAMESPACE, one.lease_name)
            assert lease is not None
            holder = lease["spec"]["holderIdentity"]
            # The children exist before the reconcile that applied them logs it: wait for the line.
            wait_for("the leader's log", lambda: any("applied" in op.text() for op in (one, two)))
            acting = [op for op in (one, two) if "applied" in op.text()]
            assert len(acting) == 1
            waiting = two if acting[0] is one else one
            # It may still be starting (a loaded machine): it says it waits once it asked for the Lease.
            wait_for("the other operator to wait for the Lease", lambda: "waiting" in waiting.text())
            assert "applied" not in waiting.text()
            # The leader goes away cleanly: the other takes over at once and acts.
            acting[0].stop()
            wait_for("the other to hold the Lease", lambda: (lease := kube.get("Lease", LEASE_NAMESPACE, one.lease_name))
                     and lease["spec"].get("holderIdentity") not in ("", holder))
            kube.delete("ConfigMap", namespace, "pair-spec")
            wait_for("the ConfigMap restored by the new leader", lambda: kube.get("ConfigMap", namespace, "pair-spec"))
    finally:
        client.CoreV1Api(kube_api).delete_namespace(namespace)
