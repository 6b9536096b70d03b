"""The operator's children cache is corrected from listings without undoing newer events."""

from __future__ import annotations

import time
from typing import Any, cast

from provisioner.kube.client import KubeClient
from provisioner.kube.reconcile import Reconciler
from provisioner.operator.handlers import Controller


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
