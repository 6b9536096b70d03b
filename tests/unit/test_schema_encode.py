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


def test_test_events_with_a_schema_file_encode_each_line_before_the_pipeline_reads_it(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from provisioner.cli.app import app

    spec = PROTO_TESTED.partition("  tests:")[0]
    (tmp_path / "p.yaml").write_text(spec, encoding="utf-8")
    (tmp_path / "order.proto").write_text(PROTO, encoding="utf-8")
    (tmp_path / "events.jsonl").write_text(
        '{"order_id": "o1", "at": "2026-03-01T00:00:00Z", "tier": "GOLD"}\n'
        '{"order_id": "o2", "amount": 1}\n'
        '{"key": "k", "value": null}\n'
        '{"orderId": "o3", "at": "2025-03-01T00:00:00Z"}\n', encoding="utf-8")
    args = ["test", str(tmp_path / "p.yaml"), "--events", str(tmp_path / "events.jsonl"), "-o", "json"]
    result = CliRunner().invoke(app, [*args, "--schema", str(tmp_path / "order.proto")])
    assert result.exit_code == 1, result.output  # line 2 does not fit the message
    (preview,) = json.loads(result.stdout)
    assert preview["ops"][0] == {"line": 1, "upsert": {"key": ["o1"], "fields": {"id": "o1", "late": True,
                                                                                   "tier": "GOLD"}}}
    assert [op["line"] for op in preview["ops"]] == [1, 3, 4]
    assert preview["ops"][2]["upsert"]["fields"] == {"id": "o3", "late": False, "tier": "BRONZE"}
    assert "events.jsonl:2: p: " in result.stderr and "amount" in result.stderr
    decoded = CliRunner().invoke(app, args)  # without --schema the lines are the decoded events
    assert [op["line"] for op in json.loads(decoded.stdout)[0]["ops"]] == [1, 2, 3, 4]
    (tmp_path / "bad.proto").write_text("message {", encoding="utf-8")
    refused = CliRunner().invoke(app, [*args, "--schema", str(tmp_path / "bad.proto")])
    assert refused.exit_code != 0 and "bad.proto: not a protobuf schema" in refused.stderr


def test_dev_produce_keys_are_encoded_from_the_line_s_key_as_written() -> None:
    from provisioner.cli.produce_formats import SchemaProducer
    from provisioner.pipeline.eventfile import parse_line

    _, long_key = checked_encoder("avro", '"long"', 7)
    _, string_value = checked_encoder("avro", json.dumps(AVRO), 8)
    producer = SchemaProducer(None, long_key, "n")
    raw = b'{"key": 42, "value": {"n": 5}}'
    line = parse_line(raw, 1, "n")
    assert line is not None
    assert producer.record(line, raw).key == b"\x00\x00\x00\x00\x07" + b"\x54"  # 42 zigzag, an int still
    by_field = b'{"n": 5, "id": "x"}'
    by_field_line = parse_line(by_field, 2, "n")
    assert by_field_line is not None
    record = producer.record(by_field_line, by_field)
    assert record.key == b"\x00\x00\x00\x00\x07\x0a" and record.value == by_field  # the value stays JSON
    with pytest.raises(EncodeError, match="does not fit"):
        producer.record(*_line(b'{"key": "not a number", "value": {}}'))
    valued = SchemaProducer(string_value, None, None)
    tombstone = b'{"key": "k", "value": null}'
    assert valued.record(*_line(tombstone)).value is None
    assert valued.record(*_line(tombstone)).key == "k"


def _line(raw: bytes) -> tuple[Any, bytes]:
    from provisioner.pipeline.eventfile import parse_line

    return parse_line(raw, 1), raw


def test_dev_produce_refuses_a_schema_without_its_format_and_a_format_without_its_schema(tmp_path: Path) -> None:
    from provisioner.cli.produce_formats import KeyFormat, SchemaFormat, schema_producer
    from provisioner.errors import ConfigurationError
    from provisioner.stream.settings import KafkaSettings

    kafka = KafkaSettings(bootstrap="127.0.0.1:9")
    plain = (KeyFormat.string, None)
    with pytest.raises(ConfigurationError, match=r"--schema s\.avsc: give the format"):
        schema_producer(kafka, tmp_path, "t", (SchemaFormat.json, Path("s.avsc")), plain, None)
    with pytest.raises(ConfigurationError, match=r"format protobuf needs its schema file \(--schema FILE\)"):
        schema_producer(kafka, tmp_path, "t", (SchemaFormat.protobuf, None), plain, None)
    with pytest.raises(ConfigurationError, match=r"format avro needs its schema file \(--key-schema FILE\)"):
        schema_producer(kafka, tmp_path, "t", (SchemaFormat.json, None), (KeyFormat.avro, None), None)
    assert schema_producer(kafka, tmp_path, "t", (SchemaFormat.json, None), plain, "id")[0] is kafka
