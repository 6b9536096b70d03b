"""Outages: the store or Kafka goes away mid-hydration and comes back.

While it lasts the consumer backs off and its status file says so (state `backoff`, `last_error`);
afterwards the store ends exactly at the materialization: nothing lost, nothing applied twice.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from provisioner.local import devbroker
from tests.integration import harness as h
from tests.integration.test_consumer_stores import STORES, assert_contents, reset_store, store_url, unique_name

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("kafka_client")]

FAST_GROUP = {"PROVISIONER_KAFKA_SESSION_TIMEOUT_MS": "3000"}


def backing_off(consumer: h.ConsumerProcess) -> bool:
    status = consumer.status()
    return status.get("state") == "backoff" and bool(status.get("last_error"))


@pytest.mark.parametrize("kind", ["redis-hash", "postgres-append"])
def test_a_store_outage_loses_and_duplicates_nothing(
    kind: str, kafka_bootstrap: str, redis_server: Any, postgres_server: Any, topic: str, tmp_path: Path
) -> None:
    spec = h.order_spec(tmp_path, name=unique_name(topic), topic=topic, stores=[STORES[kind]], batch_size=300,
                        batch_latency="50ms")
    product = h.load_product(spec)
    store_spec = product.spec.stores[0]
    server = redis_server if kind.startswith("redis") else postgres_server
    url = store_url(kind, redis_server, postgres_server)
    reset_store(product, store_spec, url)
    h.create_topic(kafka_bootstrap, topic, partitions=3)
    events = h.order_events(20_000, seed=44, keys=2500)
    h.produce(kafka_bootstrap, topic, events[:5000])
    consumer = h.ConsumerProcess(spec, store_spec.name, kafka_bootstrap, url, tmp_path, "c", env=FAST_GROUP)
    stopped = False
    try:
        consumer.start()
        h.wait_for(lambda: consumer.status().get("records", 0) >= 5000, 60, "the first records")
        server.stop()
        stopped = True
        h.produce(kafka_bootstrap, topic, events[5000:12000])
        h.wait_for(lambda: backing_off(consumer), 30, "the status to show the outage", on_timeout=consumer.log)
        assert "redis" in consumer.status()["last_error"].lower() or "postgres" in consumer.status()["last_error"]
        time.sleep(2)
        assert backing_off(consumer) or consumer.status().get("last_error")
        assert server.start() == url, "the restarted server must keep its URL"
        stopped = False
        h.produce(kafka_bootstrap, topic, events[12000:])
        ends = h.end_offsets(kafka_bootstrap, topic)
        h.wait_caught_up(product, store_spec, url, ends, timeout=180, consumers=[consumer])
        records = h.read_topic(kafka_bootstrap, topic)
        assert_contents(kind, product, store_spec, url, h.expected_for(product, store_spec, records))
        h.wait_for(lambda: consumer.status().get("state") == "running" and consumer.status().get("last_error") is None,
                   30, "the status to recover")
        assert consumer.stop() == 0
    finally:
        consumer.kill()
        if stopped:
            server.start()


def test_a_kafka_outage_loses_and_duplicates_nothing(
    redis_server: Any, postgres_server: Any, topic: str, tmp_path: Path
) -> None:
    # A broker of its own, so stopping it disturbs no other test; same state dir and port on restart.
    state = tmp_path / "kafka"
    bootstrap = devbroker.up(state, port=0)
    port = int(bootstrap.rsplit(":", 1)[1])
    kind = "postgres-append"
    spec = h.order_spec(tmp_path, name=unique_name(topic), topic=topic, stores=[STORES[kind]], batch_size=300,
                        batch_latency="50ms")
    product = h.load_product(spec)
    store_spec = product.spec.stores[0]
    url = store_url(kind, redis_server, postgres_server)
    reset_store(product, store_spec, url)
    consumer = h.ConsumerProcess(spec, store_spec.name, bootstrap, url, tmp_path, "c", env=FAST_GROUP)
    try:
        h.create_topic(bootstrap, topic, partitions=3)
        events = h.order_events(20_000, seed=55, keys=2500)
        h.produce(bootstrap, topic, events[:8000])
        consumer.start()
        h.wait_for(lambda: consumer.status().get("records", 0) >= 2000, 60, "the first records")
        devbroker.down(state)
        h.wait_for(lambda: backing_off(consumer), 60, "the status to show the outage", on_timeout=consumer.log)
        assert "Kafka" in consumer.status()["last_error"]
        assert devbroker.up(state, port=port) == bootstrap
        h.produce(bootstrap, topic, events[8000:])
        ends = h.end_offsets(bootstrap, topic)
        h.wait_caught_up(product, store_spec, url, ends, timeout=180, consumers=[consumer])
        records = h.read_topic(bootstrap, topic)
        assert len(records) == len(events)
        assert_contents(kind, product, store_spec, url, h.expected_for(product, store_spec, records))
        h.wait_for(lambda: consumer.status().get("last_error") is None, 30, "the status to recover",
                   on_timeout=lambda: str(consumer.status()))
        assert consumer.stop() == 0
    finally:
        consumer.kill()
        devbroker.down(state, purge=True)
