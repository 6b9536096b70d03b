"""What an idle operator skips: a drift comparison already made, a store Secret already read, a
read of the Lease before each renewal."""

from __future__ import annotations

from typing import Any, cast

from provisioner.errors import ConflictError
from provisioner.kube.client import KubeClient
from provisioner.kube.observe import Observer
from provisioner.kube.reconcile import Reconciler, Settings
from provisioner.operator.leader import LeaseHolder


def deployment(replicas: int, version: str | None = "7") -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "orders-cache-consumer", "namespace": "sales",
                                "labels": {"app.kubernetes.io/part-of": "orders"}}
    if version is not None:
        metadata["resourceVersion"] = version
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": {"replicas": replicas}}


def test_a_child_matching_at_a_resource_version_is_not_compared_again() -> None:
    reconciler = Reconciler(cast(KubeClient, object()), Settings(kafka_bootstrap="kafka:9092"), None)
    desired = deployment(2, version=None)
    assert not reconciler._differs(desired, deployment(2))
    # The same resourceVersion is the same content (the server changes it on every write): the
    # earlier answer stands, whatever the cached body says.
    assert not reconciler._differs(desired, deployment(5))
    # A write moved the version: compared again, and the drift found.
    assert reconciler._differs(desired, deployment(5, version="8"))
    # A new desired object at the known version is compared again too.
    assert reconciler._differs(deployment(3, version=None), deployment(2))
    # An object without a version (not read from the server) is always compared.
    assert reconciler._differs(desired, deployment(5, version=None))
    reconciler.forget("sales", "orders")
    assert reconciler._differs(desired, deployment(5))


def test_the_same_rendered_object_is_not_serialized_again_and_an_equal_new_one_still_matches(
        monkeypatch: Any) -> None:
    import provisioner.kube.reconcile as reconcile

    reconciler = Reconciler(cast(KubeClient, object()), Settings(kafka_bootstrap="kafka:9092"), None)
    serialized: list[object] = []
    real = reconcile.json.dumps
    monkeypatch.setattr(reconcile.json, "dumps", lambda obj, **kw: serialized.append(obj) or real(obj, **kw))
    desired = deployment(2, version=None)
    assert not reconciler._differs(desired, deployment(2))
    assert not reconciler._differs(desired, deployment(2, version="9"))  # a status update: compared, not dumped
    assert serialized == [desired]
    again = deployment(2, version=None)  # rendered anew, equal: its digest matches the known one
    assert not reconciler._differs(again, deployment(2, version="9"))
    assert serialized == [desired, again]
    assert reconciler._differs(again, deployment(4, version="10"))  # drift is still found


class Secrets:
    """Answers reads of Secrets by name, counting them."""

    def __init__(self, secret: dict[str, Any] | None) -> None:
        self.secret = secret
        self.reads = 0

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        assert kind == "Secret"
        self.reads += 1
        return self.secret


def test_a_store_secret_is_read_again_after_minutes_or_soon_after_a_failure() -> None:
    secrets = Secrets({"metadata": {"name": "url"}, "data": {}})
    now = [0.0]
    observer = Observer(cast(KubeClient, secrets), None, clock=lambda: now[0], secret_ttl=10.0, store_secret_ttl=300.0)
    for moment in (0.0, 10.0, 200.0, 299.0):
        now[0] = moment
        observer._secret("sales", "url", 300.0)
    assert secrets.reads == 1
    now[0] = 300.0
    observer._secret("sales", "url", 300.0)
    assert secrets.reads == 2
    observer._suspect("sales", "url")  # the store did not answer with what it holds
    now[0] = 305.0
    observer._secret("sales", "url", 300.0)
    assert secrets.reads == 2
    now[0] = 311.0
    observer._secret("sales", "url", 300.0)
    assert secrets.reads == 3
    # A Secret that does not exist is asked for again soon, whatever the store TTL.
    missing = Secrets(None)
    observer = Observer(cast(KubeClient, missing), None, clock=lambda: now[0], secret_ttl=10.0)
    observer._secret("sales", "url", 300.0)
    now[0] += 10.0
    observer._secret("sales", "url", 300.0)
    assert missing.reads == 2


class Leases:
    """One Lease with optimistic concurrency, counting reads and writes."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.calls: list[str] = []

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append("get")
        return self.lease

    def _write(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.lease = {**body, "metadata": {**body["metadata"], "resourceVersion": str(self.version)}}
        return self.lease

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("create")
        return self._write(body)

    def replace(self, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("replace")
        assert self.lease is not None
        if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise ConflictError("the object has been modified")
        return self._write(body)


def test_a_renewal_is_one_write_and_a_new_holder_is_noticed() -> None:
    leases = Leases()
    mine = LeaseHolder(cast(KubeClient, leases), "ops", "lease", "me")
    assert mine.try_acquire()
    leases.calls.clear()
    assert mine._renew() and mine._renew()
    assert leases.calls == ["replace", "replace"]
    # Someone wrote the Lease meanwhile but it is still ours (e.g. an annotation): read, then renewed.
    assert leases.lease is not None
    leases._write(leases.lease)
    leases.calls.clear()
    assert mine._renew()
    assert leases.calls == ["replace", "get", "replace"]
    # Another holder took it: the renewal says so.
    leases._write({**leases.lease, "spec": {**leases.lease["spec"], "holderIdentity": "other"}})
    assert not mine._renew()
