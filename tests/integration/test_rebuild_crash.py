"""A rebuild survives SIGKILL at any moment: killed ten times over one rebuild (while it starts,
while the shadow hydrates and the live version keeps following, between catching up and
switching), it resumes each time and ends with exactly one current version whose contents equal
the new spec's materialization, and nothing of any other version left behind."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest

from provisioner.spec.fingerprint import fingerprint
from provisioner.stores.versions import shadow_for, version_id
from tests.integration import harness as h
from tests.integration.test_consumer_stores import reset_store, store_url, unique_name
from tests.integration.test_rebuild import (
    FAST_GROUP,
    expected_rows,
    leftovers,
    read_version,
    renamed,
    snapshot,
    store_for,
    wait_switched,
    write_spec,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_ten_sigkills_over_a_rebuild_leave_one_exact_version(
    kind: str, kafka_bootstrap: str, redis_server: Any, postgres_server: Any, topic: str, tmp_path: Path
) -> None:
    rng = random.Random(sum(map(ord, kind)))
    name = unique_name(topic)
    spec = h.order_spec(tmp_path, name=name, topic=topic, stores=[store_for(kind, name)], batch_size=300,
                        batch_latency="50ms")
    v1 = h.load_product(spec)
    store_v1 = v1.spec.stores[0]
    url = store_url(kind, redis_server, postgres_server)
    reset_store(v1, store_v1, url)
    h.create_topic(kafka_bootstrap, topic, partitions=3)
    h.produce(kafka_bootstrap, topic, h.order_events(100_000, seed=21, keys=5000, tombstones=False))

    consumer = h.ConsumerProcess(spec, store_v1.name, kafka_bootstrap, url, tmp_path, "c", env=FAST_GROUP).start()
    try:
        h.wait_caught_up(v1, store_v1, url, h.end_offsets(kafka_bootstrap, topic), 300, [consumer])
        assert consumer.stop() == 0
        write_spec(spec, v2=True)
        v2 = h.load_product(spec)
        store_v2 = v2.spec.stores[0]
        shadow_spec, _ = shadow_for(v2, store_v2, version_id(fingerprint(v2, store_v2)))

        def shadow_progress() -> int:
            try:
                return sum(h.store_positions(v2, shadow_spec, url).values())
            except Exception:
                return 0

        def log_mentions(text: str, since: int) -> bool:
            return text in consumer.log()[since:]

        moments: list[str] = []
        for life in range(10):
            h.produce(kafka_bootstrap, topic, renamed(h.order_events(500, seed=100 + life, keys=200,
                                                                     tombstones=False), b"n%d" % life))
            since = len(consumer.log())
            before = shadow_progress()
            consumer.start()
            if life == 0:
                # While it starts: the shadow is recorded, perhaps not yet created.
                h.wait_for(lambda since=since: log_mentions("rebuilding", since), 60, "the rebuild to start",
                           interval=0.01, on_timeout=consumer.log)
                moments.append("starting")
            elif life == 9:
                # Between catching up and switching.
                h.wait_for(lambda since=since: log_mentions("caught up with the stream", since), 300, "the shadow to catch up",
                           interval=0.005, on_timeout=consumer.log)
                moments.append("caught up, not switched" if not log_mentions("switched", since) else "switched")
            else:
                h.wait_for(lambda before=before: shadow_progress() > before, 120, "the shadow to progress",
                           interval=0.02, on_timeout=consumer.log)
                time.sleep(rng.uniform(0.0, 0.4))
                moments.append("hydrating")
            consumer.kill()
            record = read_version(v2, store_v2, url)
            assert record is not None
            if record.fingerprint == fingerprint(v2, store_v2):
                # Switched before life 9's kill: kill again right away in the next lives anyway.
                moments[-1] += " (switched)"
        assert moments.count("hydrating") >= 7, moments
        assert moments[-1] == "caught up, not switched", moments

        h.produce(kafka_bootstrap, topic, renamed(h.order_events(500, seed=999, keys=200, tombstones=False), b"z"))
        consumer.start()
        wait_switched(v2, store_v2, url, 300, [consumer])
        h.wait_caught_up(v2, store_v2, url, h.end_offsets(kafka_bootstrap, topic), 300, [consumer])
        records = h.read_topic(kafka_bootstrap, topic)
        actual = {row.pop("_key"): row for row in snapshot(kind, url, v2, store_v2)}
        assert actual == expected_rows(kind, v2, store_v2, records)
        assert leftovers(kind, url, v2, store_v2) == []
        record = read_version(v2, store_v2, url)
        assert record is not None and record.fingerprint == fingerprint(v2, store_v2) and record.shadow is None
        assert consumer.stop() == 0
    finally:
        consumer.kill()
