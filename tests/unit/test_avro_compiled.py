"""Readers compiled per Avro schema (the program the C extension interprets, and the generated Python
reader) against the reference, fastavro's reader and the conversion to CEL values: the same values
(and the same CEL types) for arbitrary schemas and values, a DecodeError for every truncation or
corruption, the same one from both readers, and the schemas left to fastavro."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioner.expr import times
from provisioner.expr.errors import EvaluationError
from provisioner.expr.times import MAX_TIMESTAMP_NS, MIN_TIMESTAMP_NS, Timestamp, timestamp_ns
from provisioner.formats.avro import AvroFormat, _guarded, fastavro_reader, parse_avro
from provisioner.formats.avro_compiled import compile_reader
from provisioner.formats.avro_program import C_READER, compile_program_reader
from provisioner.formats.avro_times import timestamp_from_millis, timestamp_from_nanos
from provisioner.formats.bounds import MAX_VALUES
from provisioner.formats.schemas import DecodeError, RegisteredSchema, StaticSchemas

from .test_formats_avro import SCHEMAS, _named, logical, record

HEADER = b"\x00\x00\x00\x00\x01"


def parsed(schema: Any) -> Any:
    return parse_avro(RegisteredSchema("AVRO", json.dumps(schema)), [])


def failure(error: Exception, position: int) -> DecodeError:
    """The error's kind, its words and the position: equal for both readers, or the test fails."""
    detail = f"{error.start}/{len(error.object)}" if isinstance(error, UnicodeDecodeError) else ""
    return DecodeError(f"payload does not decode: {type(error).__name__}: {error} at {position} {detail}")


READERS = [pytest.param(compile_reader, id="python"),
           pytest.param(compile_program_reader, id="c",
                        marks=pytest.mark.skipif(not C_READER, reason="the C extension is not built"))]


@pytest.fixture(params=READERS)
def compiler(request: pytest.FixtureRequest) -> Any:
    return request.param


def compiled(schema: Any, compiler: Any = compile_reader) -> Any:
    reader = compiler(parsed(schema), failure)
    assert reader is not None
    return reader


def error_of(read: Any, data: bytes) -> str:
    """The DecodeError's message (the exact error and position), or the value read."""
    try:
        return repr(typed(read(data)))
    except DecodeError as error:
        return str(error)


def encode(schema: Any, value: Any) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), value)
    return HEADER + out.getvalue()


def outcome(read: Any, data: bytes) -> Any:
    """The value read, with each value's type (a Timestamp is not a datetime), or "error"."""
    try:
        value = read(data)
    except DecodeError:
        return "error"
    return typed(value)


def typed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return type(value).__name__, getattr(value, "ns", None), value


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), root=st.lists(SCHEMAS, min_size=1, max_size=4))
def test_a_compiled_reader_reads_what_fastavro_and_the_conversion_read(data: st.DataObject,
                                                                      root: list[tuple[Any, Any]]) -> None:
    schema = _named(record(*((f"f{i}", s) for i, (s, _) in enumerate(root)), name="_"), [0])
    written = {f"f{i}": data.draw(values)[0] for i, (_, values) in enumerate(root)}
    payload = encode(schema, written)
    reference = fastavro_reader(1, parsed(schema))
    python = compile_reader(parsed(schema), failure)
    program = compile_program_reader(parsed(schema), failure)
    if python is None:  # a decimal or a time of day: fastavro's
        assert program is None
        return
    assert (program is None) == (not C_READER)
    guarded = _guarded(parsed(schema))
    if guarded:  # items of no bytes: the consumer gives these to neither reader
        program = None
    flipped = payload + b"\x00"  # an empty value has no byte to flip
    if len(payload) > len(HEADER):
        spot = data.draw(st.integers(len(HEADER), len(payload) - 1))
        flipped = payload[:spot] + bytes([payload[spot] ^ data.draw(st.integers(1, 255))]) + payload[spot + 1:]
    for read in (python, program or python):
        assert outcome(read, payload) == outcome(reference, payload) != "error"
        for cut in range(len(HEADER), len(payload)):
            assert outcome(read, payload[:cut]) == "error"
        assert outcome(read, payload + b"\x00") == "error"
        if not guarded:  # (a flipped count of items of no bytes would be billions of them)
            mine = outcome(read, flipped)  # corrupt bytes: an error, or the value the reference reads
            assert mine == "error" or repr(mine) == repr(outcome(reference, flipped))  # repr: a NaN is itself
    if program is not None:  # the same errors at the same positions
        for bad in (*(payload[:cut] for cut in range(len(HEADER), len(payload))), payload + b"\x00", flipped):
            assert error_of(program, bad) == error_of(python, bad)


@pytest.mark.parametrize(("schema", "value"), [
    ("string", "x" * 70),  # a length of two bytes
    ("string", "é" * 5000),
    ("bytes", bytes(range(256)) * 3),
    ("long", -(2**63)),
    ("long", 2**63 - 1),
    ("int", -(2**31)),
    (["null", "string", {"type": "array", "items": "long"}], [1, 2**40, -3]),
    ({"type": "map", "values": ["null", "double"]}, {"a": 1.5, "b": None, "": -0.0}),
    ({"type": "enum", "name": "E", "symbols": ["A", "B"]}, "B"),
    ({"type": "fixed", "name": "F", "size": 3}, b"abc"),
    (logical("string", "uuid"), "A4F6C1A0-0000-4000-8000-000000000001"),
    (logical("bytes", "decimal", precision=4, scale=2), Decimal("-12.34")),
    ({**logical("fixed", "decimal", precision=30, scale=3), "name": "D", "size": 16}, Decimal("123456789012345.678")),
])
def test_each_type_reads_as_the_reference_reads_it(schema: Any, value: Any, compiler: Any) -> None:
    full = record(("v", schema))
    payload = encode(full, {"v": value})
    assert outcome(compiled(full, compiler), payload) == outcome(fastavro_reader(1, parsed(full)), payload) != "error"


def test_names_are_data_not_code(compiler: Any) -> None:
    name = "a'] + __import__('os').getcwd() + ['\"\n"
    schema = {"type": "record", "name": "R", "fields": [{"name": name, "type": "long"}]}
    assert compiled(schema, compiler)(encode(schema, {name: 3})) == {name: 3}


@pytest.mark.parametrize(("payload", "message"), [
    (b"\x01", "ends inside"),  # a negative length
    (b"\x81\x01", "ends inside"),  # a negative length of the long way
    (b"\x06ab", "ends inside"),  # a string past the end
    (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "longer than 10 bytes"),
    (b"\x02ab", "1 bytes left"),
])
def test_bytes_that_are_not_a_string_are_decode_errors(payload: bytes, message: str, compiler: Any) -> None:
    with pytest.raises(DecodeError, match=message):
        compiled(record(("s", "string")), compiler)(HEADER + payload)


@pytest.mark.parametrize("schema", [record(("n", "long"), ("s", "string")),
                                    {"type": "record", "name": "Node", "fields": [
                                        {"name": "n", "type": "long"}, {"name": "s", "type": "string"},
                                        {"name": "next", "type": ["null", "Node"]}]}])
def test_a_string_that_is_not_utf8_names_its_byte_and_offset_in_the_payload(schema: Any) -> None:
    # n = 1, then a string of 3 bytes whose second is 0xff (offset 1 + 1 + 1 = 3 in the payload)
    data = HEADER + b"\x02" + b"\x06a\xffb" + (b"\x00" if "Node" in json.dumps(schema) else b"")
    with pytest.raises(DecodeError, match=r"a string is not UTF-8 \(byte 0xff at offset 3\)"):
        AvroFormat(StaticSchemas({1: RegisteredSchema("AVRO", json.dumps(schema))})).decode(data)


def test_arrays_in_blocks_with_byte_sizes_read_as_one_array(compiler: Any) -> None:
    schema = record(("xs", {"type": "array", "items": "long"}))
    # Two blocks: 2 items, then -1 (one item, its byte size 1), then the end.
    payload = HEADER + b"\x04\x02\x04" + b"\x01\x02\x06" + b"\x00"
    assert compiled(schema, compiler)(payload) == {"xs": [1, 2, 3]}


def test_a_record_of_more_values_than_the_bound_is_a_decode_error(compiler: Any) -> None:
    schema = record(("xs", {"type": "array", "items": "long"}))
    with pytest.raises(DecodeError, match=f"more than {MAX_VALUES} values"):
        compiled(schema, compiler)(encode(schema, {"xs": [0] * (MAX_VALUES + 1)}))
    most = MAX_VALUES - 2  # with the record and its array
    assert len(compiled(schema, compiler)(encode(schema, {"xs": [0] * most}))["xs"]) == most


@pytest.mark.parametrize("schema", [
    {"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"]}]},
    record(("d", logical("bytes", "decimal", scale=2))),
    record(("t", logical("int", "time-millis"))),
    record(("u", {**logical("fixed", "uuid"), "name": "U", "size": 16})),
])
def test_recursive_types_and_fastavro_s_own_logical_types_are_left_to_fastavro(schema: Any, compiler: Any) -> None:
    assert compiler(parsed(schema), failure) is None


@pytest.mark.parametrize("ns", [0, -1, 1, 999, 1772368215123456789, -62135596800 * 10**9 + 1,
                                MIN_TIMESTAMP_NS, MAX_TIMESTAMP_NS])
def test_timestamps_from_the_wire_are_the_runtime_s(ns: int) -> None:
    expected = timestamp_ns(ns)
    for ts in (timestamp_from_nanos(ns), *([timestamp_from_millis(ns // 10**6)] if ns % 10**6 == 0 else [])):
        assert (type(ts), ts.ns, ts, ts.tzinfo, ts.microsecond) == (
            type(expected), expected.ns, expected, expected.tzinfo, expected.microsecond)
    ms = ns // 10**6
    assert timestamp_from_millis(ms).ns == timestamp_ns(ms * 10**6).ns


def test_timestamps_out_of_range_and_a_full_cache() -> None:
    for bad in (MIN_TIMESTAMP_NS - 1, MAX_TIMESTAMP_NS + 1):
        with pytest.raises(EvaluationError):
            timestamp_from_nanos(bad)
    with pytest.raises(EvaluationError):
        timestamp_from_millis(MAX_TIMESTAMP_NS // 10**6 + 1)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for second in range(-2500, 2500):  # more seconds than are kept
        ts = timestamp_from_millis(second * 1000 + 7)
        built = epoch + timedelta(milliseconds=second * 1000 + 7)  # the same moment, field by field
        assert (type(ts), ts.ns, ts.isoformat()) == (Timestamp, (second * 1000 + 7) * 10**6, built.isoformat())
    assert 0 < len(times._second_states) <= 4096


@pytest.mark.parametrize("fixed", [{"size": -1}, {"size": "4"}, {}])
def test_a_fixed_type_without_a_usable_size_is_left_to_fastavro(fixed: dict[str, Any], compiler: Any) -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "f", "type": {"type": "fixed", "name": "F", **fixed}}]}
    assert compiler(schema, failure) is None
