"""The consumer end to end, per store kind: contents equal the materialization the events imply,
dead letters of every stage reach the DLQ with their provenance, and errors.mode stop / skip behave
as spec.md says. Real broker, real Redis and Postgres, the consumer as a subprocess."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.integration import harness as h

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("kafka_client")]

STORES: dict[str, dict[str, Any]] = {
    "redis-hash": {"name": "cache", "redis": {"keyPrefix": "orders:", "ttl": "1h"}},
    "redis-json": {"name": "cache", "redis": {"keyPrefix": "orders:", "structure": "json"}},
    "postgres-upsert": {"name": "db", "postgres": {"table": "orders", "columns": {"total": "numeric",
                                                                                  "qty": "integer"}}},
    "postgres-append": {"name": "db", "postgres": {"table": "orders_log", "mode": "append",
                                                   "columns": {"qty": "bigint"}}},
}


def store_url(kind: str, redis_server: Any, postgres_server: Any) -> str:
    return str(redis_server.url if kind.startswith("redis") else postgres_server.url)


def unique_name(topic: str) -> str:
    return "p" + topic.replace(".", "-").replace("_", "-")[-20:].lower().strip("-")


def reset_store(product: Any, store_spec: Any, url: str) -> None:
    from provisioner.stores.registry import open_store

    store = open_store(product, store_spec, url)
    try:
        store.reset()
    except Exception:
        pass
    finally:
        store.close()


def assert_contents(kind: str, product: Any, store_spec: Any, url: str, expected: h.Expected) -> None:
    if kind.startswith("redis"):
        structure = store_spec.redis.structure
        actual = h.redis_contents(url, product.key_prefix(store_spec), structure)
        wanted = h.expected_redis(expected, product, structure)
        assert actual.keys() == wanted.keys()
        assert actual == wanted
    elif kind == "postgres-upsert":
        actual_rows = h.actual_postgres_upsert(url, product, store_spec)
        wanted_rows = h.expected_postgres_upsert(expected, product, store_spec)
        assert actual_rows.keys() == wanted_rows.keys()
        assert actual_rows == wanted_rows
    else:
        assert_changelog(product, store_spec, url, expected)


def assert_changelog(product: Any, store_spec: Any, url: str, expected: h.Expected) -> None:
    rows = h.postgres_rows(url, store_spec.postgres.db_schema, product.table(store_spec))
    positions = Counter((r["_partition"], r["_offset"]) for r in rows)
    duplicates = [p for p, n in positions.items() if n > 1]
    assert not duplicates, f"duplicate changelog rows at {duplicates[:10]}"
    wanted = {(rec.partition, rec.offset): (rec, op) for rec, op in expected.changelog}
    assert set(positions) == set(wanted)
    for row in rows:
        record, op = wanted[(row["_partition"], row["_offset"])]
        assert row["_op"] == op.kind
        assert int(row["_timestamp"].timestamp() * 1000) == record.timestamp
        values = dict(op.row) if op.kind == "upsert" else dict(zip(product.key_fields, op.key, strict=True))  # type: ignore[union-attr]
        assert {n: h._normal(row[n]) for n in product.fields} == h.expected_postgres_row(product, store_spec, values)


@pytest.mark.parametrize("kind", list(STORES))
def test_store_matches_the_materialization_and_dead_letters_carry_provenance(
    kind: str, kafka_bootstrap: str, redis_server: Any, postgres_server: Any, topic: str, tmp_path: Path
) -> None:
    name = unique_name(topic)
    spec = h.order_spec(tmp_path, name=name, topic=topic, stores=[STORES[kind]], batch_size=500)
    product = h.load_product(spec)
    store_spec = product.spec.stores[0]
    url = store_url(kind, redis_server, postgres_server)
    reset_store(product, store_spec, url)
    h.create_topic(kafka_bootstrap, topic, partitions=3)
    poison = h.poison_events()
    events = h.order_events(3000, seed=7, keys=400)
    # Poison records spread through the stream, so they share batches with good ones.
    for i, event in enumerate(poison.values()):
        events.insert(300 * (i + 1), event)
    h.produce(kafka_bootstrap, topic, events)

    consumer = h.ConsumerProcess(spec, store_spec.name, kafka_bootstrap, url, tmp_path, "c1").start()
    try:
        records = h.read_topic(kafka_bootstrap, topic)
        assert len(records) == len(events)
        expected = h.expected_for(product, store_spec, records)
        ends = h.end_offsets(kafka_bootstrap, topic)
        h.wait_caught_up(product, store_spec, url, ends, timeout=120, consumers=[consumer])
        assert_contents(kind, product, store_spec, url, expected)
        if kind == "redis-hash":
            ttls = h.redis_ttls(url, product.key_prefix(store_spec))
            assert ttls and all(0 < t <= 3_600_000 for t in ttls)
        elif kind == "redis-json":
            assert all(t == -1 for t in h.redis_ttls(url, product.key_prefix(store_spec)))

        dead = h.read_dead_letters(kafka_bootstrap, product.dead_letter_topic, len(expected.dead))
        by_source = {}
        for record in dead:
            headers = dict(record.headers)
            by_source[(int(headers["provisioner.source.partition"]), int(headers["provisioner.source.offset"]))] = (
                record, headers)
        assert len(by_source) == len(expected.dead)
        stages = set()
        for original, dead_letter in expected.dead:
            record, headers = by_source[(original.partition, original.offset)]
            assert record.key == original.key
            assert record.value == original.value
            assert headers["provisioner.error.stage"].decode() == dead_letter.stage
            assert headers["provisioner.error.message"]
            assert headers["provisioner.source.topic"].decode() == topic
            assert headers["provisioner.source.partition"].decode() == str(original.partition)
            assert headers["provisioner.source.offset"].decode() == str(original.offset)
            assert headers["provisioner.product"].decode() == f"itest/{name}"
            assert headers["provisioner.store"].decode() == store_spec.name
            for name_, value in original.headers:
                assert headers[name_] == value
            stages.add(dead_letter.stage)
        assert stages == set(poison)

        wait_status = lambda: consumer.status().get("records", 0) >= len(records)  # noqa: E731
        h.wait_for(wait_status, 10, "the status file to count every record")
        status = consumer.status()
        assert status["state"] == "running"
        assert status["dead_letters"] == len(expected.dead)
        assert status["ops"]["deadLetter"] == len(expected.dead)
        assert status["ops"]["skip"] == expected.ops["skip"]
        assert status["lag"] == 0
        assert consumer.stop() == 0
    finally:
        consumer.kill()


@pytest.mark.parametrize("kind", ["redis-hash", "postgres-append"])
def test_errors_mode_stop_halts_at_the_first_error(
    kind: str, kafka_bootstrap: str, redis_server: Any, postgres_server: Any, topic: str, tmp_path: Path
) -> None:
    name = unique_name(topic)
    spec = h.order_spec(tmp_path, name=name, topic=topic, stores=[STORES[kind]], errors={"mode": "stop"},
                        batch_size=300)
    product = h.load_product(spec)
    store_spec = product.spec.stores[0]
    url = store_url(kind, redis_server, postgres_server)
    reset_store(product, store_spec, url)
    h.create_topic(kafka_bootstrap, topic, partitions=1)
    events = h.order_events(1000, seed=11, keys=100)
    poison_stage = "store" if kind == "postgres-append" else "fields"
    events.insert(700, h.poison_events()[poison_stage])
    h.produce(kafka_bootstrap, topic, events)

    consumer = h.ConsumerProcess(spec, store_spec.name, kafka_bootstrap, url, tmp_path, "c1").start()
    try:
        code = consumer.wait(timeout=120)
    finally:
        consumer.kill()
    assert code == 2, consumer.log()[-3000:]
    status = consumer.status()
    assert status["state"] == "halted"
    assert poison_stage in status["last_error"] and "@700" in status["last_error"]
    # Everything before the bad record is applied and committed, nothing after it.
    assert h.store_positions(product, store_spec, url) == {0: 700}
    records = h.read_topic(kafka_bootstrap, topic)[:700]
    assert_contents(kind, product, store_spec, url, h.expected_for(product, store_spec, records))


def test_errors_mode_skip_only_counts(
    kafka_bootstrap: str, redis_server: Any, postgres_server: Any, topic: str, tmp_path: Path
) -> None:
    name = unique_name(topic)
    kind = "redis-json"
    spec = h.order_spec(tmp_path, name=name, topic=topic, stores=[STORES[kind]], errors={"mode": "skip"})
    product = h.load_product(spec)
    store_spec = product.spec.stores[0]
    url = store_url(kind, redis_server, postgres_server)
    reset_store(product, store_spec, url)
    h.create_topic(kafka_bootstrap, topic, partitions=2)
    events = h.order_events(800, seed=3, keys=100) + list(h.poison_events().values())
    h.produce(kafka_bootstrap, topic, events)
    consumer = h.ConsumerProcess(spec, store_spec.name, kafka_bootstrap, url, tmp_path, "c1").start()
    try:
        records = h.read_topic(kafka_bootstrap, topic)
        expected = h.expected_for(product, store_spec, records)
        h.wait_caught_up(product, store_spec, url, h.end_offsets(kafka_bootstrap, topic), 90, [consumer])
        assert_contents(kind, product, store_spec, url, expected)
        h.wait_for(lambda: consumer.status().get("records", 0) >= len(records), 10, "status")
        status = consumer.status()
        assert status["dead_letters"] == len(expected.dead) == 7
        assert status["state"] == "running"
        assert h.end_offsets(kafka_bootstrap, product.dead_letter_topic, timeout=2) == {}
        assert consumer.stop() == 0
    finally:
        consumer.kill()


def test_sigterm_finishes_the_batch_in_hand_and_exits_zero(
    kafka_bootstrap: str, redis_server: Any, postgres_server: Any, topic: str, tmp_path: Path
) -> None:
    name = unique_name(topic)
    kind = "postgres-append"
    spec = h.order_spec(tmp_path, name=name, topic=topic, stores=[STORES[kind]], batch_size=2000,
                        batch_latency="2s")
    product = h.load_product(spec)
    store_spec = product.spec.stores[0]
    url = store_url(kind, redis_server, postgres_server)
    reset_store(product, store_spec, url)
    h.create_topic(kafka_bootstrap, topic, partitions=3)
    h.produce(kafka_bootstrap, topic, h.order_events(20_000, seed=5, keys=3000, tombstones=False))
    consumer = h.ConsumerProcess(spec, store_spec.name, kafka_bootstrap, url, tmp_path, "c1").start()
    try:
        h.wait_for(lambda: consumer.status().get("records", 0) > 0, 60, "the first batch")
        assert consumer.stop(timeout=30) == 0
    finally:
        consumer.kill()
    status = consumer.status()
    assert status["state"] == "stopped"
    positions = h.store_positions(product, store_spec, url)
    # What the status counted is exactly what the store holds: the batch in hand was applied.
    assert sum(positions.values()) == status["records"]
    records = h.read_topic(kafka_bootstrap, topic)
    applied = [r for r in records if r.offset < positions.get(r.partition, 0)]
    assert_changelog(product, store_spec, url, h.expected_for(product, store_spec, applied))
    assert json.loads(consumer.status_path.read_text())["pid"] == consumer.pid
