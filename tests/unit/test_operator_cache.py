"""The operator's children cache is corrected from listings without undoing newer events."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, cast

from provisioner.kube.client import PARTIAL_METADATA, KubeClient
from provisioner.kube.reconcile import Reconciler
from provisioner.operator.cached_child import content_digest, freeze
from provisioner.operator.handlers import Controller, _startable


def child(kind: str, name: str, product: str = "orders", namespace: str = "sales") -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name, "namespace": namespace,
                                       "labels": {"app.kubernetes.io/part-of": product}}}


def controller() -> Controller:
    # The cache logic touches neither the client nor the reconciler.
    return Controller(cast(KubeClient, object()), cast(Reconciler, object()))


def test_a_child_deleted_without_an_event_is_dropped() -> None:
    c = controller()
    c.record_child(child("ConfigMap", "orders-spec"), deleted=False)
    c.record_child(child("Deployment", "orders-cache-consumer"), deleted=False)
    c.correct_children([child("Deployment", "orders-cache-consumer")], started=time.monotonic())
    assert set(c.children[("sales", "orders")]) == {("Deployment", "orders-cache-consumer")}


def test_a_child_cached_after_the_listing_began_is_kept() -> None:
    c = controller()
    started = time.monotonic()
    c.record_child(child("ConfigMap", "orders-spec"), deleted=False)  # an event newer than the listing
    c.correct_children([], started=started)
    assert set(c.children[("sales", "orders")]) == {("ConfigMap", "orders-spec")}


def test_a_listed_child_missing_from_the_cache_is_added() -> None:
    c = controller()
    c.correct_children([child("Service", "orders-db"), child("Secret", "x", product="")], started=time.monotonic())
    assert set(c.children[("sales", "orders")]) == {("Service", "orders-db")}
    assert ("sales", "") not in c.children  # objects without a product label are not children


def test_a_names_only_listing_never_caches_a_body_without_its_content() -> None:
    """A periodic listing reads metadata only; a child it names that is no longer cached was
    deleted meanwhile (or is read in full by name): caching its metadata would look like drift."""
    c = controller()
    c.record_child(child("ConfigMap", "orders-spec"), deleted=False)
    names_only = [{**child(kind, name), "apiVersion": PARTIAL_METADATA}
                  for kind, name in (("ConfigMap", "orders-spec"), ("Deployment", "orders-cache-consumer"))]
    c.correct_children(names_only, started=time.monotonic())
    assert set(c.children[("sales", "orders")]) == {("ConfigMap", "orders-spec")}
    assert "apiVersion" not in c.children[("sales", "orders")][("ConfigMap", "orders-spec")].body()  # the event's body kept


def test_the_queue_starts_the_first_keys_not_running_up_to_the_free_workers() -> None:
    queued = {("sales", f"p{i}"): True for i in range(10_000)}
    running = {("sales", "p1"), ("sales", "p3")}
    assert _startable(queued, running, 5) == [("sales", "p0"), ("sales", "p2"), ("sales", "p4")]
    assert _startable(queued, running, 2) == []


def versioned(version: str, replicas: int = 1, ready: int = 0) -> dict[str, Any]:
    body = child("Deployment", "orders-cache-consumer")
    body["metadata"]["resourceVersion"] = version
    return {**body, "spec": {"replicas": replicas}, "status": {"readyReplicas": ready}}


def test_a_child_event_queues_its_product_only_when_more_than_status_or_version_moved() -> None:
    c = controller()
    c.products[("sales", "orders")] = {"metadata": {"name": "orders", "namespace": "sales"}}
    c.child_event("ADDED", versioned("1"))
    assert c._pending.pop(("sales", "orders")) is False  # new to the cache: queued (apply only)
    c.child_event("MODIFIED", {**versioned("2"), "status": {"readyReplicas": 0, "observedGeneration": 2}, "metadata": {
        **versioned("2")["metadata"], "managedFields": [{"manager": "kube-controller-manager"}]}})  # a status update
    assert not c._pending
    # the cached copy is kept as it was: the drift check remembers that version as matching
    assert c.children[("sales", "orders")][("Deployment", "orders-cache-consumer")].body()["metadata"]["resourceVersion"] == "1"
    c.child_event("MODIFIED", {**versioned("2"), "status": {"readyReplicas": 0, "observedGeneration": 2}, "metadata": {**versioned("2")["metadata"], "labels": {
        **versioned("2")["metadata"]["labels"], "team": "x"}}})  # a label edit: drift to repair
    assert c._pending.pop(("sales", "orders")) is False
    c.child_event("MODIFIED", versioned("3", replicas=5))  # an edit: drift to repair
    assert ("sales", "orders") in c._pending
    c._pending.clear()
    c.child_event("DELETED", versioned("3", replicas=5))
    assert ("sales", "orders") in c._pending


def test_a_created_child_is_cached_so_its_event_queues_nothing_and_a_newer_event_is_kept() -> None:
    c = controller()
    c.products[("sales", "orders")] = {"metadata": {"name": "orders", "namespace": "sales"}}
    c.record_created(versioned("1"))
    c.child_event("ADDED", versioned("1"))
    assert not c._pending
    c.child_event("MODIFIED", versioned("4", replicas=2))
    c.record_created(versioned("1"))  # an answer older than the event already cached: not kept
    assert c.children[("sales", "orders")][("Deployment", "orders-cache-consumer")].body()["spec"] == {"replicas": 2}


def test_a_created_secret_is_not_cached() -> None:
    """Secrets are not watched: cached, one would look like a child to prune at the next apply
    that leaves Secrets out."""
    c = controller()
    c.record_created({**child("Secret", "orders-db-credentials"), "data": {}})
    assert ("sales", "orders") not in c.children


def test_a_cached_child_is_its_body_without_status_or_managed_fields_and_cannot_be_changed_by_a_reader() -> None:
    c = controller()
    body = {**versioned("7", ready=1), "spec": {"template": {"image": "provisioner:1", "note": "é" * 100}}}
    body["metadata"]["managedFields"] = [{"manager": "provisioner"}]
    c.record_child(body, deleted=False)
    cached = c.children[("sales", "orders")][("Deployment", "orders-cache-consumer")]
    read = cached.body()
    assert read == {**{k: v for k, v in body.items() if k != "status"},
                    "metadata": {k: v for k, v in body["metadata"].items() if k != "managedFields"}}
    read["spec"]["template"]["image"] = "changed"  # what a reader does to its copy stays there
    assert cached.body()["spec"]["template"]["image"] == "provisioner:1"
    assert len(cached.blob) < len(json.dumps(read))  # kept compressed


def test_the_content_digest_ignores_what_controllers_move_and_sees_the_rest() -> None:
    base = versioned("1")
    digest = freeze(base).digest
    assert content_digest({**versioned("9", ready=3)}) == digest  # status and resourceVersion
    assert content_digest({**base, "metadata": {**base["metadata"], "managedFields": [{"m": 1}]}}) == digest
    assert content_digest(json.loads(json.dumps(base, sort_keys=True))) == digest  # key order
    assert content_digest(versioned("1", replicas=2)) != digest
    assert content_digest({**base, "metadata": {**base["metadata"], "annotations": {"a": "b"}}}) != digest


def test_a_consumer_deployment_whose_ready_replicas_move_refreshes_its_status_without_an_apply() -> None:
    asyncio.run(_ready_replicas_move())


async def _ready_replicas_move() -> None:
    c = controller()
    c.products[("sales", "orders")] = {"metadata": {"name": "orders", "namespace": "sales"}}
    c.record_child(versioned("1", ready=1), deleted=False)
    c.child_event("MODIFIED", versioned("2", ready=1))  # a status update that leaves ready replicas alone
    assert not c._pending and not c._status_pending
    c.child_event("MODIFIED", versioned("3", ready=0))  # its pod died
    assert not c._pending  # nothing to repair
    assert list(c._status_pending) == [("sales", "orders")]
    later = [h for h in asyncio.get_running_loop()._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
    assert len(later) == 1 and later[0].when() - asyncio.get_running_loop().time() > 45  # after the session timeout
    later[0].cancel()
    assert c.children[("sales", "orders")][("Deployment", "orders-cache-consumer")].ready == 0
    c._status_pending.clear()
    c.child_event("MODIFIED", versioned("4", ready=0))
    assert not c._status_pending
    c.child_event("MODIFIED", {**child("ConfigMap", "orders-spec"), "status": {"readyReplicas": 3}})  # not cached
    assert c._pending.pop(("sales", "orders")) is False and not c._status_pending


def test_an_emptied_queue_starts_afresh_so_walking_it_does_not_scan_the_table_it_grew_to() -> None:
    c = controller()
    burst = {("sales", f"p{i}") for i in range(10_000)}
    c._status_pending.update(dict.fromkeys(burst))
    c._pending.update(dict.fromkeys(burst, True))
    grown_status, grown = c._status_pending, c._pending
    c._status_pending.clear()  # as if every refresh had started
    c._pending.clear()
    c._dispatch(set())
    assert c._status_pending is not grown_status and c._pending is not grown
    assert c._status_pending == {} and c._pending == {}
    c._status_pending[("sales", "p1")] = None
    kept = c._status_pending
    c.status_workers = 0  # nothing can start: the queue is not empty and stays the same object
    c._dispatch(set())
    assert c._status_pending is kept
