"""`source.format` and `source.keyFormat` in the pipeline: which stage refuses what, keys decoded
by their format, and a registry that cannot be asked stopping the record (retried) instead of
dead-lettering it."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import pytest

from provisioner.errors import UnavailableError, is_retryable
from provisioner.formats.schemas import RegisteredSchema, StaticSchemas
from provisioner.pipeline.ops import DeadLetter, Delete, Record, Upsert
from provisioner.pipeline.process import Pipeline
from provisioner.spec.loader import load_text

ORDER = {"type": "record", "name": "Order", "fields": [
    {"name": "id", "type": "string"}, {"name": "qty", "type": "long"},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}
KEY = {"type": "record", "name": "Key", "fields": [{"name": "tenant", "type": "string"}, {"name": "n", "type": "int"}]}
SCHEMA = {"type": "object", "properties": {"id": {"type": "string"}, "qty": {"type": "integer", "minimum": 0}},
          "required": ["id"]}
SCHEMAS = StaticSchemas({1: RegisteredSchema("AVRO", json.dumps(ORDER)), 2: RegisteredSchema("AVRO", json.dumps(KEY)),
                         3: RegisteredSchema("JSON", json.dumps(SCHEMA))})


def spec(fmt: str, key_format: str = "string", fields: str = "id: event.id\n    at: event.at",
         key: str = "key: id") -> str:
    return f"""
apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata: {{name: p}}
spec:
  source: {{topic: t, format: {fmt}, keyFormat: {key_format}}}
  fields:
    {fields}
  {key}
  stores: [{{name: c, redis: {{}}}}]
"""


def pipeline(text: str, schemas: Any = SCHEMAS) -> Pipeline:
    specs, findings = load_text(text)
    assert not findings, findings
    return Pipeline(specs[0].product, schemas)


def avro_bytes(schema_id: int, schema: Any, value: Any) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), value)
    return b"\x00" + schema_id.to_bytes(4, "big") + out.getvalue()


def rec(value: bytes | None, key: bytes | None = b"k") -> Record:
    return Record(topic="t", partition=0, offset=0, timestamp=0, key=key, value=value)


def test_avro_values_reach_the_expressions_and_the_row() -> None:
    op = pipeline(spec("avro")).process(rec(avro_bytes(1, ORDER, {"id": "o1", "qty": 2, "at": 1500})))
    assert isinstance(op, Upsert)
    assert op.key == ("o1",)
    assert str(op.row["at"]) == "1970-01-01 00:00:01.500000+00:00"


@pytest.mark.parametrize(("value", "stage", "message"), [
    (b'{"id": "o1"}', "decode", "value: no magic byte"),
    (b"\x00\x00\x00\x00\x63\x00", "decode", "value: schema id 99 is not registered"),
    (b"\x00\x00\x00\x00\x01\x02", "decode", "does not decode with Avro schema 1"),
    (b"\x00\x00\x00\x00\x03{}", "decode", "its type is JSON, not AVRO"),
])
def test_undecodable_avro_values_are_decode_dead_letters(value: bytes, stage: str, message: str) -> None:
    op = pipeline(spec("avro")).process(rec(value))
    assert isinstance(op, DeadLetter) and op.stage == stage and message in op.message


def test_a_tombstone_is_never_decoded() -> None:
    assert pipeline(spec("avro", key="")).process(rec(None, b"k1")) == Delete(("k1",))


def test_without_a_registry_schema_d_records_say_what_is_missing() -> None:
    op = pipeline(spec("avro"), None).process(rec(avro_bytes(1, ORDER, {"id": "o1", "qty": 2, "at": 1})))
    assert isinstance(op, DeadLetter) and op.stage == "decode" and "no schema registry is configured" in op.message


def test_jsonschema_values_must_satisfy_the_registered_schema() -> None:
    p = pipeline(spec("jsonschema", fields="id: event.id"))
    header = b"\x00\x00\x00\x00\x03"
    assert p.process(rec(header + b'{"id": "a", "qty": 1}')) == Upsert(("a",), {"id": "a"})
    refused = p.process(rec(header + b'{"id": "a", "qty": -1}'))
    assert isinstance(refused, DeadLetter) and refused.stage == "schema"
    assert "registered JSON schema 3" in refused.message
    garbled = p.process(rec(header + b'{"id": '))
    assert isinstance(garbled, DeadLetter) and garbled.stage == "decode"
    avro_id = p.process(rec(b"\x00\x00\x00\x00\x01{}"))
    assert isinstance(avro_id, DeadLetter) and avro_id.stage == "decode" and "its type is AVRO, not JSON" in avro_id.message


def test_keys_decode_by_key_format() -> None:
    fields = "tenant: record.key.tenant\n    n: record.key.n"
    p = pipeline(spec("json", "avro", fields=fields, key="key: [tenant, n]"))
    key = avro_bytes(2, KEY, {"tenant": "acme", "n": 7})
    assert p.process(rec(b"{}", key)) == Upsert(("acme", 7), {"tenant": "acme", "n": 7})
    assert p.process(rec(None, key)) == Delete(("acme", 7))
    bad = p.process(rec(b"{}", b"plain"))
    assert isinstance(bad, DeadLetter) and bad.stage == "decode"
    assert bad.message.startswith("key does not decode as avro:")
    j = pipeline(spec("json", "json", fields="id: record.key.id"))
    assert j.process(rec(b"{}", b'{"id": "x"}')) == Upsert(("x",), {"id": "x"})


@pytest.mark.parametrize(("fmt", "key_format", "value", "key", "message"), [
    ("json", "string", b'{"id": "\xff"}', b"k", "value is not UTF-8 (byte 0xff at offset 8)"),
    ("json", "string", b'"a\xe2\x82', b"k", "value is not UTF-8 (byte 0xe2 at offset 2)"),
    ("json", "json", b"{}", b'"\xc3\x28"', "key is not UTF-8 (byte 0xc3 at offset 1)"),
    ("jsonschema", "string", b"\x00\x00\x00\x00\x03" + b'{"id": "\xff"}', b"k",
     "value: payload is not UTF-8 (byte 0xff at offset 8)"),
    ("avro", "string", b"\x00\x00\x00\x00\x01\x04a\xff\x04\x02", b"k",
     "value: payload does not decode with Avro schema 1: a string is not UTF-8 (byte 0xff at offset 2)"),
])
def test_bytes_that_are_not_utf8_text_say_which_byte_and_where(fmt: str, key_format: str, value: bytes,
                                                             key: bytes, message: str) -> None:
    op = pipeline(spec(fmt, key_format, fields="id: event.id\n    k: record.key")).process(rec(value, key))
    assert op == DeadLetter("decode", message)
    assert "codec" not in message


@pytest.mark.parametrize(("fmt", "key_format", "value", "key", "message"), [
    ("json", "string", b"hello", b"k", "value is not JSON (expected a value at offset 0, found 'h')"),
    ("json", "string", b'{"id": "\xc3\xa9\\q"}', b"k",
     "value is not JSON (an invalid escape in a string at offset 10, found '\\\\q')"),
    ("json", "json", b"{}", b'{"id": 1,}', "key is not JSON (expected a property name in double quotes at offset 9, "
                                           "found '}')"),
    ("jsonschema", "string", b"\x00\x00\x00\x00\x03" + b'{"id": "x"} !', b"k",
     "value: payload is not JSON (more data after the value at offset 12, found '!')"),
])
def test_text_that_is_not_json_says_what_was_expected_and_at_which_byte(fmt: str, key_format: str, value: bytes,
                                                                        key: bytes, message: str) -> None:
    op = pipeline(spec(fmt, key_format, fields="id: event.id\n    k: record.key")).process(rec(value, key))
    assert op == DeadLetter("decode", message)


class Unreachable:
    def schema(self, schema_id: int) -> RegisteredSchema:
        raise UnavailableError("the schema registry does not answer")

    def version(self, subject: str, version: int) -> RegisteredSchema:
        raise UnavailableError("the schema registry does not answer")


def test_a_registry_that_cannot_be_asked_stops_the_record_instead_of_dead_lettering_it() -> None:
    with pytest.raises(UnavailableError) as raised:
        pipeline(spec("avro"), Unreachable()).process(rec(avro_bytes(1, ORDER, {"id": "o", "qty": 1, "at": 1})))
    assert is_retryable(raised.value)
    with pytest.raises(UnavailableError):
        pipeline(spec("json", "avro", fields="id: string(record.key)"), Unreachable()).process(rec(b"{}", b"\0\0\0\0\1"))


TESTED = """
apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata: {name: p}
spec:
  source: {topic: t, format: avro}
  fields: {id: event.id, late: "event.at > timestamp('2026-01-01T00:00:00Z')"}
  key: id
  stores: [{name: c, redis: {}}]
  tests:
    - name: encoded with the schema file
      schema: order.avsc
      given: [{value: {id: o1, qty: 1, at: "2026-03-01T00:00:00Z"}}]
      expect: [{upsert: {key: [o1], fields: {id: o1, late: true}}}]
    - name: decoded values, no schema
      given: [{value: {id: o2, at: "2026-03-01T00:00:00Z"}}]
      expect: [{deadLetter: {stage: fields}}]
    - name: a value the schema cannot encode
      schema: order.avsc
      given: [{value: {id: o3, qty: "many", at: 0}}]
      expect: [{skip: {}}]
"""


def test_spec_tests_encode_given_values_with_the_named_schema_file_or_take_them_decoded() -> None:
    from provisioner.pipeline.testing import run_tests

    specs, findings = load_text(TESTED)
    assert not findings
    outcomes = run_tests(specs[0].product, {"order.avsc": json.dumps(ORDER)})
    assert [o.passed for o in outcomes] == [True, True, False]
    assert outcomes[2].error is not None and "does not fit the schema" in outcomes[2].error
    missing = run_tests(specs[0].product, {})
    assert missing[0].error == "schema order.avsc: schema file order.avsc was not read"
