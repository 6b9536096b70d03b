"""Avro values as CEL values (spec.md, "Formats"): what fastavro reads, converted where the two
differ, guided by the writer's schema so a record without logical types is not walked at all.

fastavro already gives records and maps as dicts, arrays as lists, enums as their symbols, bytes
and fixed as bytes, and a union's value as the value of its branch. What is converted:

| Avro                                          | fastavro gives      | CEL value                     |
|-----------------------------------------------|---------------------|-------------------------------|
| timestamp-millis/-micros, local-timestamp-*   | datetime            | timestamp (local-* read as UTC) |
| timestamp-nanos, local-timestamp-nanos        | int                 | timestamp, to the nanosecond  |
| date                                          | date                | timestamp at 00:00 UTC        |
| time-millis, time-micros                      | time                | duration since midnight       |
| decimal (bytes or fixed)                      | Decimal             | double                        |
| uuid (string or fixed)                        | UUID / bytes        | string                        |

A union of several record types is read with each value's record name (fastavro's
`return_record_name_override`), so the right branch's conversion applies; the name is dropped.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Final

from provisioner.expr.times import NS, as_timestamp, duration_ns, timestamp_ns

__all__ = ["Convert", "compile_converter"]

Convert = Callable[[Any], Any]
_EPOCH_DAY: Final = date(1970, 1, 1)
_DAY_NS: Final = 86_400 * NS
_TIMESTAMPS: Final = frozenset({"timestamp-millis", "timestamp-micros", "local-timestamp-millis",
                                "local-timestamp-micros"})
_NANOS: Final = frozenset({"timestamp-nanos", "local-timestamp-nanos"})
_PRIMITIVES: Final = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


def _timestamp(value: Any) -> Any:
    return as_timestamp(value) if isinstance(value, datetime) else value


def _nanos(value: Any) -> Any:
    return timestamp_ns(value) if type(value) is int else value


def _date(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return timestamp_ns((value - _EPOCH_DAY).days * _DAY_NS)
    return value


def _time(value: Any) -> Any:
    if isinstance(value, time):
        seconds = (value.hour * 60 + value.minute) * 60 + value.second
        return duration_ns(seconds * NS + value.microsecond * 1000)
    return value


def _decimal(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


def _uuid(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes) and len(value) == 16:
        return str(uuid.UUID(bytes=value))
    return value


_LOGICAL: Final[dict[str, Convert]] = {
    **dict.fromkeys(_TIMESTAMPS, _timestamp), **dict.fromkeys(_NANOS, _nanos), "date": _date,
    "time-millis": _time, "time-micros": _time, "decimal": _decimal, "uuid": _uuid,
}


class _Compiler:
    """Builds the converter of a parsed schema; named types are compiled once (and may recurse)."""

    def __init__(self, named: dict[str, Any]) -> None:
        self.named = named
        self.done: dict[str, Convert | None] = {}
        self.needs_memo: dict[str, bool] = {}

    def needs(self, schema: Any, visiting: frozenset[str] = frozenset()) -> bool:
        """Whether values of `schema` differ anywhere from what fastavro reads."""
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return False
            if schema in self.needs_memo:
                return self.needs_memo[schema]
            if schema in visiting or schema not in self.named:
                return False  # a cycle adds no logical type that its other members do not show
            found = self.needs(self.named[schema], visiting | {schema})
            if not visiting:
                self.needs_memo[schema] = found
            return found
        if isinstance(schema, list):
            records = [b for b in schema if self._kind(b) == "record"]
            return len(records) > 1 or any(self.needs(b, visiting) for b in schema)
        kind = schema.get("type")
        if schema.get("logicalType") in _LOGICAL:
            return True
        if kind in ("record", "error"):
            name = schema.get("name", "")
            inner = visiting | {name}
            return any(self.needs(f["type"], inner) for f in schema.get("fields", ()))
        if kind == "array":
            return self.needs(schema["items"], visiting)
        if kind == "map":
            return self.needs(schema["values"], visiting)
        return isinstance(kind, dict | list | str) and kind not in _PRIMITIVES and self.needs(kind, visiting)

    def _kind(self, schema: Any) -> str | None:
        if isinstance(schema, str):
            target = self.named.get(schema)
            return self._kind(target) if isinstance(target, dict) else None
        if isinstance(schema, dict):
            kind = schema.get("type")
            return "record" if kind in ("record", "error") else kind if isinstance(kind, str) else None
        return None

    def compile(self, schema: Any) -> Convert | None:
        if not self.needs(schema):
            return None
        if isinstance(schema, str):
            return self._named(schema)
        if isinstance(schema, list):
            return self._union(schema)
        logical = _LOGICAL.get(schema.get("logicalType", ""))
        if logical is not None:
            return logical
        kind = schema.get("type")
        if kind in ("record", "error"):
            return self._named(schema["name"])
        if kind == "array":
            item = self.compile(schema["items"])
            assert item is not None
            return lambda items: [item(v) for v in items] if type(items) is list else items
        if kind == "map":
            value = self.compile(schema["values"])
            assert value is not None
            return lambda entries: {k: value(v) for k, v in entries.items()} if type(entries) is dict else entries
        return self.compile(kind)

    def _named(self, name: str) -> Convert | None:
        if name in self.done:
            found = self.done[name]
            if found is not None:
                return found
            done = self.done

            def later(value: Any) -> Any:  # still being compiled (a recursive type): look it up when run
                convert = done[name]
                assert convert is not None
                return convert(value)

            return later
        self.done[name] = None
        record = self.named[name]
        fields = [(f["name"], conv) for f in record.get("fields", ())
                  if (conv := self.compile(f["type"])) is not None]

        def convert(value: Any) -> Any:
            # Tolerant of what is not this record (a map in the same union): only its own fields.
            if type(value) is dict:
                for field, conv in fields:
                    if field in value:
                        value[field] = conv(value[field])
            return value

        self.done[name] = convert
        return convert

    def _union(self, branches: list[Any]) -> Convert:
        by_name: dict[str, Convert] = {}
        others: list[Convert] = []
        for branch in branches:
            conv = self.compile(branch)
            if conv is None:
                continue
            if self._kind(branch) == "record":
                name = branch if isinstance(branch, str) else branch["name"]
                by_name[name] = conv
            else:
                others.append(conv)
        if len(by_name) == 1 and len([b for b in branches if self._kind(b) == "record"]) == 1:
            others.extend(by_name.values())  # a lone record branch comes back without its name
            by_name = {}

        def convert(value: Any) -> Any:
            if value is None:
                return None
            if type(value) is tuple:  # (record name, record): a union of several record types
                name, value = value
                conv = by_name.get(name)
                return value if conv is None else conv(value)
            for conv in others:
                value = conv(value)
            return value

        return convert


def compile_converter(schema: Any) -> Convert | None:
    """The converter of values read with the parsed writer `schema` (None: nothing to convert)."""
    named = dict(schema.get("__named_schemas", {})) if isinstance(schema, dict) else {}
    return _Compiler(named).compile(schema)

