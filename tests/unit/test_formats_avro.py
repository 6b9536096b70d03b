"""Avro records as CEL values (spec.md, "Formats"): the value mapping, hostile bytes, and a
property test: arbitrary schemas and values written by fastavro's writer read back as the values
the mapping defines."""

from __future__ import annotations

import io
import json
import re
import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioner.expr import compile_expression
from provisioner.expr.times import Duration, Timestamp, duration_ns, timestamp_ns
from provisioner.formats.avro import AvroFormat
from provisioner.formats.bounds import MAX_VALUES
from provisioner.formats.schemas import DecodeError, Reference, RegisteredSchema, StaticSchemas, UnknownSchema

NS = 1_000_000_000


def wire(schema_id: int, schema: Any, value: Any, named: dict[str, Any] | None = None) -> bytes:
    parsed = fastavro.parse_schema(schema, named_schemas=named if named is not None else {})
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed, value)
    return b"\x00" + schema_id.to_bytes(4, "big") + out.getvalue()


def avro(schema: Any, **more: RegisteredSchema) -> AvroFormat:
    by_id = {1: RegisteredSchema("AVRO", json.dumps(schema))}
    versions = {(subject, 1): registered for subject, registered in more.items()}
    return AvroFormat(StaticSchemas(by_id, versions))


def record(*fields: tuple[str, Any], name: str = "R") -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": [{"name": n, "type": t} for n, t in fields]}


def logical(base: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": base, "logicalType": kind, **extra}


MOMENT = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


@pytest.mark.parametrize(("schema", "written", "expected"), [
    (logical("long", "timestamp-millis"), MOMENT, timestamp_ns(1772368215123 * 10**6)),
    (logical("long", "timestamp-micros"), MOMENT, timestamp_ns(1772368215123456 * 1000)),
    (logical("long", "timestamp-nanos"), 1772368215123456789, timestamp_ns(1772368215123456789)),
    (logical("long", "local-timestamp-millis"), 1772368215123, timestamp_ns(1772368215123 * 10**6)),
    (logical("long", "local-timestamp-micros"), 1772368215123456, timestamp_ns(1772368215123456 * 1000)),
    (logical("long", "local-timestamp-nanos"), -5, timestamp_ns(-5)),
    (logical("int", "date"), date(2026, 3, 1), timestamp_ns(20513 * 86400 * NS)),
    (logical("int", "time-millis"), time(1, 2, 3, 456000), duration_ns(3723456 * 10**6)),
    (logical("long", "time-micros"), time(23, 59, 59, 999999), duration_ns(86399999999 * 1000)),
    (logical("bytes", "decimal", precision=9, scale=2), Decimal("-1234.56"), -1234.56),
    ({"type": "fixed", "name": "D", "size": 8, "logicalType": "decimal", "precision": 9, "scale": 3},
     Decimal("2.5"), 2.5),
    (logical("string", "uuid"), "0b7a1e2c-3c4d-4e5f-8a9b-0c1d2e3f4a5b", "0b7a1e2c-3c4d-4e5f-8a9b-0c1d2e3f4a5b"),
    ({"type": "fixed", "name": "U", "size": 16, "logicalType": "uuid"}, uuid.UUID(int=7).bytes,
     "00000000-0000-0000-0000-000000000007"),
    ({"type": "enum", "name": "E", "symbols": ["A", "B"]}, "B", "B"),
    ("bytes", b"\x00\xff", b"\x00\xff"),
    ({"type": "fixed", "name": "F", "size": 2}, b"ab", b"ab"),
    ("float", 0.1, 0.10000000149011612),
    ("long", -(2**63), -(2**63)),
    (["null", "string", logical("long", "timestamp-nanos")], 7, timestamp_ns(7)),
    (["null", logical("long", "timestamp-millis")], None, None),
    ({"type": "map", "values": logical("int", "date")}, {"a": 1}, {"a": timestamp_ns(86400 * NS)}),
    ({"type": "array", "items": ["null", logical("int", "time-millis")]}, [None, 1], [None, duration_ns(10**6)]),
])
def test_each_avro_type_maps_to_its_cel_value(schema: Any, written: Any, expected: Any) -> None:
    wrapped = record(("v", schema))
    event = avro(wrapped).decode(wire(1, wrapped, {"v": written}))
    assert event == {"v": expected}
    assert type(event["v"]) is type(expected)


def test_timestamps_and_durations_are_the_cel_runtime_s_own_values() -> None:
    schema = record(("at", logical("long", "timestamp-micros")), ("took", logical("int", "time-millis")),
                    ("raw", "bytes"))
    event = avro(schema).decode(wire(1, schema, {"at": MOMENT, "took": time(0, 0, 1, 500000), "raw": b"hi"}))
    assert isinstance(event["at"], Timestamp) and event["at"].tzinfo is UTC
    assert isinstance(event["took"], Duration)
    program = compile_expression("event.at + event.took > timestamp('2026-03-01T12:30:16Z') && "
                                 "event.took == duration('1.5s') && event.raw == b'hi'", expect_bool=True)
    assert program.evaluate(event, None) is True


def test_a_union_of_several_record_types_converts_the_branch_it_holds() -> None:
    a = record(("at", logical("long", "timestamp-millis")), name="A")
    b = record(("day", logical("int", "date")), name="B")
    schema = record(("v", ["null", a, b]), ("w", ["null", "A", "B"]))
    event = avro(schema).decode(wire(1, schema, {"v": ("B", {"day": 1}), "w": ("A", {"at": 1000})}))
    assert event == {"v": {"day": timestamp_ns(86400 * NS)}, "w": {"at": timestamp_ns(10**9)}}


def test_a_recursive_type_converts_at_every_depth() -> None:
    node = {"type": "record", "name": "Node", "fields": [
        {"name": "at", "type": logical("long", "timestamp-millis")},
        {"name": "next", "type": ["null", "Node"]}]}
    event = avro(node).decode(wire(1, node, {"at": 1, "next": {"at": 2, "next": None}}))
    assert event == {"at": timestamp_ns(10**6), "next": {"at": timestamp_ns(2 * 10**6), "next": None}}


def test_a_named_type_from_a_referenced_subject() -> None:
    money = {"type": "record", "name": "Money", "namespace": "shop",
             "fields": [{"name": "cents", "type": "long"}, {"name": "at", "type": logical("int", "date")}]}
    order = {"type": "record", "name": "Order", "namespace": "shop", "fields": [{"name": "price", "type": "Money"}]}
    registered = RegisteredSchema("AVRO", json.dumps(order), (Reference("shop.Money", "money", 1),))
    source = StaticSchemas({1: registered}, {("money", 1): RegisteredSchema("AVRO", json.dumps(money))})
    named: dict[str, Any] = {}
    fastavro.parse_schema(money, named_schemas=named)
    data = wire(1, order, {"price": {"cents": 5, "at": 2}}, named)
    assert AvroFormat(source).decode(data) == {"price": {"cents": 5, "at": timestamp_ns(2 * 86400 * NS)}}


def test_each_schema_id_is_fetched_once() -> None:
    schema = record(("n", "long"))
    asked: list[int] = []

    class Counting(StaticSchemas):
        def schema(self, schema_id: int) -> RegisteredSchema:
            asked.append(schema_id)
            return super().schema(schema_id)

    decoder = AvroFormat(Counting({1: RegisteredSchema("AVRO", json.dumps(schema))}))
    for n in range(50):
        assert decoder.decode(wire(1, schema, {"n": n})) == {"n": n}
    assert asked == [1]


NODE = {"type": "record", "name": "Node", "fields": [{"name": "id", "type": "string"},
                                                     {"name": "next", "type": ["null", "Node"]}]}


@pytest.mark.parametrize(("data", "message"), [
    (b'{"id": 1}', "no magic byte"),
    (b"\x00\x00\x01", "too short"),
    (b"\x00\x00\x00\x00\x01\x02", "does not decode"),  # truncated: the string's byte is missing
    (b"\x00\x00\x00\x00\x01\x02x\x00\x00", "1 bytes left"),
    (b"\x00\x00\x00\x00\x01\x02x\x04", "does not decode"),  # union index 2 of a 2-branch union
    (b"\x00\x00\x00\x00\x01\x01", "does not decode"),  # a negative string length
    (b"\x00\x00\x00\x00\x01" + b"\x02x\x02" * 200_000 + b"\x02x\x00", "nested more than"),
])
def test_bytes_that_are_not_a_value_of_the_schema_are_decode_errors(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message) as raised:
        avro(NODE).decode(data)
    assert not re.search(r"\b[A-Za-z]*Error\b", str(raised.value)), raised.value  # our words, not the library's


@pytest.mark.parametrize(("data", "message"), [
    (b"\x00\x00\x00\x00\x01\x02", "the payload ends inside a value at offset 1"),
    (b"\x00\x00\x00\x00\x01\x02x\x04", "a union or enum index out of range at offset 3"),
])
def test_a_recursive_schema_s_reader_says_what_broke_and_where(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError) as raised:
        avro(NODE).decode(data)
    assert str(raised.value) == f"payload does not decode with Avro schema 1: {message}"


def test_an_unknown_id_is_unknown_and_a_schema_of_another_type_is_refused() -> None:
    with pytest.raises(UnknownSchema):
        avro(NODE).decode(b"\x00\x00\x00\x00\x09\x00")
    source = StaticSchemas({1: RegisteredSchema("JSON", "{}"), 2: RegisteredSchema("AVRO", "{not json")})
    decoder = AvroFormat(source)
    with pytest.raises(DecodeError, match="schema 1: its type is JSON, not AVRO"):
        decoder.decode(b"\x00\x00\x00\x00\x01\x00")
    with pytest.raises(DecodeError, match="schema 2: not a usable Avro schema"):
        decoder.decode(b"\x00\x00\x00\x00\x02\x00")


def test_an_array_of_values_that_take_no_bytes_cannot_claim_billions_of_items() -> None:
    schema = record(("xs", {"type": "array", "items": "null"}))
    huge_count = b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f"  # zigzag varint of 2^62 - 1
    with pytest.raises(DecodeError, match=f"more than {MAX_VALUES} values"):
        avro(schema).decode(b"\x00\x00\x00\x00\x01" + huge_count)
    assert avro(schema).decode(wire(1, schema, {"xs": [None] * 3})) == {"xs": [None, None, None]}


# -- property: arbitrary schemas and values ---------------------------------------------------

_LIMITS = {"timestamp-millis": (-62135596800000, 253402300799999), "timestamp-micros":
           (-62135596800000000, 253402300799999999), "timestamp-nanos": (-(2**63), 2**63 - 1)}
_LOCAL = {"local-" + kind: bounds for kind, bounds in _LIMITS.items()}
_DAYS = (-719162, 2932896)


def _expected_logical(kind: str, raw: Any) -> Any:
    if kind.endswith("timestamp-millis"):
        return timestamp_ns(raw * 10**6)
    if kind.endswith("timestamp-micros"):
        return timestamp_ns(raw * 1000)
    if kind.endswith("timestamp-nanos"):
        return timestamp_ns(raw)
    if kind == "date":
        return timestamp_ns(raw * 86400 * NS)
    if kind == "time-millis":
        return duration_ns(raw * 10**6)
    if kind == "time-micros":
        return duration_ns(raw * 1000)
    raise AssertionError(kind)


@st.composite
def _leaf(draw: st.DrawFn) -> tuple[Any, st.SearchStrategy[tuple[Any, Any]]]:
    """(schema, strategy of (written value, expected CEL value))."""
    kind = draw(st.sampled_from(["null", "boolean", "int", "long", "float", "double", "bytes", "string",
                                 "enum", "fixed", "decimal", "uuid", *_LIMITS, *_LOCAL, "date", "time-millis",
                                 "time-micros"]))
    same: Any = lambda values: values.map(lambda v: (v, v))  # noqa: E731
    if kind == "null":
        return "null", st.just((None, None))
    if kind == "boolean":
        return "boolean", same(st.booleans())
    if kind == "int":
        return "int", same(st.integers(-(2**31), 2**31 - 1))
    if kind == "long":
        return "long", same(st.integers(-(2**63), 2**63 - 1))
    if kind == "float":
        return "float", same(st.floats(width=32, allow_nan=False))
    if kind == "double":
        return "double", same(st.floats(allow_nan=False))
    if kind == "bytes":
        return "bytes", same(st.binary(max_size=8))
    if kind == "string":
        return "string", same(st.text(max_size=8))
    if kind == "enum":
        symbols = draw(st.lists(st.from_regex(r"[A-Z][A-Z0-9_]{0,3}", fullmatch=True), min_size=1, max_size=4,
                                unique=True))
        return {"type": "enum", "name": "_", "symbols": symbols}, same(st.sampled_from(symbols))
    if kind == "fixed":
        size = draw(st.integers(0, 4))
        return {"type": "fixed", "name": "_", "size": size}, same(st.binary(min_size=size, max_size=size))
    if kind == "decimal":
        scale = draw(st.integers(0, 4))
        values = st.integers(-(10**9), 10**9).map(lambda n: Decimal(n).scaleb(-scale))
        return logical("bytes", "decimal", precision=10, scale=scale), values.map(lambda d: (d, float(d)))
    if kind == "uuid":
        return logical("string", "uuid"), st.uuids().map(lambda u: (str(u), str(u)))
    if kind in _LIMITS or kind in _LOCAL:
        low, high = {**_LIMITS, **_LOCAL}[kind]
        if kind.endswith("nanos"):  # a long, and within CEL's timestamps (years 1 to 9999)
            low, high = max(low, -62135596800 * NS), min(high, 253402300799 * NS)
        return logical("long", kind), st.integers(low, high).map(lambda n: (n, _expected_logical(kind, n)))
    if kind == "date":
        return logical("int", "date"), st.integers(*_DAYS).map(lambda n: (n, _expected_logical("date", n)))
    unit = 10**3 if kind == "time-millis" else 10**6
    base = "int" if kind == "time-millis" else "long"
    return logical(base, kind), st.integers(0, 86400 * unit - 1).map(lambda n: (n, _expected_logical(kind, n)))


def _container(children: st.SearchStrategy[tuple[Any, Any]]) -> st.SearchStrategy[tuple[Any, Any]]:
    def array(child: tuple[Any, Any]) -> tuple[Any, Any]:
        schema, values = child
        return {"type": "array", "items": schema}, st.lists(values, max_size=3).map(
            lambda pairs: ([w for w, _ in pairs], [e for _, e in pairs]))

    def map_(child: tuple[Any, Any]) -> tuple[Any, Any]:
        schema, values = child
        return {"type": "map", "values": schema}, st.dictionaries(st.text(max_size=3), values, max_size=3).map(
            lambda pairs: ({k: w for k, (w, _) in pairs.items()}, {k: e for k, (_, e) in pairs.items()}))

    def optional(child: tuple[Any, Any]) -> tuple[Any, Any]:
        schema, values = child
        if schema == "null" or isinstance(schema, list):
            return child
        return ["null", schema], st.one_of(st.just((None, None)), values)

    def record_(fields: list[tuple[Any, Any]]) -> tuple[Any, Any]:
        names = [f"f{i}" for i in range(len(fields))]
        schema = {"type": "record", "name": "_", "fields": [{"name": n, "type": s} for n, (s, _) in zip(names, fields,
                                                                                                      strict=True)]}
        values = st.tuples(*(v for _, v in fields)).map(
            lambda pairs: ({n: w for n, (w, _) in zip(names, pairs, strict=True)},
                           {n: e for n, (_, e) in zip(names, pairs, strict=True)}))
        return schema, values

    return st.one_of(children.map(array), children.map(map_), children.map(optional),
                     st.lists(children, min_size=1, max_size=4).map(record_))


def _named(schema: Any, counter: list[int]) -> Any:
    """Every named type gets a unique name (Avro requires it)."""
    if isinstance(schema, list):
        return [_named(branch, counter) for branch in schema]
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if out.get("name") == "_":
        counter[0] += 1
        out["name"] = f"T{counter[0]}"
    if "fields" in out:
        out["fields"] = [{**f, "type": _named(f["type"], counter)} for f in out["fields"]]
    for key in ("items", "values"):
        if key in out:
            out[key] = _named(out[key], counter)
    return out


SCHEMAS = st.recursive(_leaf(), _container, max_leaves=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), root=st.lists(SCHEMAS, min_size=1, max_size=4))
def test_arbitrary_avro_schemas_and_values_decode_to_their_cel_values(data: st.DataObject,
                                                                       root: list[tuple[Any, Any]]) -> None:
    fields = [(f"f{i}", schema) for i, (schema, _) in enumerate(root)]
    schema = _named(record(*fields, name="_"), [0])
    pairs = [data.draw(values) for _, values in root]
    written = {f"f{i}": w for i, (w, _) in enumerate(pairs)}
    expected = {f"f{i}": e for i, (_, e) in enumerate(pairs)}
    assert avro(schema).decode(wire(1, schema, written)) == expected
