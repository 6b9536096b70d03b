"""Protobuf values decoded from registered `.proto` text: the value mapping of spec.md ("Formats"),
message indexes, references, and hostile schemas and payloads (each a clear error, never a crash)."""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from provisioner.expr import UInt, compile_expression
from provisioner.expr.times import Duration, Timestamp, make_duration, make_timestamp
from provisioner.formats.protobuf import ProtoDecodeError, ProtoSchema, ProtoSchemaError, compile_proto

SCALARS = """\
syntax = "proto3";
package acme;

message Scalars {
  int32 f_int32 = 1;
  int64 f_int64 = 2;
  uint32 f_uint32 = 3;
  uint64 f_uint64 = 4;
  sint32 f_sint32 = 5;
  sint64 f_sint64 = 6;
  fixed32 f_fixed32 = 7;
  fixed64 f_fixed64 = 8;
  sfixed32 f_sfixed32 = 9;
  sfixed64 f_sfixed64 = 10;
  float f_float = 11;
  double f_double = 12;
  bool f_bool = 13;
  string f_string = 14;
  bytes f_bytes = 15;
}
"""

ORDER = """\
syntax = "proto3";
package acme.orders;

import "google/protobuf/timestamp.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/wrappers.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/any.proto";
import "google/protobuf/empty.proto";
import "google/protobuf/field_mask.proto";
import "acme/common/money.proto";

enum Status { STATUS_UNSPECIFIED = 0; PLACED = 1; SHIPPED = 2; }

message Order {
  string order_id = 1;
  Status status = 2;
  acme.common.Money total = 3;
  repeated Line lines = 4;
  map<string, string> labels = 5;
  map<int64, Line> by_number = 6;
  map<uint32, Status> status_by_code = 7;
  map<bool, int32> by_flag = 8;
  optional int32 priority = 9;
  oneof payment {
    string card = 10;
    int64 voucher = 11;
  }
  repeated int64 numbers = 12;
  repeated Status history = 13;
  google.protobuf.Timestamp placed_at = 20;
  google.protobuf.Duration ttl = 21;
  google.protobuf.Int64Value discount = 22;
  google.protobuf.UInt32Value stock = 23;
  google.protobuf.StringValue note = 24;
  google.protobuf.BytesValue blob = 25;
  google.protobuf.BoolValue gift = 26;
  google.protobuf.DoubleValue weight = 27;
  google.protobuf.Struct attributes = 28;
  google.protobuf.Value anything = 29;
  google.protobuf.ListValue items = 30;
  google.protobuf.Any extra = 31;
  google.protobuf.Empty nothing = 32;
  google.protobuf.FieldMask mask = 33;

  message Line {
    string sku = 1;
    int32 qty = 2;
    message Note { string text = 1; }
    Note note = 3;
  }
}

message Refund { string order_id = 1; acme.common.Money amount = 2; }
"""

MONEY = """\
syntax = "proto3";
package acme.common;
import "acme/common/currency.proto";
message Money { int64 units = 1; int32 nanos = 2; Currency currency = 3; }
"""

CURRENCY = 'syntax = "proto3";\npackage acme.common;\nenum Currency { EUR = 0; USD = 1; }\n'

REFERENCES = {"acme/common/money.proto": MONEY, "acme/common/currency.proto": CURRENCY}

RECURSIVE = 'syntax = "proto3";\nimport "google/protobuf/any.proto";\n' \
            "message Node { Node child = 1; repeated Node children = 2; google.protobuf.Any any = 3; int32 n = 4; }\n"

PROTO2 = """\
syntax = "proto2";
message Legacy {
  required string id = 1;
  optional int32 count = 2 [default = 7];
  repeated string tags = 3;
  enum Kind { A = 5; B = 6; }
  optional Kind kind = 4;
}
"""


WRAPPER_FIELDS = ("discount", "stock", "note", "blob", "gift", "weight")


@pytest.fixture(scope="module")
def scalars() -> ProtoSchema:
    return compile_proto(SCALARS, {})


@pytest.fixture(scope="module")
def orders() -> ProtoSchema:
    return compile_proto(ORDER, REFERENCES)


@pytest.fixture(scope="module")
def recursive() -> ProtoSchema:
    return compile_proto(RECURSIVE, {})


def message(schema: ProtoSchema, full_name: str, **fields: Any) -> Message:
    """A message of the schema's own compiled class, so the bytes are the ones protobuf writes."""
    plans = schema._plans
    return plans.message_class(plans.pool.FindMessageTypeByName(full_name))(**fields)


def first(msg: Message) -> bytes:
    """The payload of the schema's first message type: the single index byte 0, then the message."""
    return b"\x00" + msg.SerializeToString()


def indexed(indexes: list[int], msg: Message) -> bytes:
    return bytes(zigzag(v) for v in [len(indexes), *indexes]) + msg.SerializeToString()


def as_base64(proto: Message) -> str:
    """A file as confluent-kafka's serializer registers it: its FileDescriptorProto in base64."""
    return base64.b64encode(proto.SerializeToString()).decode()


def zigzag(v: int) -> int:
    assert 0 <= v < 64
    return v << 1


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if not n:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def test_every_scalar_type_maps_to_its_cel_value(scalars: ProtoSchema) -> None:
    msg = message(scalars, "acme.Scalars", f_int32=-2**31, f_int64=-2**63, f_uint32=2**32 - 1, f_uint64=2**64 - 1,
                  f_sint32=-5, f_sint64=2**63 - 1, f_fixed32=7, f_fixed64=2**64 - 2, f_sfixed32=-9,
                  f_sfixed64=-(2**62), f_float=0.5, f_double=-1.25e300, f_bool=True, f_string="çà 🎉",
                  f_bytes=b"\x00\xff")
    value = scalars.decode(first(msg))
    assert value == {"f_int32": -2**31, "f_int64": -2**63, "f_uint32": 2**32 - 1, "f_uint64": 2**64 - 1,
                     "f_sint32": -5, "f_sint64": 2**63 - 1, "f_fixed32": 7, "f_fixed64": 2**64 - 2,
                     "f_sfixed32": -9, "f_sfixed64": -(2**62), "f_float": 0.5, "f_double": -1.25e300,
                     "f_bool": True, "f_string": "çà 🎉", "f_bytes": b"\x00\xff"}
    kinds = {k: type(v) for k, v in value.items()}
    assert kinds == {"f_int32": int, "f_int64": int, "f_uint32": UInt, "f_uint64": UInt, "f_sint32": int,
                     "f_sint64": int, "f_fixed32": UInt, "f_fixed64": UInt, "f_sfixed32": int, "f_sfixed64": int,
                     "f_float": float, "f_double": float, "f_bool": bool, "f_string": str, "f_bytes": bytes}
    assert compile_expression("event.f_uint64 == 18446744073709551615u && type(event.f_int64) == int")(value) is True


def test_unset_proto3_scalars_are_present_with_their_defaults(scalars: ProtoSchema) -> None:
    value = scalars.decode(b"\x00")
    assert value == {"f_int32": 0, "f_int64": 0, "f_uint32": 0, "f_uint64": 0, "f_sint32": 0, "f_sint64": 0,
                     "f_fixed32": 0, "f_fixed64": 0, "f_sfixed32": 0, "f_sfixed64": 0, "f_float": 0.0,
                     "f_double": 0.0, "f_bool": False, "f_string": "", "f_bytes": b""}
    assert type(value["f_uint64"]) is UInt
    assert compile_expression("has(event.f_string) && event.f_string == ''")(value) is True


def test_nested_repeated_map_enum_and_references(orders: ProtoSchema) -> None:
    line = message(orders, "acme.orders.Order.Line", sku="A-1", qty=2, note={"text": "fragile"})
    msg = message(orders, "acme.orders.Order", order_id="o-1", status=2,
                  total={"units": 12, "nanos": 500_000_000, "currency": 1},
                  lines=[line, message(orders, "acme.orders.Order.Line", sku="B-2")],
                  labels={"region": "eu"}, by_number={7: line}, status_by_code={404: 1}, by_flag={True: 1},
                  numbers=[1, -2, 2**40], history=[0, 1, 9])
    value = orders.decode(first(msg))
    assert value["order_id"] == "o-1"
    assert value["status"] == "SHIPPED"
    assert value["total"] == {"units": 12, "nanos": 500_000_000, "currency": "USD"}
    assert value["lines"] == [{"sku": "A-1", "qty": 2, "note": {"text": "fragile"}}, {"sku": "B-2", "qty": 0}]
    assert value["labels"] == {"region": "eu"}
    assert value["by_number"] == {7: {"sku": "A-1", "qty": 2, "note": {"text": "fragile"}}}
    assert value["status_by_code"] == {404: "PLACED"} and type(next(iter(value["status_by_code"]))) is UInt
    assert value["by_flag"] == {True: 1}
    assert value["numbers"] == [1, -2, 2**40]
    assert value["history"] == ["STATUS_UNSPECIFIED", "PLACED", 9]  # an unknown number stays an int
    assert compile_expression("event.lines.exists(l, l.sku == 'A-1' && l.note.text == 'fragile')")(value) is True


def test_presence_messages_oneof_optional_absent_wrappers_null_others_defaulted(orders: ProtoSchema) -> None:
    value = orders.decode(first(message(orders, "acme.orders.Order", order_id="o-2")))
    assert value == {"order_id": "o-2", "status": "STATUS_UNSPECIFIED", "lines": [], "labels": {}, "by_number": {},
                     "status_by_code": {}, "by_flag": {}, "numbers": [], "history": [],
                     **dict.fromkeys(WRAPPER_FIELDS)}  # a wrapper is a nullable scalar: null when not set
    for absent in ("total", "priority", "card", "voucher", "placed_at", "attributes", "extra"):
        assert compile_expression(f"has(event.{absent})")(value) is False, absent
    assert compile_expression("event.discount == null && event.note == null")(value) is True
    value = orders.decode(first(message(orders, "acme.orders.Order", priority=0, voucher=0, total={})))
    assert value["priority"] == 0 and value["voucher"] == 0 and "card" not in value
    assert value["total"] == {"units": 0, "nanos": 0, "currency": "EUR"}


def test_well_known_types(orders: ProtoSchema) -> None:
    line = message(orders, "acme.orders.Order.Line", sku="Z")
    msg = message(orders, "acme.orders.Order", discount={"value": -3}, stock={"value": 4}, note={"value": ""},
                  blob={"value": b"\x01"}, gift={"value": False}, weight={"value": 2.5}, nothing={},
                  mask={"paths": ["order_id", "total.units"]})
    msg.attributes.update({"a": 1, "b": ["x", None, True]})
    msg.anything.struct_value.update({"k": 2})
    msg.items.extend([1.5])
    msg.placed_at.FromNanoseconds(1_767_225_600_123_456_789)
    msg.ttl.FromNanoseconds(-1_500_000_001)
    msg.extra.Pack(line)
    value = orders.decode(first(msg))
    assert type(value["placed_at"]) is Timestamp and value["placed_at"].ns == 1_767_225_600_123_456_789
    assert type(value["ttl"]) is Duration and value["ttl"] == make_duration(-1, -500_000_001)
    assert value["discount"] == -3 and value["stock"] == 4 and type(value["stock"]) is UInt
    assert value["note"] == "" and value["blob"] == b"\x01" and value["gift"] is False and value["weight"] == 2.5
    assert value["attributes"] == {"a": 1.0, "b": ["x", None, True]}
    assert value["anything"] == {"k": 2.0}
    assert value["items"] == [1.5]
    assert value["extra"] == {"@type": "type.googleapis.com/acme.orders.Order.Line", "sku": "Z", "qty": 0}
    assert value["nothing"] == {}
    assert value["mask"] == "orderId,total.units"
    program = compile_expression("event.placed_at > timestamp('2026-01-01T00:00:00Z') && event.ttl < duration('0s')")
    assert program(value) is True


def test_any_of_a_well_known_or_unknown_type(orders: ProtoSchema) -> None:
    msg = message(orders, "acme.orders.Order")
    msg.extra.Pack(message(orders, "google.protobuf.Timestamp", seconds=60))
    assert orders.decode(first(msg))["extra"] == {"@type": "type.googleapis.com/google.protobuf.Timestamp",
                                                  "value": make_timestamp(60)}
    msg.extra.type_url, msg.extra.value = "type.googleapis.com/other.Thing", b"\x08\x01"
    assert orders.decode(first(msg))["extra"] == {"@type": "type.googleapis.com/other.Thing", "value": b"\x08\x01"}


def test_message_indexes_name_top_level_and_nested_types(orders: ProtoSchema) -> None:
    refund = message(orders, "acme.orders.Refund", order_id="r-1", amount={"units": 5})
    assert orders.decode(indexed([1], refund)) == {"order_id": "r-1",
                                                  "amount": {"units": 5, "nanos": 0, "currency": "EUR"}}
    nested = message(orders, "acme.orders.Order.Line.Note", text="hi")
    # Order's nested types, in order, are its 4 map entries (its fields come before `message Line`),
    # then Line, whose own nested Note is therefore [0, 4, 0].
    assert orders.decode(indexed([0, 4, 0], nested)) == {"text": "hi"}
    assert orders.decode(indexed([0, 0], message(orders, "acme.orders.Order.LabelsEntry", key="k"))) == \
        {"key": "k", "value": ""}
    # [0] written in full (count 1, index 0), as confluent-kafka's serializer writes it, or as the byte 0.
    assert orders.decode(indexed([0], message(orders, "acme.orders.Order"))) == orders.decode(b"\x00")


def test_confluent_serializer_bytes_and_its_base64_registration() -> None:
    """confluent-kafka's serializer writes the message indexes and registers the schema (and its
    references) as base64 FileDescriptorProtos, which a registry like srfake serves back as is."""
    compiled = compile_proto(ORDER, REFERENCES)
    client = SchemaRegistryClient.new_client({"url": "mock://protobuf-format"})
    order = message(compiled, "acme.orders.Order", order_id="o", status=1, total={"units": 3, "currency": 1})
    for msg, index_bytes, expected in [
        (order, b"\x00", {**compiled.decode(first(order)), "status": "PLACED"}),
        (message(compiled, "acme.orders.Refund", order_id="r"), b"\x02\x02", {"order_id": "r"}),
        (message(compiled, "acme.orders.Order.Line.Note", text="n"), b"\x06\x00\x08\x00", {"text": "n"}),
    ]:
        serializer = ProtobufSerializer(type(msg), client, {"use.deprecated.format": False})
        data = serializer(msg, SerializationContext(f"topic-{msg.DESCRIPTOR.name}", MessageField.VALUE))
        assert data is not None and data[0] == 0 and data[5:5 + len(index_bytes)] == index_bytes
        registered = client.get_schema(int.from_bytes(data[1:5], "big"))
        assert "syntax" not in registered.schema_str  # base64, not .proto text
        references = all_references(client, registered.references)
        assert set(references) == set(REFERENCES)
        schema = compile_proto(registered.schema_str, references)
        assert schema.decode(data[5:]) == expected
        assert compiled.decode(data[5:]) == expected


def all_references(client: Any, references: list[Any]) -> dict[str, str]:
    """Every file the schema imports, directly or through another reference, by import path."""
    found: dict[str, str] = {}
    for ref in references:
        schema = client.get_version(ref.subject, ref.version).schema
        found[ref.name] = schema.schema_str
        found |= all_references(client, schema.references or [])
    return found


def test_text_and_base64_files_mix() -> None:
    from google.protobuf import descriptor_pb2

    money = compile_proto(MONEY, {"acme/common/currency.proto": CURRENCY})
    proto = descriptor_pb2.FileDescriptorProto()
    money._plans.pool.FindFileByName("acme/common/currency.proto").CopyToProto(proto)
    mixed = compile_proto(MONEY, {"acme/common/currency.proto": as_base64(proto)})
    assert mixed.decode(b"\x00\x18\x01") == {"units": 0, "nanos": 0, "currency": "USD"}


def test_proto2_fields_track_presence() -> None:
    schema = compile_proto(PROTO2, {})
    assert schema.decode(b"\x00\x0a\x01x") == {"id": "x", "tags": []}
    assert schema.decode(b"\x00\x0a\x01x\x10\x07\x20\x06") == {"id": "x", "count": 7, "tags": [], "kind": "B"}


def test_editions_presence_and_keyword_field_names() -> None:
    schema = compile_proto('edition = "2023";\nmessage M {\n  int32 from = 1;\n  string class = 2;\n'
                           "  int32 plain = 3 [features.field_presence = IMPLICIT];\n}\n", {})
    assert schema.decode(b"\x00") == {"plain": 0}
    assert schema.decode(b"\x00\x08\x00\x12\x01c") == {"from": 0, "class": "c", "plain": 0}


def test_schemas_that_do_not_compile_say_why() -> None:
    with pytest.raises(ProtoSchemaError, match=r'^schema\.proto:3:3: "Dollar" is not defined\.$'):
        compile_proto('syntax = "proto3";\nmessage M {\n  Dollar amount = 1;\n}\n', {})
    with pytest.raises(ProtoSchemaError, match=r"missing.proto"):
        compile_proto('syntax = "proto3";\nimport "missing.proto";\nmessage M {}\n', {})
    with pytest.raises(ProtoSchemaError, match=r"^a\.proto:2:1: File recursively imports itself: a.proto -> b.proto"):
        compile_proto('syntax = "proto3";\nimport "a.proto";\nmessage M {}\n',
                      {"a.proto": 'syntax = "proto3";\nimport "b.proto";\n', "b.proto": 'import "a.proto";\n'})
    with pytest.raises(ProtoSchemaError, match=r"neither .proto text nor a base64"):
        compile_proto("AAAA", {})
    with pytest.raises(ProtoSchemaError, match="cannot be stored as a file"):
        compile_proto('syntax = "proto3";\n', {"a.proto": "", "a.proto/b.proto": ""})
    with pytest.raises(ProtoSchemaError, match="UTF-8"):
        compile_proto('syntax = "proto3"; message M {} // \ud800', {})


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd", "a/../../../etc/passwd", "./x.proto",
                                  "..\\\\x.proto"])
def test_imports_reach_only_references_and_well_known_types(path: str) -> None:
    with pytest.raises(ProtoSchemaError) as caught:
        compile_proto(f'syntax = "proto3";\nimport "{path}";\nmessage M {{}}\n', {})
    assert "root:" not in str(caught.value)  # nothing of the file was read
    assert "provisioner-proto-" not in str(caught.value)  # nor the compiler's private folder named


@pytest.mark.parametrize("name", ["../x.proto", "/abs.proto", "a//b.proto", "a/./b.proto", "-I.proto",
                                  "@args.proto", "x.txt", ""])
def test_reference_names_cannot_escape_the_schema_folder(name: str) -> None:
    with pytest.raises(ProtoSchemaError, match=r"not a relative .proto path"):
        compile_proto(f'syntax = "proto3";\nimport "{name}";\nmessage M {{}}\n', {name: 'syntax = "proto3";'})


def test_a_reference_cannot_replace_a_well_known_type() -> None:
    fake = 'syntax = "proto3";\npackage google.protobuf;\nmessage Timestamp { string seconds = 1; }\n'
    schema = compile_proto('syntax = "proto3";\nimport "google/protobuf/timestamp.proto";\n'
                           "message M { google.protobuf.Timestamp at = 1; }\n",
                           {"google/protobuf/timestamp.proto": fake})
    assert schema.decode(b"\x00\x0a\x02\x08\x05") == {"at": make_timestamp(5)}


def test_a_base64_schema_cannot_import_what_is_not_given() -> None:
    from google.protobuf import descriptor_pb2

    proto = descriptor_pb2.FileDescriptorProto(name="x.proto", syntax="proto3", dependency=["secret.proto"])
    with pytest.raises(ProtoSchemaError, match=r"'secret.proto'.*not among the schema's references"):
        compile_proto(as_base64(proto), {})
    a = descriptor_pb2.FileDescriptorProto(name="a.proto", dependency=["b.proto"])
    b = descriptor_pb2.FileDescriptorProto(name="b.proto", dependency=["a.proto"])
    main = descriptor_pb2.FileDescriptorProto(name="m.proto", dependency=["a.proto"])
    with pytest.raises(ProtoSchemaError, match=r"import cycle: a\.proto -> b\.proto -> a\.proto"):
        compile_proto(as_base64(main), {"a.proto": as_base64(a), "b.proto": as_base64(b)})


def test_a_schema_that_crashes_the_compiler_is_refused() -> None:
    depth = 100_000
    text = ('syntax = "proto3";\nimport "google/protobuf/descriptor.proto";\n'
            "extend google.protobuf.MessageOptions { M m = 50000; }\n"
            f"message M {{ M m = 1; option (m) = {'{m:' * depth}{'}' * depth}; }}\n")
    with pytest.raises(ProtoSchemaError, match=r"the compiler crashed \(signal|recursion"):
        compile_proto(text, {})


@pytest.mark.parametrize("payload", [
    b"", b"\x02", b"\x02\x08", b"\x04\x00", b"\xff" * 11, b"\x01\x00", b"\x03\x02",
])
def test_bad_message_indexes(orders: ProtoSchema, payload: bytes) -> None:
    with pytest.raises(ProtoDecodeError, match=r"message index|payload"):
        orders.decode(payload)


def test_truncated_and_corrupt_payloads(orders: ProtoSchema) -> None:
    whole = first(message(orders, "acme.orders.Order", order_id="o-1", lines=[{"sku": "x"}]))
    assert whole == b"\x00\x0a\x03o-1\x22\x03\x0a\x01x"
    for cut in (2, 3, 4, 5, 7, 8, 9, 10):  # inside a field (6 ends the first one)
        with pytest.raises(ProtoDecodeError, match=r"acme\.orders\.Order does not decode"):
            orders.decode(whole[:cut])
    with pytest.raises(ProtoDecodeError, match="does not decode"):
        orders.decode(b"\x00\x0a\xff\xff\xff\xff\x0f")  # a length past the end


def test_values_out_of_range_name_the_field(orders: ProtoSchema) -> None:
    msg = message(orders, "acme.orders.Order", lines=[{"sku": "x"}])
    msg.placed_at.seconds = 2**62
    with pytest.raises(ProtoDecodeError, match=r"acme\.orders\.Order: placed_at: timestamp out of range"):
        orders.decode(first(msg))
    msg = message(orders, "acme.orders.Order")
    msg.ttl.seconds, msg.ttl.nanos = 1, -1
    with pytest.raises(ProtoDecodeError, match="ttl: duration nanos -1"):
        orders.decode(first(msg))


def test_a_200000_deep_payload_is_refused(recursive: ProtoSchema) -> None:
    depth = 200_000
    prefixes, size = [], 2  # the innermost message: n = 1
    for _ in range(depth):
        prefix = b"\x0a" + varint(size)
        prefixes.append(prefix)
        size += len(prefix)
    payload = b"\x00" + b"".join(reversed(prefixes)) + b"\x20\x01"
    with pytest.raises(ProtoDecodeError, match=r"does not decode.*(depth|Depth)"):
        recursive.decode(payload)


def test_nesting_within_the_parser_limit_but_past_the_value_bounds(recursive: ProtoSchema) -> None:
    """A repeated field adds a level protobuf's parser does not count, and each `Any` starts it anew."""
    node = message(recursive, "Node", n=1)
    for _ in range(80):
        node = message(recursive, "Node", children=[node])
    with pytest.raises(ProtoDecodeError, match="nested more than 128 levels"):
        recursive.decode(first(node))
    node = message(recursive, "Node", n=1)
    for _ in range(500):
        outer = message(recursive, "Node")
        outer.any.Pack(node)
        node = outer
    with pytest.raises(ProtoDecodeError, match=r"nested more than 128 levels"):
        recursive.decode(first(node))


def test_many_empty_messages_are_refused(orders: ProtoSchema) -> None:
    payload = b"\x00" + b"\x22\x00" * 50_000  # 100 kB of empty Lines, each a map of defaults
    with pytest.raises(ProtoDecodeError, match="more than 100000 values"):
        orders.decode(payload)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_are_refused(orders: ProtoSchema, payload: bytes) -> None:
    try:
        value = orders.decode(payload)
    except ProtoDecodeError:
        return
    assert type(value) is dict


INT32 = st.integers(-2**31, 2**31 - 1)
INT64 = st.integers(-2**63, 2**63 - 1)


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({}, optional={
    "f_int32": INT32, "f_int64": INT64, "f_uint32": st.integers(0, 2**32 - 1), "f_uint64": st.integers(0, 2**64 - 1),
    "f_sint32": INT32, "f_sint64": INT64, "f_fixed32": st.integers(0, 2**32 - 1),
    "f_fixed64": st.integers(0, 2**64 - 1), "f_sfixed32": INT32, "f_sfixed64": INT64,
    "f_float": st.floats(width=32), "f_double": st.floats(), "f_bool": st.booleans(), "f_string": st.text(),
    "f_bytes": st.binary(),
}))
def test_scalar_values_round_trip(scalars: ProtoSchema, fields: dict[str, Any]) -> None:
    value = scalars.decode(first(message(scalars, "acme.Scalars", **fields)))
    for name, expected in fields.items():
        got = value[name]
        if isinstance(expected, float) and math.isnan(expected):
            assert math.isnan(got)
        elif name == "f_float":
            assert got == struct.unpack("<f", struct.pack("<f", expected))[0]
        else:
            assert got == expected and type(got) is (UInt if "uint" in name or "_fixed" in name else type(expected))


TEXT = st.text(max_size=6)
LINES = st.fixed_dictionaries({}, optional={"sku": TEXT, "qty": INT32,
                                            "note": st.fixed_dictionaries({}, optional={"text": TEXT})})
SECONDS = st.integers(-62_135_596_800, 253_402_300_799)  # 0001-01-01 to 9999-12-31
DURATIONS = st.one_of(
    st.builds(lambda s, n: {"seconds": s, "nanos": n}, st.integers(0, 315_576_000_000), st.integers(0, 999_999_999)),
    st.builds(lambda s, n: {"seconds": -s, "nanos": -n}, st.integers(0, 315_576_000_000), st.integers(0, 999_999_999)),
)
ORDERS = st.fixed_dictionaries({}, optional={
    "order_id": TEXT, "status": st.integers(0, 4), "lines": st.lists(LINES, max_size=3),
    "total": st.fixed_dictionaries({}, optional={"units": INT64, "nanos": INT32, "currency": st.integers(0, 1)}),
    "labels": st.dictionaries(TEXT, TEXT, max_size=3), "by_number": st.dictionaries(INT64, LINES, max_size=2),
    "status_by_code": st.dictionaries(st.integers(0, 2**32 - 1), st.integers(0, 3), max_size=2),
    "by_flag": st.dictionaries(st.booleans(), INT32, max_size=2), "priority": INT32, "card": TEXT, "voucher": INT64,
    "numbers": st.lists(INT64, max_size=3), "history": st.lists(st.integers(0, 4), max_size=3),
    "placed_at": st.builds(lambda s, n: {"seconds": s, "nanos": n}, SECONDS, st.integers(0, 999_999_999)),
    "ttl": DURATIONS, "discount": st.builds(dict, value=INT64), "stock": st.builds(dict, value=st.integers(0, 2**32 - 1)),
    "note": st.builds(dict, value=TEXT), "blob": st.builds(dict, value=st.binary(max_size=4)),
    "gift": st.builds(dict, value=st.booleans()), "weight": st.builds(dict, value=st.floats()),
    "nothing": st.just({}), "mask": st.builds(dict, paths=st.lists(st.from_regex(r"[a-z]{1,3}(_[a-z]{1,3})?", fullmatch=True), max_size=2)),
})
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False), TEXT)
STRUCTS = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                       max_leaves=8)


def agrees(ours: Any, theirs: Any) -> bool:
    """Whether our value is the one the proto3 JSON mapping prints (64-bit integers as strings,
    bytes in base64, timestamps and durations as text, map keys as strings)."""
    from google.protobuf import duration_pb2

    from provisioner.expr.times import parse_timestamp

    if type(ours) is bool or ours is None or type(ours) is str:
        return theirs == ours and type(theirs) is type(ours)
    if isinstance(ours, int):
        return theirs in (int(ours), str(int(ours))) and type(theirs) is not bool
    if type(ours) is float:
        special = {"NaN": math.isnan(ours), "Infinity": ours == math.inf, "-Infinity": ours == -math.inf}
        return special.get(theirs, False) if isinstance(theirs, str) else theirs == ours
    if type(ours) is bytes:
        return theirs == base64.b64encode(ours).decode()
    if type(ours) is Timestamp:
        return parse_timestamp(theirs) == ours
    if type(ours) is Duration:
        duration = duration_pb2.Duration()
        duration.FromJsonString(theirs)
        return duration.ToNanoseconds() == ours.ns
    if type(ours) is list:
        return type(theirs) is list and len(ours) == len(theirs) and all(map(agrees, ours, theirs))
    assert type(ours) is dict, ours
    keyed = {(str(k).lower() if type(k) is bool else k if type(k) is str else str(int(k))): v for k, v in ours.items()}
    return isinstance(theirs, dict) and keyed.keys() == theirs.keys() and all(agrees(v, theirs[k]) for k, v in keyed.items())


@settings(max_examples=150, deadline=None)
@given(ORDERS, st.dictionaries(TEXT, STRUCTS, max_size=3), STRUCTS)
def test_values_agree_with_the_proto3_json_mapping(orders: ProtoSchema, fields: dict[str, Any],
                                                   attributes: dict[str, Any], anything: Any) -> None:
    """Differential: every field present or absent, and every value, as protobuf's own JSON printer
    has them (printing the fields without presence too), up to the JSON encoding of the value."""
    from google.protobuf.json_format import MessageToDict

    msg = message(orders, "acme.orders.Order", **fields)
    msg.attributes.update(attributes)
    if isinstance(anything, dict):
        msg.anything.struct_value.update(anything)
    elif isinstance(anything, list):
        msg.anything.list_value.extend(anything)
    msg.extra.Pack(message(orders, "acme.orders.Order.Line", sku="s"))
    theirs = MessageToDict(msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True,
                           descriptor_pool=orders._plans.pool)
    ours = orders.decode(first(msg))
    for name in WRAPPER_FIELDS:  # the printer leaves out a wrapper not set, which is null here
        if name not in theirs:
            assert ours.pop(name) is None
    assert agrees(ours, theirs), (ours, theirs)


def test_a_wrapper_in_a_oneof_or_optional_is_absent_when_not_set() -> None:
    schema = compile_proto('syntax = "proto3";\nimport "google/protobuf/wrappers.proto";\n'
                           "message M {\n  oneof o { google.protobuf.Int32Value a = 1; string b = 2; }\n"
                           "  optional google.protobuf.Int32Value c = 3;\n  google.protobuf.Int32Value d = 4;\n}\n", {})
    assert schema.decode(b"\x00") == {"d": None}
    assert schema.decode(b"\x00\x0a\x00\x1a\x02\x08\x01") == {"a": 0, "c": 1, "d": None}
