"""Schema'd streams end to end: records written by confluent-kafka's real Avro and JSON Schema
serializers against the dev registry, consumed by the store consumer from the real broker into
real Redis and Postgres.

- differential: the same events as Avro (every logical type, unions, nested records, maps, arrays,
  enums, null optional fields) and as JSON hydrate both stores identically;
- evolution: a new schema version mid-stream, a field added, no restart;
- a named type from another subject (a schema reference);
- hostile bytes: each a `decode` dead letter with its original bytes, the consumer unharmed;
- the registry stopped mid-run: no dead letter, status says so, resumes when it is back;
  wrong credentials: status says authentication;
- jsonschema: the registered schema is enforced (stage `schema`).
"""

from __future__ import annotations

import base64
import json
import random
import struct
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from provisioner.errors import ConfigurationError
from provisioner.pipeline.encoding import format_duration, format_timestamp
from provisioner.runtime.consumer import EXIT_STOPPED, StoreConsumer
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.stores.registry import open_store
from provisioner.stream.settings import KafkaSettings, KafkaTarget
from tests.integration import harness as h
from tests.integration.registry import TestRegistry
from tests.integration.test_consumer_stores import reset_store

ORDER_AVRO: dict[str, Any] = {
    "type": "record", "name": "Order", "namespace": "com.shop", "fields": [
        {"name": "order_id", "type": "string"},
        {"name": "qty", "type": "long"},
        {"name": "amount", "type": "double"},
        {"name": "score", "type": "float"},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
        {"name": "placed_at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "shipped_at", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}],
         "default": None},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "prep", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "tier", "type": {"type": "enum", "name": "Tier", "symbols": ["GOLD", "SILVER", "BRONZE"]}},
        {"name": "customer", "type": {"type": "record", "name": "Customer", "fields": [
            {"name": "id", "type": "string"}, {"name": "vip", "type": "boolean"}]}},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "tags", "type": {"type": "map", "values": "string"}},
        {"name": "items", "type": {"type": "array", "items": {"type": "record", "name": "Item", "fields": [
            {"name": "sku", "type": "string"}, {"name": "n", "type": "int"}]}}},
        {"name": "raw", "type": "bytes"},
    ]}

# The same spec reads both topics: every expression gives the same value from an Avro event and
# from its JSON form (timestamps and durations as their RFC 3339 / seconds text, bytes as base64).
ORDER_FIELDS = {
    "order_id": "record.key",
    "qty": "event.qty",
    "total": "event.amount * double(event.qty)",
    "score": "event.score",
    "price": "event.price",
    "placed_at": "timestamp(string(event.placed_at))",
    "shipped": "event.shipped_at == null ? 'no' : string(event.shipped_at)",
    "day": "string(event.day)",
    "prep": "string(event.prep)",
    "ref": "event.ref",
    "tier": "event.tier",
    "customer": "event.customer.id",
    "vip": "event.customer.vip",
    "note": "event.note",
    "has_note": "has(event.note)",
    "tags": "event.tags",
    "skus": "event.items.map(i, i.sku)",
    "items": "size(event.items)",
    "raw": "event.raw",
}
PG_COLUMNS = {"qty": "bigint", "total": "double precision", "price": "numeric", "placed_at": "timestamptz",
              "tags": "jsonb", "skus": "jsonb", "vip": "boolean"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestRegistry]:
    running = TestRegistry(tmp_path_factory.mktemp("registry"))
    running.start()
    yield running
    running.stop()


@pytest.fixture
def client(registry: TestRegistry) -> Iterator[SchemaRegistryClient]:
    """confluent-kafka's registry client, as the serializers use it (closed after the test)."""
    with SchemaRegistryClient(registry.client_config()) as opened:
        yield opened


def _float32(value: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def avro_events(count: int, seed: int) -> list[dict[str, Any]]:
    """Orders as the Avro serializer takes them (datetimes, dates, times, Decimals, bytes)."""
    rng = random.Random(seed)
    events = []
    for i in range(count):
        placed = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(10**7),
                                                              microseconds=rng.randrange(10**6))
        events.append({
            "order_id": f"o{rng.randrange(count // 2)}", "qty": rng.choice([0, 1, 2, 7]),
            "amount": rng.choice([9.99, 120.5, 0.1, 1e-7]), "score": _float32(rng.random()),
            "price": Decimal(rng.randrange(10**8)) / 100, "placed_at": placed,
            "shipped_at": None if i % 3 else placed + timedelta(hours=5),
            "day": date(2026, 1, 1) + timedelta(days=rng.randrange(400)),
            "prep": time(rng.randrange(24), rng.randrange(60), rng.randrange(60), rng.randrange(1000) * 1000),
            "ref": str(uuid.UUID(int=rng.getrandbits(128))), "tier": rng.choice(["GOLD", "SILVER", "BRONZE"]),
            "customer": {"id": f"c{rng.randrange(50)}", "vip": rng.random() < 0.3},
            "note": None if i % 4 else f"note {i} ü",
            "tags": {f"k{j}": f"v{rng.randrange(9)}" for j in range(rng.randrange(3))},
            "items": [{"sku": f"s{rng.randrange(99)}", "n": rng.randrange(1, 5)} for _ in range(rng.randrange(4))],
            "raw": rng.randbytes(rng.randrange(6)),
        })
    return events


def json_form(event: dict[str, Any]) -> dict[str, Any]:
    """The event as the JSON a JSON producer would have written for the same order."""
    out = dict(event)
    out["price"] = float(event["price"])
    out["placed_at"] = format_timestamp(event["placed_at"])
    shipped = event["shipped_at"]
    # timestamp-millis: the serializer keeps whole milliseconds.
    out["shipped_at"] = None if shipped is None else format_timestamp(
        shipped.replace(microsecond=shipped.microsecond // 1000 * 1000))
    out["day"] = format_timestamp(datetime.combine(event["day"], time(0), UTC))
    prep: time = event["prep"]
    out["prep"] = format_duration(timedelta(hours=prep.hour, minutes=prep.minute, seconds=prep.second,
                                            microseconds=prep.microsecond))
    out["raw"] = base64.b64encode(event["raw"]).decode()
    return out


def write_spec(directory: Path, name: str, topic: str, fmt: str, fields: dict[str, str] | None = None,
               filter_: str | None = "event.qty > 0") -> DataProduct:
    document = {
        "apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct",
        "metadata": {"name": name, "namespace": "itest"},
        "spec": {
            "source": {"topic": topic, "format": fmt},
            **({"filter": filter_} if filter_ else {}),
            "fields": fields or ORDER_FIELDS, "key": next(iter(fields or ORDER_FIELDS)),
            "stores": [{"name": "cache", "redis": {"keyPrefix": f"{name}:"}},
                       {"name": "db", "postgres": {"table": name.replace("-", "_"), "columns": {
                           k: v for k, v in PG_COLUMNS.items() if k in (fields or ORDER_FIELDS)}}}],
            "errors": {"mode": "deadLetter", "deadLetterTopic": f"{name}.dlq"},
            "consumer": {"batchSize": 200, "batchLatency": "50ms"},
        },
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return h.load_product(path)


class Running:
    """A StoreConsumer on a thread (the consumer's own pipeline, registry client included)."""

    def __init__(self, product: DataProduct, store_spec: StoreSpec, url: str, kafka: KafkaTarget) -> None:
        self.consumer = StoreConsumer(product, store_spec, open_store(product, store_spec, url), kafka)
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.code = self.consumer.run()

    def __enter__(self) -> Running:
        if self.thread.ident is None:  # `hydrate` already started it
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.consumer.stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the consumer did not stop"
        assert self.code == EXIT_STOPPED, self.consumer.status.last_error


def hydrate(product: DataProduct, store_spec: StoreSpec, url: str, kafka: KafkaTarget,
            records: int | None) -> Running:
    """A new consumer of an emptied store, once it read `records` (None: at once)."""
    reset_store(product, store_spec, url)
    running = Running(product, store_spec, url, kafka)
    running.__enter__()
    if records is None:
        return running
    status = running.consumer.status
    h.wait_for(lambda: (status.records >= records and status.lag == 0) or running.code is not None, 120,
               f"{product.name}/{store_spec.name} to read {records} records",
               on_timeout=lambda: f"{status.state} {status.last_error}")
    return running


def contents(product: DataProduct, store_spec: StoreSpec, url: str) -> dict[str, Any]:
    if store_spec.redis is not None:
        return h.redis_contents(url, product.key_prefix(store_spec))
    return h.actual_postgres_upsert(url, product, store_spec)


def store_url(store_spec: StoreSpec, redis_server: Any, postgres_server: Any) -> str:
    return str(redis_server.url if store_spec.redis is not None else postgres_server.url)


def hydrated_pairs(products: tuple[DataProduct, DataProduct], kafka: KafkaTarget, records: int, redis_server: Any,
                   postgres_server: Any) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Two specs with the same stores over the same events in two formats: for each store, the
    contents of both once each read `records` records, none a dead letter."""
    for index in range(len(products[0].spec.stores)):
        results = []
        for product in products:
            store_spec = product.spec.stores[index]
            url = store_url(store_spec, redis_server, postgres_server)
            with hydrate(product, store_spec, url, kafka, records) as running:
                assert running.consumer.status.dead_letters == 0, running.consumer.status.last_error
                results.append(contents(product, store_spec, url))
        yield results[0], results[1]


def serialize(serializer: Any, topic: str, value: Any) -> bytes:
    return bytes(serializer(value, SerializationContext(topic, MessageField.VALUE)))


def test_avro_events_hydrate_both_stores_exactly_as_their_json_form(
    registry: TestRegistry, client: SchemaRegistryClient, kafka_bootstrap: str, redis_server: Any, postgres_server: Any, topic: str,
    tmp_path: Path,
) -> None:
    events = avro_events(300, seed=5)
    serializer = AvroSerializer(client, json.dumps(ORDER_AVRO))
    tombstones = {40, 170}
    avro_records = [(e["order_id"].encode(), None if i in tombstones else serialize(serializer, topic, e), [])
                    for i, e in enumerate(events)]
    json_topic = f"{topic}.json"
    json_records = [(e["order_id"].encode(), None if i in tombstones else json.dumps(json_form(e)).encode(), [])
                    for i, e in enumerate(events)]
    for name, records in ((topic, avro_records), (json_topic, json_records)):
        h.create_topic(kafka_bootstrap, name, partitions=3)
        h.produce(kafka_bootstrap, name, records)
    avro_product = write_spec(tmp_path, "avro-orders", topic, "avro")
    json_product = write_spec(tmp_path, "json-orders", json_topic, "json")
    for avro_rows, json_rows in hydrated_pairs((avro_product, json_product), registry.settings(kafka_bootstrap),
                                               len(events), redis_server, postgres_server):
        assert len(avro_rows) > 50
        differing = {(k, f, v, json_rows.get(k, {}).get(f)) for k, row in avro_rows.items() for f, v in row.items()
                     if json_rows.get(k, {}).get(f) != v}
        assert not differing, sorted(differing)[:5]
        assert avro_rows == json_rows
    sample = next(iter(avro_rows.values()))
    assert sample["placed_at"] is not None and sample["tier"] in ("GOLD", "SILVER", "BRONZE")


def test_a_new_schema_version_mid_stream_needs_no_restart(
    registry: TestRegistry, client: SchemaRegistryClient, kafka_bootstrap: str, redis_server: Any, topic: str, tmp_path: Path,
) -> None:
    v1 = {"type": "record", "name": "Reading", "namespace": "com.iot", "fields": [
        {"name": "id", "type": "string"}, {"name": "celsius", "type": "double"}]}
    v2 = {**v1, "fields": [*v1["fields"], {"name": "unit", "type": "string", "default": "C"}]}
    fields = {"id": "event.id", "celsius": "event.celsius",
              "unit": "has(event.unit) ? event.unit : 'unknown'"}
    product = write_spec(tmp_path, "readings", topic, "avro", fields=fields, filter_=None)
    store_spec = product.spec.stores[0]
    h.create_topic(kafka_bootstrap, topic, partitions=1)
    first = AvroSerializer(client, json.dumps(v1))
    h.produce(kafka_bootstrap, topic, [(f"r{i}".encode(), serialize(first, topic, {"id": f"r{i}", "celsius": i / 2}),
                                        []) for i in range(20)])
    with hydrate(product, store_spec, redis_server.url, registry.settings(kafka_bootstrap), 20) as running:
        second = AvroSerializer(client, json.dumps(v2))
        h.produce(kafka_bootstrap, topic, [(f"s{i}".encode(), serialize(second, topic, {
            "id": f"s{i}", "celsius": -1.5, "unit": "F"}), []) for i in range(10)])
        status = running.consumer.status
        h.wait_for(lambda: status.records >= 30 and status.lag == 0, 60, "the v2 records")
        rows = contents(product, store_spec, redis_server.url)
        assert status.dead_letters == 0
    assert {rows[f"r{i}"]["unit"] for i in range(20)} == {"unknown"}
    assert {rows[f"s{i}"]["unit"] for i in range(10)} == {"F"}
    assert rows["r3"]["celsius"] == "1.5"
    assert client.get_latest_version(f"{topic}-value").version == 2


def test_a_named_type_from_another_subject(
    registry: TestRegistry, client: SchemaRegistryClient, kafka_bootstrap: str, redis_server: Any, topic: str, tmp_path: Path,
) -> None:
    money = {"type": "record", "name": "Money", "namespace": "com.fin", "fields": [
        {"name": "cents", "type": "long"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}
    client.register_schema("com.fin.Money", Schema(json.dumps(money), "AVRO"))
    invoice = {"type": "record", "name": "Invoice", "namespace": "com.fin", "fields": [
        {"name": "id", "type": "string"}, {"name": "due", "type": "com.fin.Money"},
        {"name": "paid", "type": ["null", "com.fin.Money"], "default": None}]}
    serializer = AvroSerializer(client, Schema(json.dumps(invoice), "AVRO", references=[
        SchemaReference("com.fin.Money", "com.fin.Money", 1)]))
    fields = {"id": "event.id", "due": "event.due.cents", "due_at": "event.due.at",
              "paid": "event.paid == null ? 0 : event.paid.cents"}
    product = write_spec(tmp_path, "invoices", topic, "avro", fields=fields, filter_=None)
    h.create_topic(kafka_bootstrap, topic, partitions=1)
    at = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    h.produce(kafka_bootstrap, topic, [
        (b"i1", serialize(serializer, topic, {"id": "i1", "due": {"cents": 500, "at": at}, "paid": None}), []),
        (b"i2", serialize(serializer, topic, {"id": "i2", "due": {"cents": 70, "at": at},
                                              "paid": {"cents": 70, "at": at}}), []),
    ])
    with hydrate(product, product.spec.stores[0], redis_server.url, registry.settings(kafka_bootstrap), 2):
        rows = contents(product, product.spec.stores[0], redis_server.url)
    assert rows == {"i1": {"id": "i1", "due": "500", "due_at": "2026-03-01T12:30:00Z", "paid": "0"},
                    "i2": {"id": "i2", "due": "70", "due_at": "2026-03-01T12:30:00Z", "paid": "70"}}


def test_hostile_bytes_are_decode_dead_letters_with_their_bytes_kept(
    registry: TestRegistry, client: SchemaRegistryClient, kafka_bootstrap: str, redis_server: Any, topic: str, tmp_path: Path,
) -> None:
    node = {"type": "record", "name": "Node", "namespace": "com.deep", "fields": [
        {"name": "id", "type": "string"}, {"name": "next", "type": ["null", "Node"], "default": None}]}
    other = {"type": "record", "name": "Other", "namespace": "com.deep", "fields": [
        {"name": "flag", "type": "boolean"}, {"name": "n", "type": "double"}]}
    good = AvroSerializer(client, json.dumps(node))
    valid = serialize(good, topic, {"id": "ok", "next": {"id": "child", "next": None}})
    node_id = int.from_bytes(valid[1:5], "big")
    other_bytes = serialize(AvroSerializer(client, json.dumps(other)), f"{topic}.other", {"flag": True, "n": 2.5})
    header = valid[:5]
    hostile = {
        "no magic byte": b'{"id": "json, not avro"}',
        "unknown id": b"\x00\x00\x0f\x42\x3f" + valid[5:],
        "truncated": valid[:-3],
        "other schema's payload": header + other_bytes[5:],
        "200,000 deep": header + b"\x02x\x02" * 200_000 + b"\x02x\x00",
    }
    assert node_id > 0
    message = decode_dead_letters(write_spec(tmp_path, "deep", topic, "avro", fields={"id": "event.id"}, filter_=None),
                                  registry.settings(kafka_bootstrap), redis_server, valid, hostile)
    assert "magic byte" in message["no magic byte"]
    assert "not known" in message["unknown id"]
    assert "nested" in message["200,000 deep"]


def decode_dead_letters(product: DataProduct, kafka: KafkaSettings, redis_server: Any, valid: bytes,
                        hostile: dict[str, bytes]) -> dict[str, str]:
    """Records of `valid` bytes around the `hostile` ones (keyed by their names) through the
    product's first store: each hostile one a `decode` dead letter with its bytes kept, the valid
    ones upserted. The dead letters' messages by name."""
    topic = product.spec.source.topic
    h.create_topic(kafka.bootstrap, topic, partitions=1)
    h.produce(kafka.bootstrap, topic, [(b"k0", valid, []), *((name.encode(), raw, []) for name, raw in hostile.items()),
                                       (b"k1", valid, [])])
    with hydrate(product, product.spec.stores[0], redis_server.url, kafka, len(hostile) + 2) as running:
        assert running.consumer.status.dead_letters == len(hostile)
        assert running.consumer.status.ops["upsert"] == 2
    dead = h.read_dead_letters(kafka.bootstrap, product.dead_letter_topic, len(hostile))
    by_key = {r.key.decode(): r for r in dead if r.key is not None}
    assert set(by_key) == set(hostile)
    for name, raw in hostile.items():
        headers = dict(by_key[name].headers)
        assert headers["provisioner.error.stage"] == b"decode", (name, headers)
        assert by_key[name].value == raw
    return {name: dict(r.headers)["provisioner.error.message"].decode() for name, r in by_key.items()}


def test_a_registry_that_goes_away_is_waited_for_never_a_dead_letter(
    kafka_bootstrap: str, redis_server: Any, topic: str, tmp_path: Path,
) -> None:
    registry = TestRegistry(tmp_path / "own", user_info="reader:s3cret")
    (tmp_path / "own").mkdir()
    registry.start()
    client = SchemaRegistryClient(registry.client_config())
    try:
        v1 = {"type": "record", "name": "Ping", "fields": [{"name": "id", "type": "string"}]}
        v2 = {**v1, "fields": [*v1["fields"], {"name": "seq", "type": "long", "default": 0}]}
        product = write_spec(tmp_path, "pings", topic, "avro", fields={"id": "event.id"}, filter_=None)
        store_spec = product.spec.stores[0]
        h.create_topic(kafka_bootstrap, topic, partitions=1)
        first = AvroSerializer(client, json.dumps(v1))
        h.produce(kafka_bootstrap, topic, [(b"a", serialize(first, topic, {"id": "a"}), [])])
        later = [(f"b{i}".encode(), serialize(AvroSerializer(client, json.dumps(v2)), topic, {"id": f"b{i}", "seq": i}),
                  []) for i in range(5)]

        wrong = registry.settings(kafka_bootstrap, user_info="reader:n0tit")
        with hydrate(product, store_spec, redis_server.url, wrong, None) as refused:
            status = refused.consumer.status
            h.wait_for(lambda: status.last_error is not None and "HTTP 40" in status.last_error, 60,
                       "the refusal in the status")
            assert status.dead_letters == 0
            assert "s3cret" not in status.last_error and "n0tit" not in status.last_error

        with hydrate(product, store_spec, redis_server.url, registry.settings(kafka_bootstrap), 1) as running:
            registry.stop()
            h.produce(kafka_bootstrap, topic, later)  # v2's id: not cached yet, the registry is down
            status = running.consumer.status
            h.wait_for(lambda: status.state == "backoff" and "does not answer" in (status.last_error or ""), 60,
                       "the consumer to wait for the registry", on_timeout=lambda: str(status.last_error))
            assert status.dead_letters == 0
            assert status.records == 1
            registry.start()  # same port; its journal gives the same ids back
            h.wait_for(lambda: status.records >= 6 and status.lag == 0, 60, "the records after the outage",
                       on_timeout=lambda: f"{status.state} {status.last_error}")
            assert status.dead_letters == 0
            assert status.last_error is None
            rows = contents(product, store_spec, redis_server.url)
        assert set(rows) == {"a", "b0", "b1", "b2", "b3", "b4"}
    finally:
        client.close()
        registry.stop()


def test_jsonschema_records_must_satisfy_their_registered_schema(
    registry: TestRegistry, client: SchemaRegistryClient, kafka_bootstrap: str, redis_server: Any, postgres_server: Any, topic: str,
    tmp_path: Path,
) -> None:
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
              "properties": {"id": {"type": "string"}, "qty": {"type": "integer", "minimum": 0},
                             "tags": {"type": "array", "items": {"type": "string"}}},
              "required": ["id", "qty"]}
    serializer = JSONSerializer(json.dumps(schema), client)
    events = [{"id": f"j{i}", "qty": i, "tags": ["a"] * (i % 3)} for i in range(20)]
    records = [(e["id"].encode(), serialize(serializer, topic, e), []) for e in events]
    header = records[0][1][:5]
    records.append((b"bad", header + json.dumps({"id": "bad", "qty": -1}).encode(), []))
    records.append((b"garbled", header + b"{not json", []))
    h.create_topic(kafka_bootstrap, topic, partitions=1)
    h.produce(kafka_bootstrap, topic, records)
    fields = {"id": "event.id", "qty": "event.qty", "tags": "event.tags"}
    product = write_spec(tmp_path, "jsonschema-orders", topic, "jsonschema", fields=fields, filter_=None)
    json_topic = f"{topic}.json"
    h.create_topic(kafka_bootstrap, json_topic, partitions=1)
    h.produce(kafka_bootstrap, json_topic, [(e["id"].encode(), json.dumps(e).encode(), []) for e in events])
    twin = write_spec(tmp_path, "json-twin", json_topic, "json", fields=fields, filter_=None)
    kafka = registry.settings(kafka_bootstrap)
    for index in range(2):
        store_spec = product.spec.stores[index]
        url = store_url(store_spec, redis_server, postgres_server)
        with hydrate(product, store_spec, url, kafka, len(records)) as running:
            assert running.consumer.status.dead_letters == 2
            rows = contents(product, store_spec, url)
        with hydrate(twin, twin.spec.stores[index], url, kafka, len(events)):
            assert rows == contents(twin, twin.spec.stores[index], url)
    dead = h.read_dead_letters(kafka_bootstrap, product.dead_letter_topic, 4)
    stages = {(r.key, dict(r.headers)["provisioner.error.stage"]) for r in dead}
    assert stages == {(b"bad", b"schema"), (b"garbled", b"decode")}


def test_up_starts_the_dev_registry_for_a_schema_d_spec_and_dev_registry_drives_it(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from provisioner.cli.app import app
    from provisioner.local import devregistry

    said: list[str] = []
    assert devregistry.with_registry({"json", "string"}, "127.0.0.1:9092", tmp_path, said.append) == "127.0.0.1:9092"
    try:
        kafka = devregistry.with_registry({"json", "avro"}, "127.0.0.1:9092", tmp_path, said.append)
        assert isinstance(kafka, KafkaSettings) and kafka.schema_registry is not None
        assert kafka.bootstrap == "127.0.0.1:9092" and kafka.config_file == str(tmp_path / "kafka.properties")
        url = kafka.schema_registry.url
        assert any("starting the dev registry" in line for line in said)
        with SchemaRegistryClient({"url": url}) as client:
            schema_id = client.register_schema("s-value", Schema('"string"', "AVRO"))
        runner = CliRunner()
        status = runner.invoke(app, ["dev", "registry", "status", "--state-dir", str(tmp_path), "-o", "json"])
        assert json.loads(status.stdout)["url"] == url
        assert runner.invoke(app, ["dev", "registry", "down", "--state-dir", str(tmp_path)]).exit_code == 0
        assert devregistry.status(tmp_path) is None
        again = runner.invoke(app, ["dev", "registry", "up", "--state-dir", str(tmp_path)])
        assert again.exit_code == 0 and again.stdout.strip() == url  # same address, same ids
        with SchemaRegistryClient({"url": url}) as client:
            assert client.get_schema(schema_id).schema_str == '"string"'
        secured = KafkaSettings("127.0.0.1:9092", config_file=str(tmp_path / "client.properties"))
        with pytest.raises(ConfigurationError, match="needs a schema registry"):
            devregistry.with_registry({"avro"}, secured, tmp_path, said.append)
    finally:
        devregistry.down(tmp_path, purge=True)


def test_validate_checks_an_avro_spec_s_fields_against_the_registered_schema(
    registry: TestRegistry, client: SchemaRegistryClient, topic: str, tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    from provisioner.cli.app import app

    client.register_schema(f"{topic}-value", Schema(json.dumps(ORDER_AVRO), "AVRO"))
    fields = {"order_id": "record.key", "total": "event.amout * double(event.qty)", "tier": "event.tier"}
    write_spec(tmp_path, "typo", topic, "avro", fields=fields)
    unregistered = write_spec(tmp_path, "later", f"{topic}.later", "avro", fields={"id": "event.nothing"})
    properties = tmp_path / "client.properties"
    properties.write_text(f"bootstrap.servers=127.0.0.1:9\nschema.registry.url={registry.url}\n")
    runner = CliRunner()
    result = runner.invoke(app, ["validate", str(tmp_path / "typo.yaml"), str(tmp_path / "later.yaml"),
                                 "--kafka-config", str(properties), "-o", "json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    (finding,) = report["findings"]
    assert finding["file"].endswith("typo.yaml") and finding["path"] == "spec.fields.total"
    assert finding["message"] == (f"event.amout: subject {topic}-value version 1 has no field 'amout' "
                                  f"(did you mean 'amount'?) (column 7 of the expression)")
    assert (finding["line"], finding["column"]) == (13, 18)  # the `a` of `amout`
    (note,) = report["notes"]
    assert note["file"].endswith("later.yaml") and "not checked" in note["message"]
    assert unregistered.spec.source.topic in note["message"]
    offline = runner.invoke(app, ["validate", str(tmp_path / "typo.yaml")], env={"PROVISIONER_KAFKA_CONFIG": ""})
    assert offline.exit_code == 0, offline.output  # without a registry the spec is valid


def test_plan_says_when_the_latest_schema_dropped_a_field_an_expression_uses(
    registry: TestRegistry, client: SchemaRegistryClient, topic: str, tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    from provisioner.cli.app import app

    v1 = {"type": "record", "name": "Stock", "fields": [{"name": "sku", "type": "string"},
                                                        {"name": "count", "type": "long"}]}
    client.register_schema(f"{topic}-value", Schema(json.dumps(v1), "AVRO"))
    write_spec(tmp_path, "stock", topic, "avro", fields={"sku": "event.sku", "count": "event.count"},
               filter_=None)
    properties = tmp_path / "client.properties"
    properties.write_text(f"bootstrap.servers=127.0.0.1:9\nschema.registry.url={registry.url}\n")
    args = ["plan", str(tmp_path / "stock.yaml"), "--kafka-config", str(properties), "--state-dir",
            str(tmp_path / "state"), "-o", "json"]
    runner = CliRunner()
    before = runner.invoke(app, args)
    assert before.exit_code == 0, before.output
    assert "schema" not in json.loads(before.stdout)
    v2 = {**v1, "fields": [v1["fields"][0], {"name": "units", "type": "long", "default": 0}]}
    client.register_schema(f"{topic}-value", Schema(json.dumps(v2), "AVRO"))
    after = runner.invoke(app, args)
    assert after.exit_code == 0, after.output
    (finding,) = json.loads(after.stdout)["schema"]["findings"]
    assert finding["path"] == "spec.fields.count"
    assert f"subject {topic}-value version 2 has no field 'count'" in finding["message"]
