"""The Avro reader in C (`avro_program` and the `_avroc` extension) on hostile bytes: each kind of
corruption is the DecodeError the generated Python reader gives, word for word and at the same
position, random bytes against every kind of program are never more than a DecodeError, no hostile
length is allocated, and a malformed program is refused when the reader is made."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioner.expr.times import MAX_TIMESTAMP_NS, MIN_TIMESTAMP_NS, timestamp_ns
from provisioner.formats import avro
from provisioner.formats.avro_compiled import compile_reader
from provisioner.formats.avro_program import C_READER, FIXED, LONG, RECORD, compile_program, compile_program_reader
from provisioner.formats.bounds import MAX_VALUE_BYTES
from provisioner.formats.schemas import DecodeError, RegisteredSchema

from .test_formats_avro import logical, record

pytestmark = pytest.mark.skipif(not C_READER, reason="the C extension is not built")

HEADER = b"\x00\x00\x00\x00\x01"
FAILURE = avro._failure(1)


def parsed(schema: Any) -> Any:
    return avro.parse_avro(RegisteredSchema("AVRO", json.dumps(schema)), [])


def readers(schema: Any) -> tuple[Any, Any]:
    """(the C reader, the Python reader) of `schema`."""
    program, python = compile_program_reader(parsed(schema), FAILURE), compile_reader(parsed(schema), FAILURE)
    assert program is not None and python is not None
    return program, python


def result(read: Any, data: bytes) -> str:
    """The value read, or the DecodeError's message (any other exception fails the test)."""
    try:
        value = read(data)
    except DecodeError as error:
        return f"DecodeError: {error}"
    return repr((type(value).__name__, value, getattr(value, "ns", None)))


def varint(raw: int) -> bytes:
    """`raw` (not zigzagged) as a varint of as many bytes as it takes (up to 10)."""
    out = bytearray()
    while raw > 0x7F:
        out.append(raw & 0x7F | 0x80)
        raw >>= 7
    return bytes([*out, raw])


def zigzag(value: int) -> bytes:
    return varint(value * 2 if value >= 0 else -value * 2 - 1)


ENUM = {"type": "enum", "name": "E", "symbols": ["A", "B"]}
HUGE = (1 << 70) - 1  # the largest a 10-byte varint holds
PREFIX = "payload does not decode with Avro schema 1: "


@pytest.mark.parametrize(("schema", "payload", "message"), [
    ("long", b"\x80", "the payload ends inside a value at offset"),
    ("long", b"\xff" * 10 + b"\x01", "a varint longer than 10 bytes"),
    ("long", b"\x02\x00", "1 bytes left after the value"),
    ("boolean", b"", "the payload ends inside a value at offset"),
    ("string", b"\x01", "the payload ends inside a value (or a length is negative)"),
    ("string", b"\x81\x01", "the payload ends inside a value (or a length is negative)"),
    ("string", varint(1 << 63) + b"abc", "the payload ends inside a value"),  # 2^62 bytes
    ("bytes", varint(1 << 63), "the payload ends inside a value"),
    ("bytes", varint(HUGE - 1), "the payload ends inside a value"),  # over 64 bits
    ("string", b"\x06ab", "the payload ends inside a value"),
    ("string", b"\x06a\xffb", "a string is not UTF-8 (byte 0xff at offset 2)"),
    ("string", b"\x06a\xed\xa0\x80"[:4] + b"\x80", "a string is not UTF-8 (byte 0xed at offset 2)"),  # a surrogate
    ("double", b"\x00\x00", "the payload ends inside a value at offset"),
    ("float", b"\x00", "the payload ends inside a value at offset"),
    ({"type": "fixed", "name": "F", "size": 4}, b"abc", "the payload ends inside a value"),
    (ENUM, b"\x04", "enum index 2 out of range"),
    (ENUM, b"\x01", "enum index -1 out of range"),
    (ENUM, varint(HUGE), f"enum index {-(HUGE >> 1) - 1} out of range"),
    (["null", "long"], b"\x04", "union index 2 out of range"),
    (["null", "long"], varint(HUGE - 1), f"union index {HUGE >> 1} out of range"),
    ({"type": "array", "items": "long"}, zigzag(1 << 62) + b"\x02\x04", "the payload ends inside a value at offset"),
    ({"type": "array", "items": "long"}, varint(HUGE - 1) + b"\x02", "the payload ends inside a value at offset"),
    ({"type": "array", "items": "long"}, b"\x03", "the payload ends inside a value at offset"),  # no byte size
    ({"type": "map", "values": "long"}, b"\x02\x01", "the payload ends inside a value"),
    ({"type": "map", "values": "long"}, b"\x02\x02\xff\x00\x00", "a string is not UTF-8 (byte 0xff at offset 2)"),
    (logical("long", "timestamp-millis"), zigzag(1 << 62), "timestamp out of range"),
    (logical("long", "timestamp-micros"), varint(HUGE - 1), "timestamp out of range"),
    (logical("string", "uuid"), b"\x02x", "badly formed hexadecimal UUID string"),
])
def test_each_hostile_payload_is_the_python_reader_s_decode_error(schema: Any, payload: bytes, message: str) -> None:
    program, python = readers(record(("v", schema)))
    mine = result(program, HEADER + payload)
    assert mine == result(python, HEADER + payload)
    assert mine.startswith("DecodeError: ") and message in mine
    assert PREFIX in mine and ": " not in mine.split(PREFIX, 1)[1]  # our words, no exception class


def test_a_value_over_the_size_bound_is_refused_before_it_is_read() -> None:
    program, python = readers(record(("v", "bytes")))
    payload = HEADER + varint(2 * (MAX_VALUE_BYTES + 1)) + bytes(MAX_VALUE_BYTES + 1)
    assert result(program, payload) == result(python, payload)
    assert f"more than {MAX_VALUE_BYTES}" in result(program, payload)


def test_only_bytes_are_read() -> None:
    program, _ = readers(record(("v", "long")))
    with pytest.raises(TypeError):
        program(bytearray(HEADER + b"\x02"))


def test_items_of_no_bytes_stop_the_reader_instead_of_looping() -> None:
    # avro._guarded keeps such schemas from the compiled readers; the C reader refuses them anyway.
    read = compile_program_reader(parsed(record(("v", {"type": "array", "items": "null"}))), FAILURE)
    assert read is not None
    with pytest.raises(DecodeError, match="an array item of no bytes"):
        read(HEADER + zigzag(1 << 62))


@pytest.mark.parametrize("ns", [0, -1, 1, 999_999, -1_000_001, 1772368215123456789, 2**63 - 1, -(2**63),
                                MIN_TIMESTAMP_NS, MAX_TIMESTAMP_NS, 951_782_400 * 10**9, -2_208_988_800 * 10**9 - 1])
@pytest.mark.parametrize(("kind", "per"), [("timestamp-nanos", 1), ("timestamp-micros", 1000),
                                           ("local-timestamp-millis", 10**6)])
def test_timestamps_built_in_c_are_the_python_conversion_s(ns: int, kind: str, per: int) -> None:
    program, python = readers(record(("t", logical("long", kind))))
    units = ns // per
    if not -(2**63) <= units < 2**63:
        return
    payload = HEADER + zigzag(units)
    mine, theirs = program(payload)["t"], python(payload)["t"]
    assert (type(mine), mine.ns, mine, mine.tzinfo, mine.microsecond, mine.fold) == (
        type(theirs), theirs.ns, theirs, theirs.tzinfo, theirs.microsecond, theirs.fold)
    assert mine == timestamp_ns(units * per)


def test_dates_are_midnights() -> None:
    program, python = readers(record(("d", logical("int", "date"))))
    for days in (-719162, -1, 0, 1, 20513, 106751, 106752, 2932896):  # 106752: past 64-bit nanoseconds
        mine, theirs = program(HEADER + zigzag(days))["d"], python(HEADER + zigzag(days))["d"]
        assert (type(mine), mine.ns, mine) == (type(theirs), theirs.ns, timestamp_ns(days * 86400 * 10**9))


KINDS = [
    "null", "boolean", "int", "long", "float", "double", "string", "bytes",
    {"type": "fixed", "name": "F", "size": 3}, ENUM,
    record(("a", "long"), ("b", "string"), name="Inner"),
    ["null", "string", "long"],
    {"type": "array", "items": "long"},
    {"type": "map", "values": ["null", "double"]},
    {"type": "array", "items": {"type": "map", "values": "string"}},
    logical("string", "uuid"),
    logical("bytes", "decimal", precision=6, scale=2),
    {"type": "fixed", "name": "D", "size": 5, "logicalType": "decimal", "precision": 9, "scale": 1},
    logical("long", "timestamp-millis"), logical("long", "timestamp-micros"), logical("long", "timestamp-nanos"),
    logical("int", "date"),
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), payload=st.binary(max_size=64))
def test_random_bytes_against_every_kind_of_program_are_at_most_a_decode_error(kind: Any, payload: bytes) -> None:
    program, python = readers(record(("v", kind), ("w", "long")))
    assert result(program, HEADER + payload) == result(python, HEADER + payload)


@pytest.mark.parametrize("program", [
    (), ("x",), (99,), (LONG, 1), (FIXED, -1), (FIXED, "3"), (RECORD, ("a",), ()), (RECORD, (1,), ((LONG,),)),
    (RECORD, ("a",), ((FIXED,),)), (11,), (13, "not callable", (LONG,)), (14, 0, str, str, None),
    (14, 1000, str, int, None),
])
def test_a_malformed_program_is_refused_when_the_reader_is_made(program: Any) -> None:
    from provisioner.formats.avro_program import _avroc

    with pytest.raises((ValueError, TypeError)):
        _avroc.Reader(program, 5, 100, 100, FAILURE, ValueError, str, str)


def test_a_program_nested_deeper_than_any_schema_is_refused() -> None:
    from provisioner.formats.avro_program import _avroc

    program: Any = (LONG,)
    for _ in range(1100):
        program = (11, program)
    with pytest.raises(ValueError, match="nested too deep"):
        _avroc.Reader(program, 5, 100, 100, FAILURE, ValueError, str, str)


def test_the_consumer_reads_with_the_c_reader() -> None:
    schema = parsed(record(("n", "long")))
    assert compile_program(schema) == (RECORD, ("n",), ((LONG,),))
    assert type(avro._reader(1, schema)).__module__ == "provisioner.formats._avroc"


def test_a_reader_is_made_once() -> None:
    read = compile_program_reader(parsed(record(("n", "long"))), FAILURE)
    assert read is not None
    with pytest.raises(TypeError, match="made once"):
        read.__init__((FIXED, 1), 0, 1, 1, FAILURE, ValueError, str, str)  # type: ignore[misc]
    assert read(HEADER + b"\x04") == {"n": 2}
