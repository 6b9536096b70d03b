"""The operator's children cache is corrected from listings without undoing newer events."""

from __future__ import annotations

import time
from typing import Any, cast

from provisioner.kube.client import PARTIAL_METADATA, KubeClient
from provisioner.kube.reconcile import Reconciler
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
    assert "apiVersion" not in c.children[("sales", "orders")][("ConfigMap", "orders-spec")]  # the event's body kept


def test_the_queue_starts_the_first_keys_not_running_up_to_the_free_workers() -> None:
    queued = {("sales", f"p{i}"): True for i in range(10_000)}
    running = {("sales", "p1"), ("sales", "p3")}
    assert _startable(queued, running, 5) == [("sales", "p0"), ("sales", "p2"), ("sales", "p4")]
    assert _startable(queued, running, 2) == []
