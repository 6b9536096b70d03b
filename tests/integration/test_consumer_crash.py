"""Kill -9 at any instant must not change the final contents (spec.md, "Stores").

The consumer hydrates a store while more events keep arriving; it is SIGKILLed at random instants
(during start-up, group join, batch filling, store writes) and restarted each time. At the end the
store holds exactly the materialization of the whole topic; an append-mode changelog holds each
(partition, offset) exactly once.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from tests.integration import harness as h
from tests.integration.crashing import kill_while_hydrating
from tests.integration.secured import KafkaLink, each_link
from tests.integration.test_consumer_stores import STORES, assert_contents, reset_store, store_url, unique_name

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("kafka_client")]

# Evicted members are noticed within this; each restart then rejoins within a few seconds.
FAST_GROUP = {"PROVISIONER_KAFKA_SESSION_TIMEOUT_MS": "2000"}


@each_link(["redis-hash", "postgres-append", "postgres-upsert"], secured_kind="redis-hash")
def test_sigkill_at_random_instants_changes_nothing(
    kind: str, kafka: KafkaLink, redis_server: Any, postgres_server: Any, topic: str, tmp_path: Any
) -> None:
    seed = sum(map(ord, kind))
    rng = random.Random(seed)
    spec = h.order_spec(tmp_path, name=unique_name(topic), topic=topic, stores=[STORES[kind]], batch_size=500,
                        batch_latency="50ms")
    product = h.load_product(spec)
    store_spec = product.spec.stores[0]
    url = store_url(kind, redis_server, postgres_server)
    reset_store(product, store_spec, url)
    kafka.allow(product, store_spec)
    h.create_topic(kafka.admin, topic, partitions=3)
    # Chunks big enough that a kill soon after the first batch lands mid-hydration even when the
    # consumer applies 150k records/s (the Redis script path does).
    events = h.order_events(200_000, seed=seed, keys=4000)
    chunks = [events[i : i + 10_000] for i in range(0, len(events), 10_000)]

    consumer = kafka.consumer(spec, store_spec.name, url, tmp_path, "c", env=FAST_GROUP)
    try:
        # Up to 16 lives, until 10 kills landed mid-hydration (a fast consumer may finish a backlog
        # before the kill); 4 chunks stay for the final run.
        produced, hydrating_kills = kill_while_hydrating(
            consumer, chunks, lambda chunk: h.produce(kafka.admin, topic, chunk), product, store_spec, url, rng,
            keep=4, most_wait=0.03, enough=10)
        for chunk in chunks:
            produced += h.produce(kafka.admin, topic, chunk)
        consumer.start()
        ends = h.end_offsets(kafka.admin, topic)
        h.wait_caught_up(product, store_spec, url, ends, timeout=180, consumers=[consumer])
        records = h.read_topic(kafka.admin, topic)
        assert len(records) == len(events) == produced
        assert_contents(kind, product, store_spec, url, h.expected_for(product, store_spec, records))
        assert consumer.stop() == 0
    finally:
        consumer.kill()
    assert hydrating_kills >= 10, hydrating_kills
