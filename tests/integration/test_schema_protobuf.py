"""Protobuf streams end to end: records written by confluent-kafka's real `ProtobufSerializer`
(message classes made by protoc from the `.proto` files, at test time) against the dev registry,
consumed from the real broker into real Redis and Postgres.

- differential: the same orders as Protobuf (well-known types, an enum, a nested message, a
  `.proto` imported from another subject, an optional field left unset, a map, a repeated message)
  and as JSON hydrate both stores identically;
- hostile bytes: each a `decode` dead letter with its original bytes, the consumer unharmed;
- `dev produce --format protobuf`: JSON Lines registered and written by our encoder, in the dev
  registry the command starts, read by the consumer as the serializer's records are.
"""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from google.protobuf import json_format

from provisioner.local import devregistry
from provisioner.pipeline.encoding import format_duration, format_timestamp
from provisioner.stream.settings import load_kafka_settings
from tests.integration import harness as h
from tests.integration.registry import TestRegistry
from tests.integration.test_schema_formats import (  # noqa: F401  (client, registry: fixtures)
    client,
    contents,
    decode_dead_letters,
    hydrate,
    hydrated_pairs,
    registry,
    serialize,
    write_spec,
)
from tests.proto_classes import message_classes

MONEY = """syntax = "proto3";
package fin;
message Money {
  string currency = 1;
  int64 cents = 2;
}
"""
ORDER = """syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/wrappers.proto";
import "fin/money.proto";

message Order {
  string order_id = 1;
  int64 qty = 2;
  double amount = 3;
  google.protobuf.Timestamp placed_at = 4;
  google.protobuf.Duration prep = 5;
  enum Tier { TIER_UNSPECIFIED = 0; GOLD = 1; SILVER = 2; }
  Tier tier = 6;
  message Customer { string id = 1; bool vip = 2; }
  Customer customer = 7;
  optional string note = 8;
  map<string, string> tags = 9;
  repeated Item items = 10;
  bytes raw = 11;
  google.protobuf.StringValue coupon = 12;
  fin.Money price = 13;
}
message Item {
  string sku = 1;
  int32 n = 2;
}
"""
FILES = {"fin/money.proto": MONEY, "order.proto": ORDER}
# One spec reads both topics: every expression gives the same value from a Protobuf event and
# from its JSON form (timestamps and durations as CEL's text of them, bytes as base64).
FIELDS = {
    "order_id": "record.key",
    "qty": "event.qty",
    "total": "event.amount * double(event.qty)",
    "placed_at": "timestamp(string(event.placed_at))",
    "prep": "string(event.prep)",
    "tier": "event.tier",
    "customer": "event.customer.id",
    "vip": "event.customer.vip",
    "note": "has(event.note) ? event.note : 'none'",
    "tags": "event.tags",
    "skus": "event.items.map(i, i.sku)",
    "raw": "event.raw",
    "coupon": "event.coupon == null ? 'none' : event.coupon",
    "cost": "event.price.currency + ' ' + string(event.price.cents)",
}


def orders(count: int, seed: int) -> list[dict[str, Any]]:
    """Orders in the proto3 JSON mapping (what `ParseDict` and `dev produce` read)."""
    rng = random.Random(seed)
    return [_order(rng, i, count) for i in range(count)]


def _order(rng: random.Random, i: int, count: int) -> dict[str, Any]:
    placed = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(10**7), microseconds=rng.randrange(10**6))
    event: dict[str, Any] = {
        "order_id": f"o{rng.randrange(count // 2)}", "qty": rng.choice([0, 1, 2, 2**40]),
        "amount": rng.choice([9.99, 120.5, 0.1]), "placed_at": format_timestamp(placed),
        "prep": f"{rng.randrange(10**5)}.{rng.randrange(10**6):06d}s", "tier": rng.choice(["GOLD", "SILVER"]),
        "customer": {"id": f"c{rng.randrange(50)}", "vip": rng.random() < 0.3},
        "tags": {"k": f"v{rng.randrange(9)}"} if i % 2 else {},
        "items": [{"sku": f"s{rng.randrange(99)}", "n": rng.randrange(1, 5)} for _ in range(rng.randrange(3))],
        "raw": base64.b64encode(rng.randbytes(rng.randrange(1, 6))).decode(),
        "price": {"currency": rng.choice(["EUR", "USD"]), "cents": rng.randrange(10**6)},
    }
    if i % 4 == 0:  # optional fields left unset in the others
        event["note"] = f"note {i} ü"
    if i % 3 == 0:
        event["coupon"] = f"C{i}"
    return event


def json_form(event: dict[str, Any]) -> dict[str, Any]:
    """The order as a JSON producer would write it: what the Protobuf event reads as, spelled in
    JSON (a duration as CEL's text of it, an unset wrapper as null, the items' defaults present)."""
    seconds, fraction = event["prep"].removesuffix("s").split(".")
    prep = timedelta(seconds=int(seconds), microseconds=int(fraction))
    return {**event, "prep": format_duration(prep), "coupon": event.get("coupon"),
            "items": [{"sku": "", "n": 0} | item for item in event["items"]]}


def test_protobuf_events_hydrate_both_stores_exactly_as_their_json_form(
    registry: TestRegistry, client: SchemaRegistryClient, kafka_bootstrap: str, redis_server: Any,  # noqa: F811
    postgres_server: Any, topic: str, tmp_path: Path,
) -> None:
    (order,) = message_classes(tmp_path, FILES, "shop.Order")
    serializer = ProtobufSerializer(order, client)

    events = orders(240, seed=9)
    tombstones = {30, 150}
    proto_records: list[tuple[bytes, bytes | None, list[Any]]] = [(e["order_id"].encode(), None if i in tombstones else
                      serialize(serializer, topic, json_format.ParseDict(e, order())), [])
                     for i, e in enumerate(events)]
    json_topic = f"{topic}.json"
    json_records: list[tuple[bytes, bytes | None, list[Any]]] = [(e["order_id"].encode(), None if i in tombstones else json.dumps(json_form(e)).encode(), [])
                    for i, e in enumerate(events)]
    for name, records in ((topic, proto_records), (json_topic, json_records)):
        h.create_topic(kafka_bootstrap, name, partitions=3)
        h.produce(kafka_bootstrap, name, records)
    assert client.get_latest_version("fin/money.proto").version == 1  # the import, a subject of its own
    references = client.get_latest_version(f"{topic}-value").schema.references or []
    assert [r.name for r in references] == ["fin/money.proto"]
    proto_product = write_spec(tmp_path, "proto-orders", topic, "protobuf", fields=FIELDS, filter_="event.qty > 0")
    json_product = write_spec(tmp_path, "proto-json-orders", json_topic, "json", fields=FIELDS,
                              filter_="event.qty > 0")
    for proto_rows, json_rows in hydrated_pairs((proto_product, json_product), registry.settings(kafka_bootstrap),
                                                len(events), redis_server, postgres_server):
        assert len(proto_rows) > 40
        assert proto_rows == json_rows
    assert {row["note"] != "none" for row in proto_rows.values()} == {True, False}
    assert {row["coupon"] != "none" for row in proto_rows.values()} == {True, False}


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _nested(depth: int) -> bytes:
    """A Node whose `next` (field 2) nests `depth` levels deep."""
    sizes = [len(core := b"\x0a\x01x")]
    for _ in range(depth):
        sizes.append(1 + len(_varint(sizes[-1])) + sizes[-1])
    return b"".join(b"\x12" + _varint(size) for size in reversed(sizes[:-1])) + core


def test_hostile_protobuf_bytes_are_decode_dead_letters_with_their_bytes_kept(
    registry: TestRegistry, client: SchemaRegistryClient, kafka_bootstrap: str, redis_server: Any,  # noqa: F811
    topic: str, tmp_path: Path,
) -> None:
    node_proto = 'syntax = "proto3";\npackage deep;\nmessage Node { string id = 1; Node next = 2; }\n'
    (node,) = message_classes(tmp_path, {"node.proto": node_proto}, "deep.Node")
    valid = serialize(ProtobufSerializer(node, client), topic, node(id="ok-and-long-enough", next=node(id="c")))
    header = valid[:5]
    hostile = {
        "no magic byte": b'{"id": "json, not protobuf"}',
        "unknown id": b"\x00\x00\x0f\x42\x3f" + valid[5:],
        "truncated": valid[:-3],
        "bad message index": header + b"\x02\x0a" + valid[6:],
        "not a message": header + b"\x00\xff\xff\xff\xff",
        "200,000 deep": header + b"\x00" + _nested(200_000),
    }
    product = write_spec(tmp_path, "deep-proto", topic, "protobuf", fields={"id": "event.id"}, filter_=None)
    message = decode_dead_letters(product, registry.settings(kafka_bootstrap), redis_server, valid, hostile)
    assert "magic byte" in message["no magic byte"]
    assert "not known" in message["unknown id"]
    assert "names no message type" in message["bad message index"]
    assert "MaxDepth" in message["200,000 deep"]  # upb refuses it before Python recursion


def test_dev_produce_writes_json_lines_as_protobuf_through_the_dev_registry_it_starts(
    kafka_bootstrap: str, redis_server: Any, topic: str, tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    from provisioner.cli.app import app

    (tmp_path / "order.proto").write_text(ORDER.replace('import "fin/money.proto";\n', "").replace(
        "  fin.Money price = 13;\n", ""), encoding="utf-8")
    events = orders(40, seed=3)
    for event in events:
        del event["price"]
    lines = [json.dumps({"key": e["order_id"], "value": e}) for e in events]
    lines.insert(5, json.dumps({"key": "bad", "value": {"order_id": "x", "amout": 1.0}}))
    (tmp_path / "orders.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    state = tmp_path / "state"
    try:
        result = CliRunner().invoke(app, [
            "dev", "produce", topic, str(tmp_path / "orders.jsonl"), "--format", "protobuf", "--schema",
            str(tmp_path / "order.proto"), "--bootstrap", kafka_bootstrap, "--state-dir", str(state)])
        assert result.exit_code == 1, result.output  # the one line that does not fit
        assert "orders.jsonl:6: " in result.stderr and "amout" in result.stderr
        assert f"produced {len(events)} records to {topic}" in result.stdout
        kafka = load_kafka_settings(state / "kafka.properties", None)
        assert kafka is not None and kafka.schema_registry is not None
        with SchemaRegistryClient({"url": kafka.schema_registry.url}) as dev_client:
            latest = dev_client.get_latest_version(f"{topic}-value")
        assert latest.schema.schema_type == "PROTOBUF" and "message Order" in latest.schema.schema_str
        fields = {k: v for k, v in FIELDS.items() if k != "cost"}
        product = write_spec(tmp_path, "produced-orders", topic, "protobuf", fields=fields, filter_=None)
        store_spec = product.spec.stores[0]
        with hydrate(product, store_spec, redis_server.url, kafka, len(events)) as running:
            assert running.consumer.status.dead_letters == 0, running.consumer.status.last_error
            rows = contents(product, store_spec, redis_server.url)
        last = {e["order_id"]: json_form(e) for e in events}
        assert set(rows) == set(last)
        for key, event in last.items():
            assert rows[key]["tier"] == event["tier"] and rows[key]["prep"] == event["prep"]
            assert rows[key]["placed_at"] == event["placed_at"] and rows[key]["raw"] == event["raw"]
    finally:
        devregistry.down(state, purge=True)
