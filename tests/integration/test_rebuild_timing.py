"""How long a rebuild of 200,000 events takes next to the first hydration of the same events
(printed; the rebuild also keeps the live version following, so it is expected to cost more)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration import harness as h
from tests.integration.test_consumer_stores import reset_store, store_url, unique_name
from tests.integration.test_rebuild import (
    FAST_GROUP,
    expected_rows,
    leftovers,
    snapshot,
    store_for,
    wait_switched,
    write_spec,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_rebuild_of_200k_events_versus_first_hydration(
    kind: str, kafka_bootstrap: str, redis_server: Any, postgres_server: Any, topic: str, tmp_path: Path
) -> None:
    name = unique_name(topic)
    spec = h.order_spec(tmp_path, name=name, topic=topic, stores=[store_for(kind, name)])
    v1 = h.load_product(spec)
    store_v1 = v1.spec.stores[0]
    url = store_url(kind, redis_server, postgres_server)
    reset_store(v1, store_v1, url)
    h.create_topic(kafka_bootstrap, topic, partitions=3)
    h.produce(kafka_bootstrap, topic, h.order_events(200_000, seed=31, keys=20_000, tombstones=False))
    ends = h.end_offsets(kafka_bootstrap, topic)
    consumer = h.ConsumerProcess(spec, store_v1.name, kafka_bootstrap, url, tmp_path, "c", env=FAST_GROUP)
    try:
        started = time.monotonic()
        consumer.start()
        h.wait_caught_up(v1, store_v1, url, ends, 600, [consumer])
        first = time.monotonic() - started
        assert consumer.stop() == 0
        write_spec(spec, v2=True)
        v2 = h.load_product(spec)
        store_v2 = v2.spec.stores[0]
        started = time.monotonic()
        consumer.start()
        wait_switched(v2, store_v2, url, 900, [consumer])
        rebuild = time.monotonic() - started
        print(f"\n{kind}: first hydration of 200,000 events {first:.1f}s, rebuild (to the switch) {rebuild:.1f}s")
        records = h.read_topic(kafka_bootstrap, topic)
        actual = {row.pop("_key"): row for row in snapshot(kind, url, v2, store_v2)}
        assert actual == expected_rows(kind, v2, store_v2, records)
        assert leftovers(kind, url, v2, store_v2) == []
        assert consumer.stop() == 0
    finally:
        consumer.kill()
