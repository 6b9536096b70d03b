"""The shape of `event` a Protobuf message type gives (see `spec.event_shape`), for `validate`.

It follows `proto_values`: what the decoder puts in `event` is what the shape says. A message is a
closed record of its fields (by the names the `.proto` writes), a repeated field a list, a map field
a map, the well-known types their own values; a field with presence (a message, a oneof member, an
`optional`) may be absent, which the shape marks nullable.
"""

from __future__ import annotations

from typing import Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from provisioner.spec.event_shape import DYN, Shape

__all__ = ["shape_of_message"]

_MAX_DEPTH: Final = 64

_SCALARS: Final = {
    FieldDescriptor.TYPE_DOUBLE: "double", FieldDescriptor.TYPE_FLOAT: "double",
    FieldDescriptor.TYPE_INT64: "int", FieldDescriptor.TYPE_SINT64: "int", FieldDescriptor.TYPE_SFIXED64: "int",
    FieldDescriptor.TYPE_INT32: "int", FieldDescriptor.TYPE_SINT32: "int", FieldDescriptor.TYPE_SFIXED32: "int",
    FieldDescriptor.TYPE_UINT64: "uint", FieldDescriptor.TYPE_FIXED64: "uint", FieldDescriptor.TYPE_UINT32: "uint",
    FieldDescriptor.TYPE_FIXED32: "uint", FieldDescriptor.TYPE_BOOL: "bool", FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BYTES: "bytes", FieldDescriptor.TYPE_ENUM: "string",
}
_WRAPPED: Final = {"DoubleValue": "double", "FloatValue": "double", "Int64Value": "int", "Int32Value": "int",
                   "UInt64Value": "uint", "UInt32Value": "uint", "BoolValue": "bool", "StringValue": "string",
                   "BytesValue": "bytes"}
_WELL_KNOWN: Final = {"Timestamp": Shape("timestamp"), "Duration": Shape("duration"), "Struct": Shape("map"),
                      "Value": DYN, "ListValue": Shape("list"), "Any": Shape("map"), "FieldMask": Shape("string"),
                      "Empty": Shape("map", closed=True)}


def shape_of_message(message: Descriptor, origin: str = "") -> Shape:
    """The shape of a decoded `message`."""
    return _message(message, 0, origin)


def _message(message: Descriptor, depth: int, origin: str) -> Shape:
    if depth > _MAX_DEPTH:
        return DYN
    if message.file.name.startswith("google/protobuf/"):
        if message.name in _WRAPPED:
            return Shape(_WRAPPED[message.name], nullable=True, origin=origin)
        if message.name in _WELL_KNOWN:
            known = _WELL_KNOWN[message.name]
            return Shape(known.kind, closed=known.closed, origin=origin)
    fields = {field.name: _field(field, depth, origin) for field in message.fields}
    return Shape("map", fields=fields, closed=True, origin=origin)


def _field(field: FieldDescriptor, depth: int, origin: str) -> Shape:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value = field.message_type.fields_by_name["value"]
        return Shape("map", items=_single(value, depth + 1, origin), origin=origin)
    single = _single(field, depth + 1, origin)
    if field.is_repeated:
        return Shape("list", items=single, origin=origin)
    if field.has_presence and not single.nullable:
        return Shape(single.kind, single.fields, single.closed, single.items, True, origin)
    return single


def _single(field: FieldDescriptor, depth: int, origin: str) -> Shape:
    if field.message_type is not None:
        return _message(field.message_type, depth, origin)
    kind = _SCALARS.get(field.type)
    return DYN if kind is None else Shape(kind, origin=origin)
