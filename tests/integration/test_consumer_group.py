"""Two consumers of one store (one consumer group): rebalances and a zombie.

Rebalance: consumers join and leave while the topic is hydrated; the store still ends exactly at
the materialization. Zombie: a consumer is frozen (SIGSTOP) past its session timeout while another
takes its partitions and moves on; when it thaws (SIGCONT) the position fence refuses whatever it
had in hand, so no older write ever lands over a newer one.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from tests.integration import harness as h
from tests.integration.secured import KafkaLink, each_link
from tests.integration.test_consumer_stores import STORES, assert_contents, reset_store, store_url, unique_name

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("kafka_client")]

# A short session, and a short rebalance timeout (max poll interval): a join waits up to the latter
# for a frozen member to rejoin before the coordinator gives its partitions away.
FAST_GROUP = {"PROVISIONER_KAFKA_SESSION_TIMEOUT_MS": "3000", "PROVISIONER_KAFKA_MAX_POLL_INTERVAL_MS": "10000"}


def setup_product(kind: str, topic: str, tmp_path: Any, redis_server: Any, postgres_server: Any,
                  kafka: KafkaLink, batch_size: int = 300) -> tuple[Any, Any, Any, str]:
    spec = h.order_spec(tmp_path, name=unique_name(topic), topic=topic, stores=[STORES[kind]],
                        batch_size=batch_size, batch_latency="50ms")
    product = h.load_product(spec)
    store_spec = product.spec.stores[0]
    url = store_url(kind, redis_server, postgres_server)
    reset_store(product, store_spec, url)
    kafka.allow(product, store_spec)
    h.create_topic(kafka.admin, topic, partitions=4)
    return spec, product, store_spec, url


@each_link(["postgres-append", "redis-json"], secured_kind="redis-json")
def test_consumers_joining_and_leaving_lose_and_duplicate_nothing(
    kind: str, kafka: KafkaLink, redis_server: Any, postgres_server: Any, topic: str, tmp_path: Any
) -> None:
    spec, product, store_spec, url = setup_product(kind, topic, tmp_path, redis_server, postgres_server,
                                                   kafka)
    events = h.order_events(24_000, seed=21, keys=3000)
    chunks = [events[i : i + 3000] for i in range(0, len(events), 3000)]
    a = kafka.consumer(spec, store_spec.name, url, tmp_path, "a", env=FAST_GROUP)
    b = kafka.consumer(spec, store_spec.name, url, tmp_path, "b", env=FAST_GROUP)
    try:
        h.produce(kafka.admin, topic, chunks.pop(0))
        a.start()
        # Up (its SIGTERM handler set) before it is asked to leave, however slow the machine.
        h.wait_for(lambda: bool(a.status()), 60, "a to start", on_timeout=a.log)
        h.produce(kafka.admin, topic, chunks.pop(0))
        b.start()  # joins: partitions move from a to b mid-stream
        h.produce(kafka.admin, topic, chunks.pop(0))
        time.sleep(1.5)
        assert a.stop() == 0  # leaves cleanly: b takes everything
        h.produce(kafka.admin, topic, chunks.pop(0))
        a.start()  # joins again
        h.produce(kafka.admin, topic, chunks.pop(0))
        time.sleep(1.0)
        b.kill()  # leaves uncleanly: a takes over after the session timeout
        for chunk in chunks:
            h.produce(kafka.admin, topic, chunk)
        b.start()
        ends = h.end_offsets(kafka.admin, topic)
        h.wait_caught_up(product, store_spec, url, ends, timeout=120, consumers=[a, b])
        records = h.read_topic(kafka.admin, topic)
        assert len(records) == len(events)
        assert_contents(kind, product, store_spec, url, h.expected_for(product, store_spec, records))
        assert a.stop() == 0
        assert b.stop() == 0
    finally:
        a.kill()
        b.kill()


@each_link(["postgres-append", "redis-hash"], secured_kind="redis-hash")
def test_a_thawed_zombie_never_writes_over_newer_data(
    kind: str, kafka: KafkaLink, redis_server: Any, postgres_server: Any, topic: str, tmp_path: Any
) -> None:
    spec, product, store_spec, url = setup_product(kind, topic, tmp_path, redis_server, postgres_server,
                                                   kafka, batch_size=200)
    events = h.order_events(30_000, seed=33, keys=2000)
    chunks = [events[i : i + 5000] for i in range(0, len(events), 5000)]
    zombie = kafka.consumer(spec, store_spec.name, url, tmp_path, "zombie", env=FAST_GROUP)
    other = kafka.consumer(spec, store_spec.name, url, tmp_path, "other", env=FAST_GROUP)
    try:
        h.produce(kafka.admin, topic, chunks.pop(0))
        zombie.start()
        h.wait_for(lambda: zombie.status().get("batches", 0) > 0, 60, "the zombie's first batch")
        h.produce(kafka.admin, topic, chunks.pop(0))
        # Frozen mid-hydration, with a batch in hand or a write under way.
        zombie.signal(signal.SIGSTOP)
        frozen_at = h.store_positions(product, store_spec, url)
        other.start()
        for chunk in chunks:
            h.produce(kafka.admin, topic, chunk)
        # The other consumer owns every partition now and moves every position past the zombie's.
        h.wait_for(lambda: all(p > frozen_at.get(k, 0) for k, p in
                               h.store_positions(product, store_spec, url).items()) and
                   len(h.store_positions(product, store_spec, url)) == 4, 120, "the takeover",
                   on_timeout=other.log)
        positions_before_thaw = h.store_positions(product, store_spec, url)
        zombie.signal(signal.SIGCONT)
        time.sleep(0.5)
        after = h.store_positions(product, store_spec, url)
        # Positions never go backwards.
        assert all(after[p] >= o for p, o in positions_before_thaw.items())
        ends = h.end_offsets(kafka.admin, topic)
        h.wait_caught_up(product, store_spec, url, ends, timeout=120, consumers=[zombie, other])
        records = h.read_topic(kafka.admin, topic)
        assert_contents(kind, product, store_spec, url, h.expected_for(product, store_spec, records))
        h.wait_for(lambda: zombie.status().get("state") in ("running", "backoff"), 20, "the zombie's status")
        # The zombie learned it lost its partitions: its in-hand batch was fenced, or discarded when
        # it rejoined the group (which takes a rebalance of both members).
        h.wait_for(lambda: zombie.status().get("conflicts", 0) >= 1 or zombie.log().count("assigned partitions") >= 2,
                   30, "the zombie to be fenced or to rejoin", on_timeout=lambda: zombie.log()[-3000:])
        assert zombie.stop() == 0
        assert other.stop() == 0
    finally:
        for consumer in (zombie, other):
            if consumer.alive():
                consumer.signal(signal.SIGCONT)
            consumer.kill()
