"""What the operator's status reads skip, against a real Redis and Kafka: a store's URL Secret read
once while the store answers and again soon after it stops answering; dead-letter topics looked
up in one listing of every topic, a new one showing at the next listing; consumer groups described
many to a request, at the first round too; end offsets without a metadata request each."""

from __future__ import annotations

import base64
import uuid
from collections import Counter
from typing import Any, cast

from provisioner.kube.client import KubeClient
from provisioner.kube.observe import Observer
from provisioner.kube.reconcile import parse_product
from provisioner.stream.observe import KafkaObserver
from tests.integration import harness as h
from tests.integration.conftest import kafka_bootstrap, redis_server  # noqa: F401  (fixtures)


def _product(name: str) -> dict[str, Any]:
    return {"apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"source": {"topic": "orders.v1"}, "fields": {"order_id": "event.order_id"}, "key": "order_id",
                     "stores": [{"name": "cache", "redis": {"connection": {"secretRef": {"name": "url", "key": "url"}}}}]}}


class UrlSecret:
    """The API server's answer to a read of the store's URL Secret, counting the reads."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.reads = 0

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        self.reads += 1
        return {"metadata": {"name": name}, "data": {"url": base64.b64encode(self.url.encode()).decode()}}


def test_a_store_secret_is_read_again_soon_only_once_the_store_stops_answering(redis_server: Any) -> None:  # noqa: F811
    secret = UrlSecret(redis_server.url)
    now = [0.0]
    observer = Observer(cast(KubeClient, secret), None, store_timeout=2.0, clock=lambda: now[0])
    products = [parse_product(_product(f"p{i}")) for i in range(3)]
    for _ in range(6):  # 6 rounds of every product, a minute apart
        for product in products:
            [observed] = observer.observe(product, "shop", [])
            assert observed.error is None or "Kafka" in observed.error, observed.error
        now[0] += 60.0
    assert secret.reads == 2  # at 0 s, and again at 300 s
    secret.url = "redis://127.0.0.1:1/0"  # the Secret now names a store that does not answer
    now[0] += 300.0
    [observed] = observer.observe(products[0], "shop", [])
    assert observed.positions is None and secret.reads == 3
    secret.url = redis_server.url  # repaired: read again within seconds, not minutes
    now[0] += 11.0
    [observed] = observer.observe(products[0], "shop", [])
    assert observed.positions is not None and secret.reads == 4


def test_dead_letters_come_from_a_listing_of_every_topic(kafka_bootstrap: str) -> None:  # noqa: F811
    topic = f"orders-{uuid.uuid4().hex[:8]}.dlq"
    now = [0.0]
    observer = KafkaObserver(kafka_bootstrap, timeout=10.0, clock=lambda: now[0])
    try:
        assert observer.dead_letters(topic) == {}  # no such topic: nothing failed
        h.create_topic(kafka_bootstrap, topic, partitions=2)
        h.produce(kafka_bootstrap, topic, [
            (b"k", b"v", [("provisioner.product", b"shop/orders"), ("provisioner.store", b"cache")])] * 2)
        assert observer.dead_letters(topic) == {}  # the listing is a few seconds old
        now[0] += 11.0
        assert observer.dead_letters(topic) == {("shop/orders", "cache"): 2}
    finally:
        observer.close()


def _member(bootstrap: str, topic: str, group: str) -> Any:
    """A consumer of `group` that has joined it (subscribed and polled until assigned)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    h.wait_for(lambda: consumer.poll(timeout_ms=200) is not None and bool(consumer.assignment()), 60.0,
               f"a member of {group}")
    return consumer


def test_consumer_groups_asked_for_in_the_same_order_are_described_together(kafka_bootstrap: str) -> None:  # noqa: F811
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    h.create_topic(kafka_bootstrap, topic, partitions=1)
    groups = [f"g-{uuid.uuid4().hex[:8]}-{i}" for i in range(3)]
    member = _member(kafka_bootstrap, topic, groups[1])
    now = [0.0]
    observer = KafkaObserver(kafka_bootstrap, timeout=10.0, clock=lambda: now[0])
    described: list[list[str]] = []
    try:
        def spy() -> None:  # the real admin client, its DescribeGroups requests recorded
            admin = observer._client()
            real = admin.describe_groups
            admin.describe_groups = lambda ids, *a, **k: described.append(list(ids)) or real(ids, *a, **k)

        observer._thread.submit(spy).result()
        assert [observer.group_members(g) for g in groups] == [0, 1, 0]  # a first round: one by one
        assert described == [[g] for g in groups]
        described.clear()
        now[0] += 1.0
        assert [observer.group_members(g) for g in groups] == [0, 1, 0]
        assert described == [groups]  # the next round: the first ask describes the ones that followed it
        described.clear()
        member.close()  # leaves its group: the next description says so
        now[0] += 1.0
        assert [observer.group_members(g) for g in groups] == [0, 0, 0]
        assert described == [groups]
        described.clear()
        assert observer.group_members(groups[1]) == 0  # an answer got ahead serves one ask only
        assert described == [[groups[1], groups[2]]]
        described.clear()
        observer.group_members(groups[0])  # after groups[1] this time, which it now follows
        assert described == [[groups[0], groups[1]]]
        described.clear()
        now[0] += 11.0  # older than an answer got ahead may be: described again
        observer.group_members(groups[1])
        assert described == [[groups[1], groups[0]]]  # with the one that followed it last
    finally:
        member.close()
        observer.close()


def test_connecting_ahead_leaves_the_first_call_only_its_request(kafka_bootstrap: str) -> None:  # noqa: F811
    observer = KafkaObserver(kafka_bootstrap, timeout=10.0)
    try:
        observer.connect_ahead()
        assert observer._thread.submit(lambda: observer._admin is not None).result(30)  # connected, unasked
        assert observer.end_offsets(f"absent-{uuid.uuid4().hex[:8]}") is None
    finally:
        observer.close()


def _requests(observer: KafkaObserver) -> Counter[str]:
    """The Kafka requests the observer's admin client sends from now on, by kind."""
    sent: Counter[str] = Counter()

    def spy() -> None:
        manager = observer._client()._manager
        real = manager.send
        manager.send = lambda request, *a, **k: sent.update([type(request).__name__]) or real(request, *a, **k)

    observer._thread.submit(spy).result()
    return sent


def test_a_first_round_describes_the_groups_said_to_come_next_together(kafka_bootstrap: str) -> None:  # noqa: F811
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    h.create_topic(kafka_bootstrap, topic, partitions=1)
    groups = [f"g-{uuid.uuid4().hex[:8]}-{i}" for i in range(4)]  # never described: no coordinator known
    member = _member(kafka_bootstrap, topic, groups[2])
    observer = KafkaObserver(kafka_bootstrap, timeout=10.0)
    try:
        sent = _requests(observer)
        observer.expect_groups(groups)
        assert [observer.group_members(g) for g in groups] == [0, 0, 1, 0]  # each its own group's answer
        assert sent == {"FindCoordinatorRequest": 1, "DescribeGroupsRequest": 1}
        sent.clear()
        member.close()  # an answer got ahead served its one ask: the next describes again
        assert observer.group_members(groups[2]) == 0
        assert sent == {"DescribeGroupsRequest": 1}  # its coordinator is known by now
    finally:
        member.close()
        observer.close()


def test_end_offsets_are_asked_of_the_leaders_last_described(kafka_bootstrap: str) -> None:  # noqa: F811
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    h.create_topic(kafka_bootstrap, topic, partitions=1)
    now = [0.0]
    observer = KafkaObserver(kafka_bootstrap, timeout=10.0, clock=lambda: now[0])
    try:
        sent = _requests(observer)
        assert observer.end_offsets(topic) == {0: 0}
        h.produce(kafka_bootstrap, topic, [(b"k", b"v", [])] * 3)
        assert observer.end_offsets(topic) == {0: 3}
        assert sent == {"MetadataRequest": 1, "ListOffsetsRequest": 2}  # the topic described once
        from kafka import KafkaAdminClient
        from kafka.admin import NewPartitions

        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        try:
            admin.create_partitions({topic: NewPartitions(total_count=2)})
        finally:
            admin.close()
        assert observer.end_offsets(topic) == {0: 3}  # described less than a minute ago
        now[0] += 61.0
        assert observer.end_offsets(topic) == {0: 3, 1: 0}  # a partition added shows within a minute
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        try:
            admin.delete_topics([topic])
        finally:
            admin.close()
        h.wait_for(lambda: observer.end_offsets(topic) is None, 30.0, "the deleted topic read as absent")
    finally:
        observer.close()
