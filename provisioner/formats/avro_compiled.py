"""A reader compiled for one Avro writer schema: Python source generated from the schema, once per
schema id, that reads a payload straight into CEL values (spec.md, "Formats").

fastavro's reader interprets the schema for every value it reads (a dict look-up and a string
comparison per field, a datetime built and then converted), which costs more than the bytes do: a
reader written for the schema reads a field in a few operations and builds each CEL value once.
The values are those of fastavro's reader and `avro_values`' conversion; the unit tests compare
the two on arbitrary schemas. A field name enters the source only as the string literal `repr()`
writes, and symbols and other values as constants handed to it, so a schema cannot inject code.

Only schemas whose values nest a bounded number of levels are compiled (recursive ones are read by
fastavro's bounded pure-Python reader), and only with the logical types mapped here (not times of
day, nor uuids in bytes); for any other schema `compile_reader` gives None and fastavro reads it.
"""

from __future__ import annotations

import decimal
import struct
import uuid
from collections.abc import Callable
from typing import Any, Final

from provisioner.formats.avro_times import timestamp_from_millis, timestamp_from_nanos
from provisioner.formats.bounds import MAX_VALUE_BYTES, MAX_VALUES, bounds_failure
from provisioner.formats.schemas import DecodeError
from provisioner.formats.wire import HEADER_SIZE

__all__ = ["NAMED_KINDS", "NOT_COMPILED", "LeftOver", "Reader", "Unsupported", "bounds", "compile_reader",
           "decimal_reader", "too_long"]

Reader = Callable[[bytes], Any]
"""Reads the value of a whole record (the wire format's header included)."""

_MAX_LINES: Final = 4000
_SHIFTS: Final = tuple(range(7, 70, 7))  # of a varint's bytes after the first (10 bytes at most)
NAMED_KINDS: Final = frozenset({"record", "error", "enum", "fixed"})
_INTEGERS: Final = frozenset({"int", "long"})
_TIMESTAMP: Final = "_timestamp({} * {})"
# (base type, logical type) -> the expression of the CEL value, {} the base value.
_LOGICAL: Final[dict[tuple[str, str], str]] = {
    ("long", "timestamp-millis"): "_timestamp_ms({})",
    ("long", "local-timestamp-millis"): "_timestamp_ms({})",
    ("long", "timestamp-micros"): _TIMESTAMP.format("{}", 1000),
    ("long", "local-timestamp-micros"): _TIMESTAMP.format("{}", 1000),
    ("long", "timestamp-nanos"): "_timestamp({})",
    ("long", "local-timestamp-nanos"): "_timestamp({})",
    ("int", "timestamp-nanos"): "_timestamp({})",
    ("int", "local-timestamp-nanos"): "_timestamp({})",
    ("int", "date"): _TIMESTAMP.format("{}", 86_400_000_000_000),
    ("string", "uuid"): "str(_uuid({}))",
}
_DECIMAL_BASES: Final = frozenset({"bytes", "fixed"})
# Logical types this module leaves to fastavro and `avro_values` (times of day, uuids in bytes).
NOT_COMPILED: Final = frozenset({"decimal", "time-millis", "time-micros", "uuid"})


class LeftOver(ValueError):
    """The payload has bytes after the value."""

    def __init__(self, left: int) -> None:
        super().__init__(f"{left} bytes left after the value")
        self.left = left


class Unsupported(Exception):
    """The schema is one this module does not compile."""


def _varint(data: bytes, first: int, pos: int) -> tuple[int, int]:
    """The rest of a varint whose first byte (`first`, high bit set) was read; (raw value, position)."""
    value = first & 0x7F
    for shift in _SHIFTS:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
    raise ValueError("a varint longer than 10 bytes")


def decimal_reader(schema: Any) -> Callable[[bytes], float]:
    """The double of a decimal's two's-complement bytes, rounded as fastavro rounds (its context's
    precision the schema's) before `avro_values` takes the double."""
    scale = schema.get("scale", 0)
    try:
        if type(scale) is not int:
            raise TypeError(scale)
        context = decimal.Context(prec=schema["precision"])
    except (KeyError, TypeError, ValueError):
        raise Unsupported("a decimal without a usable precision and scale") from None

    def read(data: bytes) -> float:
        return float(context.create_decimal(int.from_bytes(data, "big", signed=True)).scaleb(-scale, context))

    return read


def _too_wide() -> ValueError:
    return ValueError("a varint longer than 10 bytes")


def _span(data: bytes, first: int, pos: int) -> tuple[bytes, int]:
    """The bytes of a string or bytes value whose length's first byte (`first`, at `pos`) has the
    high bit set or is negative; (bytes, position after them)."""
    pos += 1
    if first > 127:
        first, pos = _varint(data, first, pos)
    if first & 1:
        raise _short()
    end = pos + (first >> 1)
    if end > len(data):
        raise _short()
    return data[pos:end], end


def _bad(what: str, index: int) -> ValueError:
    return ValueError(f"{what} index {index} out of range")


def _short() -> ValueError:
    return ValueError("the payload ends inside a value (or a length is negative)")


class _Source:
    """The generated function's lines and the constants it uses."""

    def __init__(self, named: dict[str, Any]) -> None:
        self.named = named
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {
            "_varint": _varint, "_span": _span, "_SHIFTS": _SHIFTS, "_too_wide": _too_wide, "_bad": _bad,
            "_short": _short, "_LeftOver": LeftOver, "_timestamp": timestamp_from_nanos,
            "_timestamp_ms": timestamp_from_millis, "_uuid": uuid.UUID,
            "_float": struct.Struct("<f").unpack_from, "_double": struct.Struct("<d").unpack_from}
        self.count = 0
        self.visiting: set[str] = set()

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def constant(self, value: Any) -> str:
        name = self.name("_k")
        self.constants[name] = value
        return name

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)
        if len(self.lines) > _MAX_LINES:
            raise Unsupported("the schema's reader would be too long")

    def long(self, indent: int, target: str) -> None:
        """Lines reading a zigzag varint into `target`."""
        self.emit(indent, f"{target} = b[p]")
        self.emit(indent, "p += 1")
        self.emit(indent, f"if {target} > 127:")
        self.emit(indent + 1, f"{target} &= 0x7F")
        self.emit(indent + 1, "for shift in _SHIFTS:")
        self.emit(indent + 2, "byte = b[p]")
        self.emit(indent + 2, "p += 1")
        self.emit(indent + 2, f"{target} |= (byte & 0x7F) << shift")
        self.emit(indent + 2, "if byte < 0x80:")
        self.emit(indent + 3, "break")
        self.emit(indent + 1, "else:")
        self.emit(indent + 2, "raise _too_wide()")
        self.emit(indent, f"{target} = ({target} >> 1) ^ -({target} & 1)")

    def span(self, indent: int, target: str, size: str) -> None:
        """Lines taking the next `size` bytes (a literal) into `target`, as bytes."""
        self.emit(indent, f"q = p + {size}")
        self.emit(indent, "if q > n:")
        self.emit(indent + 1, "raise _short()")
        self.emit(indent, f"{target} = b[p:q]")
        self.emit(indent, "p = q")

    def value(self, schema: Any, indent: int, target: str) -> None:
        """Lines reading a value of `schema` into `target`."""
        if isinstance(schema, list):
            self.union(schema, indent, target)
            return
        if isinstance(schema, str):
            if schema in self.named:
                if schema in self.visiting:
                    raise Unsupported("a recursive type")
                self.visiting.add(schema)
                self.value(self.named[schema], indent, target)
                self.visiting.discard(schema)
                return
            self.primitive(schema, indent, target)
            return
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if isinstance(kind, str) and logical is not None:
            convert = _LOGICAL.get((kind, logical))
            if convert is not None:
                self.primitive(kind, indent, target)
                self.emit(indent, f"{target} = {convert.format(target)}")
                return
            if logical == "decimal" and kind in _DECIMAL_BASES:
                self.value({k: v for k, v in schema.items() if k != "logicalType"}, indent, target)
                self.emit(indent, f"{target} = {self.constant(decimal_reader(schema))}({target})")
                return
            if logical in NOT_COMPILED:
                raise Unsupported(f"logical type {logical}")
        if kind in NAMED_KINDS:
            name = schema.get("name", "")
            if name in self.visiting:
                raise Unsupported("a recursive type")
            self.visiting.add(name)
            getattr(self, "error" if kind == "error" else kind)(schema, indent, target)
            self.visiting.discard(name)
        elif kind == "array":
            self.array(schema, indent, target)
        elif kind == "map":
            self.map(schema, indent, target)
        elif isinstance(kind, str | list | dict):
            self.value(kind, indent, target)
        else:
            raise Unsupported(f"type {kind!r}")

    def primitive(self, kind: str, indent: int, target: str) -> None:
        if kind == "null":
            self.emit(indent, f"{target} = None")
        elif kind == "boolean":
            self.emit(indent, f"{target} = b[p] != 0")
            self.emit(indent, "p += 1")
        elif kind in _INTEGERS:
            self.long(indent, target)
        elif kind in ("float", "double"):
            self.emit(indent, f"{target} = _{kind}(b, p)[0]")
            self.emit(indent, f"p += {4 if kind == 'float' else 8}")
        elif kind in ("bytes", "string"):
            # A length under 64 is one byte, even (zigzag): anything else goes the long way. Bytes
            # past the end fail at the length's first byte, as the C reader's do.
            self.emit(indent, f"{target} = b[p]")
            self.emit(indent, f"if {target} & 0x81:")
            self.emit(indent + 1, f"{target}, p = _span(b, {target}, p)")
            self.emit(indent, "else:")
            self.emit(indent + 1, f"q = p + 1 + ({target} >> 1)")
            self.emit(indent + 1, "if q > n:")
            self.emit(indent + 2, "raise _short()")
            self.emit(indent + 1, f"{target} = b[p + 1:q]")
            self.emit(indent + 1, "p = q")
            if kind == "string":
                self.emit(indent, f"{target} = {target}.decode()")
        else:
            raise Unsupported(f"type {kind!r}")

    def record(self, schema: Any, indent: int, target: str) -> None:
        fields = []
        for field in schema.get("fields", ()):
            variable = self.name("v")
            self.value(field["type"], indent, variable)
            fields.append(f"{str(field['name'])!r}: {variable}")  # a literal: repr() is one
        self.emit(indent, f"{target} = {{{', '.join(fields)}}}")

    error = record

    def enum(self, schema: Any, indent: int, target: str) -> None:
        symbols = self.constant(tuple(schema["symbols"]))
        index = self.name("i")
        self.long(indent, index)
        self.emit(indent, f"if {index} < 0 or {index} >= {len(schema['symbols'])}:")
        self.emit(indent + 1, f"raise _bad('enum', {index})")
        self.emit(indent, f"{target} = {symbols}[{index}]")

    def fixed(self, schema: Any, indent: int, target: str) -> None:
        size = schema.get("size")
        if type(size) is not int or size < 0:
            raise Unsupported("a fixed type without a size")
        self.span(indent, target, str(size))

    def union(self, branches: list[Any], indent: int, target: str) -> None:
        index = self.name("i")
        self.long(indent, index)
        for number, branch in enumerate(branches):
            self.emit(indent, f"{'if' if number == 0 else 'elif'} {index} == {number}:")
            self.value(branch, indent + 1, target)
        self.emit(indent, "else:")
        self.emit(indent + 1, f"raise _bad('union', {index})")

    def blocks(self, indent: int, count: str) -> None:
        """The head of a loop over an array's or a map's blocks (a negative count has a byte size)."""
        self.long(indent, count)
        self.emit(indent, f"while {count}:")
        self.emit(indent + 1, f"if {count} < 0:")
        self.emit(indent + 2, f"{count} = -{count}")
        self.long(indent + 2, "_")
        self.emit(indent + 1, f"for _ in range({count}):")

    def array(self, schema: Any, indent: int, target: str) -> None:
        items, count, item = self.name("a"), self.name("c"), self.name("v")
        self.emit(indent, f"{items} = []")
        self.blocks(indent, count)
        self.value(schema["items"], indent + 2, item)
        self.emit(indent + 2, f"{items}.append({item})")
        self.long(indent + 1, count)
        self.emit(indent, f"{target} = {items}")

    def map(self, schema: Any, indent: int, target: str) -> None:
        entries, count, key, item = self.name("m"), self.name("c"), self.name("k"), self.name("v")
        self.emit(indent, f"{entries} = {{}}")
        self.blocks(indent, count)
        self.primitive("string", indent + 2, key)
        self.value(schema["values"], indent + 2, item)
        self.emit(indent + 2, f"{entries}[{key}] = {item}")
        self.long(indent + 1, count)
        self.emit(indent, f"{target} = {entries}")


def compile_reader(parsed: Any, failure: Callable[[Exception, int], DecodeError]) -> Reader | None:
    """The reader of whole records (the wire format's header skipped) written with the parsed
    writer schema `parsed` (fastavro's form), or None when the schema is not one this module
    compiles. Bytes that are not one value of the schema raise `failure(error, position)`: the
    error is IndexError, ValueError or struct.error (LeftOver when bytes remain after the value;
    UnicodeDecodeError with the position in the payload just past the string's bytes); a record
    over a decode bound raises DecodeError. Each array or map item takes a byte at least (schemas
    with items of none are not compiled), so the values are counted only in records of more than
    MAX_VALUES bytes; their depth is bounded by the schema."""
    named = dict(parsed.get("__named_schemas", {})) if isinstance(parsed, dict) else {}
    source = _Source(named)
    try:
        source.value(parsed, 2, "value")
        lines = ["def read(b):",
                 "    n = len(b)",
                 f"    if n > {HEADER_SIZE + MAX_VALUE_BYTES}:",
                 "        raise _too_long(n)",
                 "    try:",
                 f"        p = {HEADER_SIZE}",
                 *source.lines,
                 "    except Exception as error:",
                 f"        raise _failure(error, p - {HEADER_SIZE}) from None",
                 "    if p != n:",
                 f"        raise _failure(_LeftOver(n - p) if p < n else _short(), p - {HEADER_SIZE})",
                 f"    if n > {HEADER_SIZE + MAX_VALUES}:",
                 "        _bounds(value)",
                 "    return value"]
        namespace = {**source.constants, "_failure": failure, "_too_long": too_long, "_bounds": bounds}
        exec(compile("\n".join(lines), "<avro reader>", "exec"), namespace)  # noqa: S102 - see the module docstring
    except (Unsupported, SyntaxError, RecursionError, MemoryError, LookupError, TypeError, ValueError):
        return None  # a schema this module does not take, or not as fastavro would: fastavro's to read
    read: Reader = namespace["read"]
    return read


def too_long(size: int) -> DecodeError:
    return DecodeError(f"value is {size - HEADER_SIZE} bytes, more than {MAX_VALUE_BYTES}")


def bounds(value: Any) -> None:
    found = bounds_failure(value)
    if found is not None:
        raise DecodeError(found)
