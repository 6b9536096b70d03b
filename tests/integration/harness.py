"""Helpers for the consumer's integration tests: produce events, run `provisioner consume` as real
subprocesses (so they can be killed, stopped and resumed), compute what the store must hold by
running the same records through `Pipeline` offline, and read back what the store does hold.

The expected contents come from the records as Kafka stored them (read back with their partitions
and offsets), folded per key in partition-offset order: exactly the spec's definition of
"effectively once".
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import redis
import yaml

with warnings.catch_warnings():
    # kafka-python loads its protocol schemas with a deprecated importlib call on first import.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

from provisioner.pipeline.encoding import encode_value
from provisioner.pipeline.ops import Change, DeadLetter, Delete, Record, Upsert, render_key
from provisioner.pipeline.process import Pipeline
from provisioner.runtime.status import read_status
from provisioner.spec.loader import load_products
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.stores.convert import converter
from provisioner.stores.redis import ORDER_FIELD
from provisioner.stores.registry import open_store
from provisioner.stream.settings import KafkaTarget, kafka_python_config, settings_of

ROOT = Path(__file__).resolve().parents[2]
Event = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]

# A product whose filter keeps most records, with deletes, a nullable field, and every per-record
# stage reachable by some crafted record (see `poison_events`).
ORDER_FIELDS = {
    "order_id": "record.key",
    "customer": "event.customer.id",
    "total": "event.amount * double(event.qty)",
    "qty": "event.qty",
    "note": "has(event.note) ? event.note : 'none'",
}
ORDER_SCHEMA = {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}}


def order_spec(
    directory: Path,
    *,
    name: str,
    topic: str,
    stores: list[dict[str, Any]],
    errors: dict[str, Any] | None = None,
    batch_size: int = 2000,
    batch_latency: str = "100ms",
    schema: bool = True,
) -> Path:
    """Write a DataProduct spec for the orders events and return its path."""
    source: dict[str, Any] = {"topic": topic, "startFrom": "earliest"}
    if schema:
        source["schema"] = ORDER_SCHEMA
    document = {
        "apiVersion": "provisioner.dev/v1alpha1",
        "kind": "DataProduct",
        "metadata": {"name": name, "namespace": "itest"},
        "spec": {
            "source": source,
            "filter": "event.type == 'OrderCancelled' || (event.type == 'OrderPlaced' && event.qty >= 0)",
            "delete": "event.type == 'OrderCancelled' && event.confirmed",
            "fields": ORDER_FIELDS,
            "key": "order_id",
            "stores": stores,
            "errors": errors or {"mode": "deadLetter", "deadLetterTopic": f"{name}.dlq"},
            "consumer": {"batchSize": batch_size, "batchLatency": batch_latency},
        },
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def load_product(path: Path) -> DataProduct:
    return load_products([path])[0].product


# -- events ----------------------------------------------------------------------------------


def order_events(count: int, *, seed: int, keys: int = 2000, tombstones: bool = True) -> list[Event]:
    """Valid order events over `keys` order ids: placements, updates, cancellations, shipments
    (filtered out) and, optionally, tombstones (deletes by Kafka key)."""
    rng = random.Random(seed)
    events: list[Event] = []
    for n in range(count):
        order = f"o{rng.randrange(keys)}"
        roll = rng.random()
        headers = [("trace", f"t{n}".encode())]
        if tombstones and roll < 0.03:
            events.append((order.encode(), None, headers))
            continue
        if roll < 0.12:
            value: dict[str, Any] = {"type": "OrderCancelled", "confirmed": True,
                                     "customer": {"id": f"c{rng.randrange(50)}"}}
        elif roll < 0.2:
            value = {"type": "OrderShipped", "customer": {"id": "c0"}}
        else:
            value = {"type": "OrderPlaced", "amount": round(rng.uniform(1, 500), 2), "qty": rng.randrange(1, 9),
                     "customer": {"id": f"c{rng.randrange(50)}"}, "seq": n}
            if rng.random() < 0.3:
                value["note"] = rng.choice(["gift", "rush", "fragile"])
        events.append((order.encode(), json.dumps(value).encode(), headers))
    return events


def poison_events() -> dict[str, Event]:
    """One record per dead-letter stage the pipeline can produce, by stage."""
    placed = {"type": "OrderPlaced", "amount": 10.5, "qty": 1, "customer": {"id": "c1"}}
    return {
        "decode": (b"bad-decode", b"{not json", [("h", b"1")]),
        "schema": (b"bad-schema", json.dumps({**placed, "type": 7}).encode(), [("h", b"2")]),
        "filter": (b"bad-filter", json.dumps({k: v for k, v in placed.items() if k != "qty"}).encode(), []),
        "delete": (b"bad-delete", json.dumps({"type": "OrderCancelled", "customer": {"id": "c1"}}).encode(), []),
        "fields": (b"bad-fields", json.dumps({**placed, "amount": 10}).encode(), [("h", b"5")]),
        "key": (None, json.dumps(placed).encode(), []),
        # A lone surrogate decodes fine as JSON but cannot be written as UTF-8 by any store.
        "store": (b"bad-store", json.dumps({**placed, "note": "\ud800"}).encode(), [("h", b"7")]),
    }


# -- Kafka -----------------------------------------------------------------------------------


def _connect(bootstrap: KafkaTarget) -> dict[str, Any]:
    """kafka-python's connection arguments for a plaintext address or secured settings."""
    return kafka_python_config(settings_of(bootstrap))


def create_topic(bootstrap: KafkaTarget, topic: str, partitions: int = 3) -> None:
    admin = KafkaAdminClient(**_connect(bootstrap))
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()
    deadline = time.monotonic() + 30
    probe = KafkaConsumer(**_connect(bootstrap))
    try:
        while len(probe.partitions_for_topic(topic) or ()) < partitions:
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {topic} has no metadata")
            time.sleep(0.1)
    finally:
        probe.close()


def produce(bootstrap: KafkaTarget, topic: str, events: Iterable[Event]) -> int:
    """Send events (keyed by Kafka's default partitioner) and wait for every acknowledgement."""
    producer = KafkaProducer(**_connect(bootstrap), acks="all", linger_ms=20, batch_size=256 * 1024)
    count = 0
    try:
        for key, value, headers in events:
            producer.send(topic, key=key, value=value, headers=headers)
            count += 1
        producer.flush(timeout=120)
    finally:
        producer.close(timeout=10)
    return count


def _partitions(consumer: KafkaConsumer, topic: str, timeout: float) -> list[TopicPartition]:
    """The topic's partitions once metadata knows them; none if the topic does not exist by then."""
    deadline = time.monotonic() + timeout
    while True:
        known = consumer.partitions_for_topic(topic)
        if known or time.monotonic() > deadline:
            return [TopicPartition(topic, p) for p in sorted(known or ())]
        time.sleep(0.1)


def end_offsets(bootstrap: KafkaTarget, topic: str, timeout: float = 10.0) -> dict[int, int]:
    consumer = KafkaConsumer(**_connect(bootstrap))
    try:
        parts = _partitions(consumer, topic, timeout)
        return {tp.partition: int(o) for tp, o in consumer.end_offsets(parts).items()} if parts else {}
    finally:
        consumer.close()


def committed_offsets(bootstrap: KafkaTarget, group: str) -> dict[int, int]:
    """The offsets a consumer group committed to Kafka (what lag tools read), by partition."""
    admin = KafkaAdminClient(**_connect(bootstrap))
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
        return {tp.partition: meta.offset for tp, meta in offsets.items()}
    finally:
        admin.close()


def read_topic(bootstrap: KafkaTarget, topic: str, timeout: float = 120.0) -> list[Record]:
    """Every record of `topic` with its real partition, offset and timestamp, partition by partition."""
    consumer = KafkaConsumer(**_connect(bootstrap), enable_auto_commit=False, check_crcs=False,
                             max_partition_fetch_bytes=8 * 1024 * 1024)
    try:
        parts = _partitions(consumer, topic, 30)
        ends = consumer.end_offsets(parts)
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        by_partition: dict[int, list[Record]] = {tp.partition: [] for tp in parts}
        remaining = {tp for tp in parts if ends[tp] > 0}
        deadline = time.monotonic() + timeout
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end")
            for tp, records in consumer.poll(timeout_ms=500).items():
                for r in records:
                    by_partition[tp.partition].append(
                        Record(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value, tuple(r.headers)))
                if by_partition[tp.partition] and by_partition[tp.partition][-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        return [r for p in sorted(by_partition) for r in by_partition[p]]
    finally:
        consumer.close()


# -- what the store must hold ----------------------------------------------------------------


@dataclass
class Expected:
    """The materialization the records imply for one store."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # rendered key -> row (upsert mode)
    changelog: list[tuple[Record, Upsert | Delete]] = field(default_factory=list)  # append mode
    dead: list[tuple[Record, DeadLetter]] = field(default_factory=list)
    ops: Counter[str] = field(default_factory=Counter)


def expected_for(product: DataProduct, store_spec: StoreSpec, records: Sequence[Record]) -> Expected:
    """Fold every record's op per key, in partition-offset order (keys never span partitions here)."""
    pipeline = Pipeline(product)
    store = open_store(product, store_spec, "redis://unused" if store_spec.redis else "postgresql://unused")
    out = Expected()
    for record in records:
        op = pipeline.process(record)
        if isinstance(op, Upsert | Delete):
            # The store's own (pure, I/O-free) conversion decides stage-`store` dead letters.
            _, rejected = store.prepare([Change(record.partition, record.offset, record.timestamp, op)])
            if rejected:
                out.dead.append((record, rejected[0].dead_letter))
                out.ops["deadLetter"] += 1
                continue
            out.changelog.append((record, op))
            out.ops[op.kind] += 1
            key = render_key(op.key)
            if isinstance(op, Upsert):
                out.rows[key] = dict(op.row)
            else:
                out.rows.pop(key, None)
        elif isinstance(op, DeadLetter):
            out.dead.append((record, op))
            out.ops["deadLetter"] += 1
        else:
            out.ops["skip"] += 1
    return out


def redis_contents(url: str, prefix: str, structure: str = "hash") -> dict[str, dict[str, Any]]:
    """key -> row of the Redis rows under `prefix`; an ordered store's order field (ORDER_FIELD,
    not a field of the spec) left out, so rows compare with what the spec's fields give."""
    client = redis.Redis.from_url(url)
    try:
        keys = [k for k in client.scan_iter(match=prefix.encode() + b"*", count=1000) if not k.startswith(b"\xff")]
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.get(key) if structure == "json" else pipe.hgetall(key)
        values = pipe.execute()
    finally:
        client.close()
    out: dict[str, dict[str, Any]] = {}
    for key, value in zip(keys, values, strict=True):
        name = key.decode()[len(prefix):]
        if structure == "json":
            out[name] = json.loads(value)
        else:
            out[name] = {k.decode(): v.decode() for k, v in value.items() if k.decode() != ORDER_FIELD}
    return out


def redis_ttls(url: str, prefix: str) -> list[int]:
    client = redis.Redis.from_url(url)
    try:
        keys = [k for k in client.scan_iter(match=prefix.encode() + b"*", count=1000) if not k.startswith(b"\xff")]
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.pttl(key)
        return [int(t) for t in pipe.execute()]
    finally:
        client.close()


def expected_redis(expected: Expected, product: DataProduct, structure: str = "hash") -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, row in expected.rows.items():
        if structure == "json":
            out[key] = json.loads(json.dumps({name: row.get(name) for name in product.fields}))
        else:
            out[key] = {name: encode_value(v) for name, v in row.items() if v is not None}
    return out


def postgres_rows(url: str, schema: str, table: str) -> list[dict[str, Any]]:
    with psycopg.connect(url, autocommit=True) as connection:
        cursor = connection.execute(f'SELECT * FROM "{schema}"."{table}"')
        names = [d.name for d in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _normal(value: Any) -> Any:
    """One comparable form for a value read from Postgres or converted for it."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value.normalize()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        return value.isoformat()  # as the column's converter writes it
    return str(value)


def expected_postgres_row(product: DataProduct, store_spec: StoreSpec, row: dict[str, Any]) -> dict[str, Any]:
    assert store_spec.postgres is not None
    out: dict[str, Any] = {}
    for name in product.fields:
        kind = store_spec.postgres.columns.get(name, "text")
        text = converter(kind)(row.get(name))
        if text is None:
            out[name] = None
        elif kind == "numeric":
            out[name] = Decimal(text).normalize()
        elif kind in ("integer", "bigint"):
            out[name] = int(text)
        else:
            out[name] = text
    return out


def actual_postgres_upsert(url: str, product: DataProduct, store_spec: StoreSpec) -> dict[str, dict[str, Any]]:
    assert store_spec.postgres is not None
    rows = postgres_rows(url, store_spec.postgres.db_schema, product.table(store_spec))
    key = product.key_fields
    return {":".join(str(r[k]) for k in key): {n: _normal(r[n]) for n in product.fields} for r in rows}


def expected_postgres_upsert(expected: Expected, product: DataProduct, store_spec: StoreSpec) -> dict[str, Any]:
    return {k: expected_postgres_row(product, store_spec, row) for k, row in expected.rows.items()}


# -- consumer processes ----------------------------------------------------------------------


class ConsumerProcess:
    """One `python -m provisioner consume` subprocess, with its status file and log."""

    def __init__(self, spec: Path, store: str, bootstrap: str, store_url: str, workdir: Path, name: str,
                 env: dict[str, str] | None = None, kafka_config: Path | None = None) -> None:
        self.spec = spec
        self.kafka_config = kafka_config
        self.store = store
        self.bootstrap = bootstrap
        self.store_url = store_url
        self.status_path = workdir / f"{name}.status.json"
        self.log_path = workdir / f"{name}.log"
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> ConsumerProcess:
        assert self.proc is None or self.proc.poll() is not None
        self.status_path.unlink(missing_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "provisioner", "consume", "--spec", str(self.spec), "--store", self.store,
             "--bootstrap", self.bootstrap, "--status-file", str(self.status_path),
             *(["--kafka-config", str(self.kafka_config)] if self.kafka_config else [])],
            # The URL travels in the environment, as `up` passes it: its password stays off `ps`.
            stdout=log, stderr=subprocess.STDOUT, env={**self.env, "PROVISIONER_STORE_URL": self.store_url},
            cwd=str(ROOT),
        )
        log.close()
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self) -> dict[str, Any]:
        status = read_status(self.status_path)
        return status.to_dict() if status is not None else {}

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.2,
              on_timeout: Callable[[], str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            detail = on_timeout() if on_timeout else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{detail}")
        time.sleep(interval)


def store_positions(product: DataProduct, store_spec: StoreSpec, url: str) -> dict[int, int]:
    store = open_store(product, store_spec, url)
    try:
        return store.read_positions()
    finally:
        store.close()


def wait_caught_up(product: DataProduct, store_spec: StoreSpec, url: str, ends: dict[int, int], timeout: float,
                   consumers: Sequence[ConsumerProcess] = ()) -> None:
    """Until the positions kept in the store reach the topic's end offsets."""

    def caught_up() -> bool:
        try:
            positions = store_positions(product, store_spec, url)
        except Exception:
            return False
        return all(positions.get(p, 0) >= o for p, o in ends.items() if o > 0)

    def detail() -> str:
        try:
            positions: Any = store_positions(product, store_spec, url)
        except Exception as error:
            positions = error
        logs = "\n".join(f"--- {c.log_path.name}\n{c.log()[-3000:]}" for c in consumers)
        return f"positions {positions}, ends {ends}\n{logs}"

    wait_for(caught_up, timeout, "the store to catch up", interval=0.3, on_timeout=detail)


def read_dead_letters(bootstrap: KafkaTarget, topic: str, expected: int, timeout: float = 60.0) -> list[Record]:
    """The dead-letter topic's records, once it holds at least `expected` of them."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            ends = end_offsets(bootstrap, topic, timeout=2)
        except Exception:
            ends = {}
        if sum(ends.values()) >= expected:
            return read_topic(bootstrap, topic)
        if time.monotonic() > deadline:
            raise AssertionError(f"{topic} holds {sum(ends.values())} records, expected {expected}")
        time.sleep(0.3)
