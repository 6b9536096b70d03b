"""Decoded Protobuf messages as the values expressions read (spec.md, "Formats").

Field names as written in the `.proto`; int32/int64/sint/sfixed -> int, uint32/uint64/fixed -> uint,
float/double -> double, bytes -> bytes, enums -> their names (an unknown number stays an int);
Timestamp/Duration -> timestamp/duration, wrappers -> their value or null, Struct/Value/ListValue ->
map/value/list, Any -> its message with "@type", FieldMask -> its JSON string. A field that tracks
presence (message, oneof member, `optional`, any proto2 singular field) is absent when not set,
but for a wrapper, a nullable scalar, which is null then (unless in a oneof or `optional`); the others are
present with their default (repeated `[]`, map `{}`).

Each message type gets one plan (a list of per-field converters) the first time it is met.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from provisioner.expr import EvaluationError, UInt
from provisioner.expr.times import make_duration, make_timestamp

MAX_DEPTH = 128
MAX_VALUES = 100_000
"""The bounds a JSON event has (maps and lists nested at most 128 deep, 100,000 values in all),
so every later stage stays as far from the recursion limit and memory as with JSON: an empty
nested message takes 2 bytes on the wire but fills a map with every field's default."""

Convert = Callable[[Any, "Walk", int], Any]
_FD = FieldDescriptor
_UINT_TYPES = frozenset({_FD.TYPE_UINT32, _FD.TYPE_UINT64, _FD.TYPE_FIXED32, _FD.TYPE_FIXED64})
_WRAPPERS = frozenset({"DoubleValue", "FloatValue", "Int64Value", "UInt64Value", "Int32Value", "UInt32Value",
                       "BoolValue", "StringValue", "BytesValue"})


class BadValue(Exception):
    """A value the wire format allows but its type (or a bound) does not, at `path`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str] = []

    def __str__(self) -> str:
        return f"{'.'.join(self.path)}: {self.reason}" if self.path else self.reason


class Walk:
    """One message's conversion: the schema's plans and the values it may still make."""

    __slots__ = ("left", "plans")

    def __init__(self, plans: Plans) -> None:
        self.plans = plans
        self.left = MAX_VALUES

    def spend(self, values: int, depth: int) -> None:
        self.left -= values
        if self.left < 0:
            raise BadValue(f"more than {MAX_VALUES} values (messages, lists, maps and their items)")
        if depth > MAX_DEPTH:
            raise BadValue(f"messages, lists and maps nested more than {MAX_DEPTH} levels deep")


ABSENT_IF_UNSET = 1
NULL_IF_UNSET = 2


def _presence(field: FieldDescriptor) -> int:
    """What an unset `field` is: absent, null (a wrapper outside a oneof), or its default (0)."""
    if not field.has_presence:
        return 0
    kind = field.message_type
    if kind is not None and kind.full_name in _WELL_KNOWN and kind.name in _WRAPPERS \
            and kind.file.name == "google/protobuf/wrappers.proto" and field.containing_oneof is None:
        return NULL_IF_UNSET
    return ABSENT_IF_UNSET


def _same(value: Any, walk: Walk, depth: int) -> Any:
    return value


def _uint(value: Any, walk: Walk, depth: int) -> Any:
    return UInt(value)


class Plan:
    """How to convert one message type: the fields read as they are (no presence, the value
    already right: one `attrgetter` call reads them all), then the others one by one; or, for a
    well-known type with a value of its own, the function that makes it (`special`)."""

    __slots__ = ("others", "plain", "read", "size", "special")

    def __init__(self, fields: list[tuple[str, int, Convert]], special: Convert | None = None) -> None:
        self.special = special
        self.size = len(fields)
        self.plain = tuple(name for name, presence, conv in fields if conv is _same and not presence)
        self.others = [(name, presence, conv) for name, presence, conv in fields if name not in self.plain]
        read = operator.attrgetter(*self.plain) if self.plain else lambda message: ()
        self.read: Callable[[Any], Any] = read if len(self.plain) != 1 else lambda message: (read(message),)


class Plans:
    """The converters of one pool's message types, each built the first time it is needed."""

    def __init__(self, pool: DescriptorPool) -> None:
        self.pool = pool
        self.by_class: dict[type, Plan] = {}
        self._classes: dict[str, type[Message]] = {}

    def message_class(self, desc: Descriptor) -> type[Message]:
        cls = self._classes.get(desc.full_name)
        if cls is None:
            cls = self._classes[desc.full_name] = GetMessageClass(desc)
        return cls

    def value_of(self, message: Message) -> Any:
        """`message` as a value; BadValue when a value or a bound does not allow it."""
        return convert(message, Walk(self), 1)

    def plan_of(self, message: Message) -> Plan:
        plan = self.by_class.get(type(message))
        if plan is None:
            desc: Descriptor = cast(Descriptor, message.DESCRIPTOR)  # upb's or the Python one: same API
            special = _WELL_KNOWN.get(desc.full_name)
            if special is not None and desc.file.name == special[0]:
                plan = Plan([], special[1])
            else:
                plan = Plan([(f.name, _presence(f), self._field(f)) for f in desc.fields])
            self.by_class[type(message)] = plan
        return plan

    def _field(self, field: FieldDescriptor) -> Convert:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key = self._single(field.message_type.fields_by_name["key"])
            value = self._single(field.message_type.fields_by_name["value"])

            # Keys, then `items[k]`: a protobuf map's `items()` is the slow generic Mapping one.
            def convert_map(items: Any, walk: Walk, depth: int) -> Any:
                walk.spend(len(items), depth)
                if key is _same and value is _same:
                    return {k: items[k] for k in items}
                return {key(k, walk, depth): value(items[k], walk, depth + 1) for k in items}
            return convert_map
        one = self._single(field)
        if not field.is_repeated:
            return one

        def convert_list(items: Any, walk: Walk, depth: int) -> Any:
            walk.spend(len(items), depth)
            return items[:] if one is _same else [one(v, walk, depth + 1) for v in items]  # [:] is a list
        return convert_list

    def _single(self, field: FieldDescriptor) -> Convert:
        kind = field.type
        if kind in _UINT_TYPES:
            return _uint
        if field.enum_type is not None:
            names = {v.number: v.name for v in field.enum_type.values}
            return lambda number, walk, depth: names.get(number, number)
        if kind in (_FD.TYPE_MESSAGE, _FD.TYPE_GROUP):
            return convert
        return _same  # int, double, bool, string, bytes: already the value


def convert(message: Any, walk: Walk, depth: int) -> Any:
    """`message` as a value at nesting `depth`: a dict, or a well-known type's own value."""
    plan = walk.plans.by_class.get(type(message)) or walk.plans.plan_of(message)
    if plan.special is not None:
        return plan.special(message, walk, depth)
    walk.spend(plan.size, depth)
    out = dict(zip(plan.plain, plan.read(message), strict=True))
    for name, presence, conv in plan.others:
        if presence and not message.HasField(name):
            if presence == NULL_IF_UNSET:
                out[name] = None
            continue
        try:
            out[name] = conv(getattr(message, name), walk, depth + 1)
        except BadValue as exc:
            exc.path.insert(0, name)
            raise
    return out


def _timestamp(m: Any, walk: Walk, depth: int) -> Any:
    if not 0 <= m.nanos < 1_000_000_000:
        raise BadValue(f"timestamp nanos {m.nanos} out of range")
    return _in_range(make_timestamp, m)


def _duration(m: Any, walk: Walk, depth: int) -> Any:
    if not -1_000_000_000 < m.nanos < 1_000_000_000 or (m.seconds and m.nanos and (m.seconds < 0) != (m.nanos < 0)):
        raise BadValue(f"duration nanos {m.nanos} out of range for {m.seconds} s")
    return _in_range(make_duration, m)


def _in_range(make: Callable[[int, int], Any], m: Any) -> Any:
    try:
        return make(m.seconds, m.nanos)
    except EvaluationError as exc:
        raise BadValue(f"{exc} ({m.seconds} s)") from None


def _wrapper(m: Any, walk: Walk, depth: int) -> Any:
    return UInt(m.value) if m.DESCRIPTOR.name.startswith("UInt") else m.value


def _value(m: Any, walk: Walk, depth: int) -> Any:
    kind = m.WhichOneof("kind")
    if kind == "struct_value":
        return _struct(m.struct_value, walk, depth)
    if kind == "list_value":
        return _list_value(m.list_value, walk, depth)
    if kind is None or kind == "null_value":
        return None
    return getattr(m, kind)


def _struct(m: Any, walk: Walk, depth: int) -> Any:
    walk.spend(len(m.fields), depth)
    return {k: _value(v, walk, depth + 1) for k, v in m.fields.items()}


def _list_value(m: Any, walk: Walk, depth: int) -> Any:
    walk.spend(len(m.values), depth)
    return [_value(v, walk, depth + 1) for v in m.values]


def _any(m: Any, walk: Walk, depth: int) -> Any:
    """The packed message with its type URL under "@type" (a well-known type's value under
    "value"), as the JSON mapping writes it; a type the schema does not know keeps its bytes.
    Its message is parsed anew (protobuf's own depth limit starts over), so `walk` bounds it."""
    walk.spend(1, depth)
    type_url, raw = m.type_url, m.value
    try:
        desc = walk.plans.pool.FindMessageTypeByName(type_url.rpartition("/")[2])
    except KeyError:
        return {"@type": type_url, "value": raw}
    try:
        inner = walk.plans.message_class(desc).FromString(raw)
    except DecodeError as exc:
        raise BadValue(f"Any of type {type_url!r} does not decode: {exc}") from None
    value = convert(inner, walk, depth)
    if type(value) is dict and desc.full_name not in _WELL_KNOWN:
        return {"@type": type_url, **value}
    return {"@type": type_url, "value": value}


def _field_mask(m: Any, walk: Walk, depth: int) -> Any:
    return ",".join(".".join(_lower_camel(part) for part in path.split(".")) for path in m.paths)


def _lower_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _empty(m: Any, walk: Walk, depth: int) -> Any:
    return {}


_WELL_KNOWN: dict[str, tuple[str, Convert]] = {
    f"google.protobuf.{name}": (f"google/protobuf/{file}.proto", fn) for name, file, fn in [
        ("Timestamp", "timestamp", _timestamp), ("Duration", "duration", _duration), ("Struct", "struct", _struct),
        ("Value", "struct", _value), ("ListValue", "struct", _list_value), ("Any", "any", _any),
        ("FieldMask", "field_mask", _field_mask), ("Empty", "empty", _empty),
        *((name, "wrappers", _wrapper) for name in _WRAPPERS),
    ]
}
"""The well-known types with a value of their own, by full name, with the file that must define them."""
