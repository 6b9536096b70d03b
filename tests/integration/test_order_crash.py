"""`spec.order` end to end: versions of each key arrive shuffled across partitions and batches
(older after newer, duplicates, deletes before late upserts) while the consumer is SIGKILLed at
random instants and restarted. The store ends with the highest version of every key (none where
that is a delete: a late older upsert does not bring it back); an append-mode changelog holds every
op once, with `_stale` set on those older than their key's version already applied."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaProducer

from tests.integration import harness as h
from tests.integration.crashing import kill_while_hydrating
from tests.integration.test_consumer_stores import reset_store, store_url, unique_name

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST_GROUP = {"PROVISIONER_KAFKA_SESSION_TIMEOUT_MS": "2000"}
PARTITIONS = 3
STORES: dict[str, dict[str, Any]] = {
    "redis-hash": {"name": "cache", "redis": {"keyPrefix": "acct:"}},
    "postgres-upsert": {"name": "db", "postgres": {"table": "accounts", "columns": {"version": "bigint"}}},
    "postgres-append": {"name": "db", "postgres": {"table": "accounts_log", "mode": "append"}},
}
Event = tuple[int, dict[str, Any]]  # (partition, value)


def write_spec(directory: Path, name: str, topic: str, store: dict[str, Any]) -> Path:
    document = {
        "apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct",
        "metadata": {"name": name, "namespace": "itest"},
        "spec": {
            "source": {"topic": topic, "startFrom": "earliest"},
            "delete": "event.op == 'delete'",
            "order": "event.version",
            "fields": {"id": "event.id", "version": "event.version", "payload": "event.payload"},
            "key": "id",
            "stores": [store],
            "errors": {"mode": "deadLetter", "deadLetterTopic": f"{name}.dlq"},
            "consumer": {"batchSize": 300, "batchLatency": "20ms"},
        },
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def generate(rng: random.Random, keys: int) -> tuple[list[Event], dict[str, dict[str, Any] | None]]:
    """Shuffled versions of every key on random partitions, with duplicates, then late upserts older
    than a delete; and what the store must end with (key -> newest upsert, None when deleted)."""
    events: list[Event] = []
    newest: dict[str, dict[str, Any] | None] = {}
    late: list[Event] = []
    for n in range(keys):
        key = f"a{n}"
        versions = rng.randrange(1, 9)
        values: list[dict[str, Any]] = []
        for version in range(1, versions + 1):
            deleting = rng.random() < (0.5 if version == versions else 0.15)
            value = ({"op": "delete", "id": key, "version": version} if deleting else
                     {"op": "upsert", "id": key, "version": version, "payload": f"{key}-v{version}-{rng.random():.6f}"})
            values.append(value)
            if rng.random() < 0.2:
                values.append(value)  # a duplicate: a producer's retry
        last = values[-1]
        newest[key] = None if last["op"] == "delete" else last
        if last["op"] == "delete" and versions > 1:
            late.append((rng.randrange(PARTITIONS),
                         {"op": "upsert", "id": key, "version": rng.randrange(1, versions), "payload": "late"}))
        events += [(rng.randrange(PARTITIONS), value) for value in values]
    rng.shuffle(events)
    return events + late, newest


def produce(bootstrap: str, topic: str, events: list[Event]) -> int:
    producer = KafkaProducer(**h._connect(bootstrap), acks="all", linger_ms=20)
    try:
        for partition, value in events:
            producer.send(topic, key=value["id"].encode(), value=json.dumps(value).encode(), partition=partition)
        producer.flush(timeout=120)
    finally:
        producer.close(timeout=10)
    return len(events)


def assert_store(kind: str, product: Any, store_spec: Any, url: str, newest: dict[str, dict[str, Any] | None],
                 produced: list[Event]) -> None:
    wanted = {key: value for key, value in newest.items() if value is not None}
    if kind == "redis-hash":
        actual = h.redis_contents(url, "acct:")
        assert actual == {k: {"id": k, "version": str(v["version"]), "payload": v["payload"]} for k, v in wanted.items()}
    elif kind == "postgres-upsert":
        rows = h.postgres_rows(url, "public", "accounts")
        actual_rows = {r["id"]: (r["version"], r["payload"]) for r in rows}
        assert actual_rows == {k: (v["version"], v["payload"]) for k, v in wanted.items()}
        assert all(int(r["_provisioner_order"]) == r["version"] for r in rows)
    else:
        assert_changelog(url, newest, produced)


def assert_changelog(url: str, newest: dict[str, dict[str, Any] | None], produced: list[Event]) -> None:
    rows = h.postgres_rows(url, "public", "accounts_log")
    positions = [(r["_partition"], r["_offset"]) for r in rows]
    assert len(positions) == len(set(positions)) == len(produced), "each op appended exactly once"
    highest: dict[str, int] = {}
    for _, value in produced:
        highest[value["id"]] = max(highest.get(value["id"], 0), value["version"])
    seen: dict[tuple[int, str], int] = {}  # (partition, key) -> highest version earlier in the partition
    flagged = 0
    for row in sorted(rows, key=lambda r: (r["_partition"], r["_offset"])):
        version = int(row["_provisioner_order"])
        earlier = seen.get((row["_partition"], row["id"]), 0)
        if version < earlier:
            assert row["_stale"], f"{row['id']} v{version} after v{earlier} in partition {row['_partition']}"
        if version == highest[row["id"]]:
            assert not row["_stale"], f"{row['id']} v{version} is its newest version"
        flagged += row["_stale"]
        seen[(row["_partition"], row["id"])] = max(earlier, version)
    assert flagged > 0


@pytest.mark.parametrize("kind", list(STORES))
def test_the_highest_version_wins_through_sigkills(
    kind: str, kafka_bootstrap: str, redis_server: Any, postgres_server: Any, topic: str, tmp_path: Path
) -> None:
    rng = random.Random(sum(map(ord, kind)))
    name = unique_name(topic)
    spec = write_spec(tmp_path, name, topic, STORES[kind])
    product = h.load_product(spec)
    store_spec = product.spec.stores[0]
    url = store_url(kind, redis_server, postgres_server)
    reset_store(product, store_spec, url)
    h.create_topic(kafka_bootstrap, topic, partitions=PARTITIONS)
    events, newest = generate(rng, keys=3000)
    size = len(events) // 8 + 1
    chunks = [events[i : i + size] for i in range(0, len(events), size)]
    assert any(value.get("payload") == "late" for _, value in chunks[-1])

    consumer = h.ConsumerProcess(spec, store_spec.name, kafka_bootstrap, url, tmp_path, "c", env=FAST_GROUP)
    try:
        produced, kills = kill_while_hydrating(
            consumer, chunks, lambda chunk: produce(kafka_bootstrap, topic, chunk), product, store_spec, url, rng,
            keep=2, most_wait=0.05)
        for chunk in chunks:
            produced += produce(kafka_bootstrap, topic, chunk)
        consumer.start()
        h.wait_caught_up(product, store_spec, url, h.end_offsets(kafka_bootstrap, topic), timeout=180,
                         consumers=[consumer])
        assert produced == len(events)
        assert_store(kind, product, store_spec, url, newest, events)
        assert consumer.stop() == 0
        assert consumer.status()["stale"] > 0  # the late upserts at least
    finally:
        consumer.kill()
    assert kills >= 3, kills
