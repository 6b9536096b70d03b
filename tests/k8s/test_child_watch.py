"""The operator's own watch of its children (`provisioner.kube.watch`) against the real API server,
authenticated as the operator's ServiceAccount under the bundle's RBAC: it starts from a listing's
version and misses nothing after it, and follows edits and deletions in order. (A version the server
no longer has cannot be produced on cue by a fresh server's watch cache: tests/unit/test_watch_gone.py.)"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner.kube.client import KubeClient
from provisioner.kube.watch import KindWatch, WatchPool

LABELS = {"app.kubernetes.io/managed-by": "provisioner"}
WAIT_S = 30.0  # bounds each wait for an event; never a measure


@pytest.fixture
def operator(operator_kubeconfig: Path) -> Iterator[KubeClient]:
    client = KubeClient.from_kubeconfig(operator_kubeconfig)
    yield client
    client.close()


def config_map(namespace: str, name: str, value: str, labels: dict[str, str] = LABELS) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "data": {"v": value},
            "metadata": {"name": name, "namespace": namespace, "labels": labels}}


class Seen:
    """What a watch delivered, one (type, name, value) at a time."""

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[str | None, str, str]] = queue.Queue()
        self.batches = 0

    def deliver(self, events: list[tuple[str | None, dict[str, Any]]]) -> None:
        self.batches += 1
        for kind, obj in events:
            assert obj["kind"] == "ConfigMap"
            self.events.put((kind, obj["metadata"]["name"], (obj.get("data") or {}).get("v", "")))

    def next(self) -> tuple[str | None, str, str]:
        return self.events.get(timeout=WAIT_S)


def started(watch: KindWatch) -> threading.Thread:
    thread = threading.Thread(target=watch.run, daemon=True)
    thread.start()
    return thread


def test_a_watch_from_a_listing_sees_everything_after_it_in_order(
        kube: KubeClient, operator: KubeClient, namespace: str) -> None:
    kube.create(config_map(namespace, "before", "1"))
    listed, version = operator.list_versioned("ConfigMap", namespace, LABELS)
    assert [o["metadata"]["name"] for o in listed] == ["before"] and version
    kube.create(config_map(namespace, "between", "1"))  # after the listing, before the watch
    kube.create(config_map(namespace, "unlabelled", "1", labels={"other": "x"}))
    seen = Seen()
    pool = WatchPool(operator, 1)
    watch = KindWatch(pool, "ConfigMap", namespace, LABELS, seen.deliver, version)
    thread = started(watch)
    try:
        assert seen.next() == ("ADDED", "between", "1")
        kube.apply(config_map(namespace, "before", "2"))
        assert seen.next() == ("MODIFIED", "before", "2")
        kube.delete("ConfigMap", namespace, "between")
        assert seen.next()[:2] == ("DELETED", "between")
        kube.create(config_map(namespace, "after", "3"))
        assert seen.next() == ("ADDED", "after", "3")  # nothing of the unlabelled one came first
    finally:
        watch.stop()
        thread.join(WAIT_S)
        pool.close()
    assert not thread.is_alive()
    assert seen.events.empty()
