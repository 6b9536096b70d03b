"""JSON values written in the registry formats (`dev produce --format`, a test's `schema:`) are
byte for byte what confluent-kafka's real serializers write for the same values (their in-memory
`mock://` registry gives the ids), and a value that does not fit is refused with the reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from provisioner.formats.encode import EncodeError, schema_encoder
from provisioner.pipeline.schema_events import checked_encoder
from tests.proto_classes import message_classes

AVRO = {"type": "record", "name": "Order", "namespace": "shop", "fields": [
    {"name": "id", "type": "string"}, {"name": "qty", "type": "long"},
    {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "note", "type": ["null", "string"], "default": None},
    {"name": "raw", "type": "bytes"}]}
JSON_SCHEMA = {"type": "object", "properties": {"id": {"type": "string"}, "qty": {"type": "integer", "minimum": 0}},
               "required": ["id", "qty"]}
PROTO = """syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
message Order {
  string order_id = 1;
  int64 qty = 2;
  google.protobuf.Timestamp at = 3;
  enum Tier { BRONZE = 0; GOLD = 1; }
  Tier tier = 4;
  repeated string tags = 5;
  bytes raw = 6;
  optional string note = 7;
}
message Other { bool flag = 1; }
"""


@pytest.fixture
def client() -> Iterator[SchemaRegistryClient]:
    with SchemaRegistryClient.new_client({"url": "mock://encode"}) as opened:
        yield opened


def _serialize(serializer: Any, value: Any) -> bytes:
    return bytes(serializer(value, SerializationContext("t", MessageField.VALUE)))


def _schema_id(data: bytes) -> int:
    return int.from_bytes(data[1:5], "big")


def test_avro_values_are_written_as_the_avro_serializer_writes_them(client: SchemaRegistryClient) -> None:
    at = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    theirs = _serialize(AvroSerializer(client, json.dumps(AVRO)), {
        "id": "o1", "qty": 3, "price": Decimal("12.50"), "at": at, "note": None, "raw": b"\x00\xff"})
    _, encode = schema_encoder("avro", json.dumps(AVRO), _schema_id(theirs))
    ours = encode({"id": "o1", "qty": 3, "price": 12.5, "at": "2026-03-01T12:00:00.123456Z", "raw": "AP8="})
    assert ours == theirs
    with pytest.raises(EncodeError, match="does not fit the schema"):
        encode({"id": "o1", "qty": "three", "price": 1, "at": 0, "raw": ""})


def test_json_schema_values_are_written_as_the_json_serializer_writes_them(client: SchemaRegistryClient) -> None:
    value = {"id": "ö-1", "qty": 2, "tags": ["a"]}
    theirs = _serialize(JSONSerializer(json.dumps(JSON_SCHEMA), client), value)
    registered, encode = checked_encoder("jsonschema", json.dumps(JSON_SCHEMA), _schema_id(theirs))
    assert registered.schema_type == "JSON"
    assert encode(value) == theirs
    with pytest.raises(EncodeError, match=r"the consumer would refuse it: .*minimum"):
        encode({"id": "x", "qty": -1})


def test_protobuf_values_are_written_as_the_protobuf_serializer_writes_them(
    client: SchemaRegistryClient, tmp_path: Path,
) -> None:
    (order,) = message_classes(tmp_path, {"order.proto": PROTO}, "shop.Order")
    message = order(order_id="o1", qty=2**40, tier=1, tags=["a", "b"], raw=b"\x01\x02", note="n")
    message.at.FromDatetime(datetime(2026, 3, 1, 12, 0, 0, 5000, tzinfo=UTC))
    theirs = _serialize(ProtobufSerializer(order, client), message)
    registered, encode = checked_encoder("protobuf", PROTO, _schema_id(theirs))
    assert registered.schema_type == "PROTOBUF" and registered.text == PROTO
    ours = encode({"order_id": "o1", "qty": 2**40, "at": "2026-03-01T12:00:00.005Z", "tier": "GOLD",
                   "tags": ["a", "b"], "raw": "AQI=", "note": "n"})
    assert ours == theirs
    assert encode({"orderId": "o1"}) == _serialize(ProtobufSerializer(order, client), order(order_id="o1"))
    with pytest.raises(EncodeError, match=r"does not fit shop\.Order.*nope"):
        encode({"order_id": "o1", "nope": 1})
    with pytest.raises(EncodeError, match="must be a JSON object"):
        encode([1])


def test_a_schema_that_is_not_one_of_its_format_is_refused_before_anything_is_encoded() -> None:
    with pytest.raises(ValueError, match="no message type"):
        schema_encoder("protobuf", 'syntax = "proto3";', 1)
    with pytest.raises(ValueError):
        schema_encoder("protobuf", 'syntax = "proto3"; message M { Missing m = 1; }', 1)
    with pytest.raises(ValueError):
        schema_encoder("avro", '{"type": "record"}', 1)
    with pytest.raises(ValueError, match="not a schema-registry format"):
        schema_encoder("json", "{}", 1)


PROTO_TESTED = """
apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata: {name: p}
spec:
  source: {topic: t, format: protobuf}
  fields: {id: event.order_id, late: "event.at > timestamp('2026-01-01T00:00:00Z')", tier: event.tier}
  key: id
  stores: [{name: c, redis: {}}]
  tests:
    - name: encoded with the .proto file
      schema: order.proto
      given: [{value: {order_id: o1, at: "2026-03-01T00:00:00Z", tier: GOLD}}]
      expect: [{upsert: {key: [o1], fields: {id: o1, late: true, tier: GOLD}}}]
    - name: a field the message does not have
      schema: order.proto
      given: [{value: {order_id: o2, amount: 1}}]
      expect: [{skip: {}}]
"""


def test_spec_tests_of_a_protobuf_spec_encode_their_values_with_the_proto_file() -> None:
    from provisioner.pipeline.testing import run_tests
    from provisioner.spec.loader import load_text

    specs, findings = load_text(PROTO_TESTED)
    assert not findings
    outcomes = run_tests(specs[0].product, {"order.proto": PROTO})
    assert [o.passed for o in outcomes] == [True, False]
    assert outcomes[1].error is not None and "amount" in outcomes[1].error
