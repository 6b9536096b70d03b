"""A reader in C for one Avro writer schema: the schema compiled here into a small program (nested
tuples of operations) that the `_avroc` extension interprets, at a third of the generated Python
reader's cost per record.

The program reads what `avro_compiled`'s reader reads, with the same values and the same errors at
the same positions (the unit tests run both on arbitrary schemas and on hostile bytes), for the same
schemas: non-recursive ones with the logical types mapped here. Where the extension was not built
(no compiler at install time) `compile_program_reader` gives None and the Python reader is used.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable
from datetime import UTC
from typing import Any, Final

from provisioner.expr.times import Timestamp
from provisioner.formats.avro_compiled import (
    NAMED_KINDS,
    NOT_COMPILED,
    LeftOver,
    Reader,
    Unsupported,
    bounds,
    decimal_reader,
    too_long,
)
from provisioner.formats.avro_times import timestamp_from_millis, timestamp_from_nanos
from provisioner.formats.bounds import MAX_VALUE_BYTES, MAX_VALUES
from provisioner.formats.schemas import DecodeError
from provisioner.formats.wire import HEADER_SIZE

__all__ = ["C_READER", "compile_program", "compile_program_reader", "reader_kind"]

try:
    _avroc: Any = importlib.import_module("provisioner.formats._avroc")
except ImportError:  # built without a compiler: the Python readers serve
    _avroc = None
C_READER: Final = _avroc is not None
"""Whether the C extension is importable."""

(NULL, BOOLEAN, LONG, FLOAT, DOUBLE, STRING, BYTES, FIXED, ENUM, RECORD, UNION, ARRAY, MAP, CONVERT,
 TIMESTAMP) = range(15)
_MAX_NODES: Final = 20_000
_PRIMITIVES: Final = {"null": (NULL,), "boolean": (BOOLEAN,), "int": (LONG,), "long": (LONG,), "float": (FLOAT,),
                      "double": (DOUBLE,), "string": (STRING,), "bytes": (BYTES,)}
# (base type, logical type) -> nanoseconds per unit of the base value (avro_compiled's timestamps)
_NS_PER: Final[dict[tuple[str, str], int]] = {
    ("long", "timestamp-millis"): 1_000_000, ("long", "local-timestamp-millis"): 1_000_000,
    ("long", "timestamp-micros"): 1000, ("long", "local-timestamp-micros"): 1000,
    ("long", "timestamp-nanos"): 1, ("long", "local-timestamp-nanos"): 1,
    ("int", "timestamp-nanos"): 1, ("int", "local-timestamp-nanos"): 1, ("int", "date"): 86_400_000_000_000}


def _uuid_text(text: str) -> str:
    return str(uuid.UUID(text))


def _nanos(multiplier: int) -> Callable[[int], Timestamp]:
    if multiplier == 1_000_000:
        return timestamp_from_millis
    if multiplier == 1:
        return timestamp_from_nanos
    return lambda units: timestamp_from_nanos(units * multiplier)


class _Program:
    """The program's nodes, named types inlined (a recursive one refused)."""

    def __init__(self, named: dict[str, Any]) -> None:
        self.named = named
        self.visiting: set[str] = set()
        self.nodes = 0

    def value(self, schema: Any) -> tuple[Any, ...]:
        self.nodes += 1
        if self.nodes > _MAX_NODES:
            raise Unsupported("the schema's program would be too long")
        if isinstance(schema, list):
            return (UNION, tuple(self.value(branch) for branch in schema))
        if isinstance(schema, str):
            if schema in self.named:
                return self.inline(schema, self.named[schema])
            if schema in _PRIMITIVES:
                return _PRIMITIVES[schema]
            raise Unsupported(f"type {schema!r}")
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if isinstance(kind, str) and logical is not None:
            program = self.logical(schema, kind, logical)
            if program is not None:
                return program
        if kind in NAMED_KINDS:
            return self.inline(schema.get("name", ""), schema, kind)
        if kind == "array":
            return (ARRAY, self.value(schema["items"]))
        if kind == "map":
            return (MAP, self.value(schema["values"]))
        if isinstance(kind, str | list | dict):
            return self.value(kind)
        raise Unsupported(f"type {kind!r}")

    def logical(self, schema: Any, kind: str, logical: str) -> tuple[Any, ...] | None:
        multiplier = _NS_PER.get((kind, logical))
        if multiplier is not None:
            return (TIMESTAMP, multiplier, _nanos(multiplier), Timestamp, UTC)
        if (kind, logical) == ("string", "uuid"):
            return (CONVERT, _uuid_text, (STRING,))
        if logical == "decimal" and kind in ("bytes", "fixed"):
            base = self.value({k: v for k, v in schema.items() if k != "logicalType"})
            return (CONVERT, decimal_reader(schema), base)
        if logical in NOT_COMPILED:
            raise Unsupported(f"logical type {logical}")
        return None

    def inline(self, name: str, schema: Any, kind: str | None = None) -> tuple[Any, ...]:
        if name in self.visiting:
            raise Unsupported("a recursive type")
        self.visiting.add(name)
        program = self.value(schema) if kind is None else self.named_type(schema, kind)
        self.visiting.discard(name)
        return program

    def named_type(self, schema: Any, kind: str) -> tuple[Any, ...]:
        if kind == "enum":
            return (ENUM, tuple(schema["symbols"]))
        if kind == "fixed":
            size = schema.get("size")
            if type(size) is not int or size < 0:
                raise Unsupported("a fixed type without a size")
            return (FIXED, size)
        fields = schema.get("fields", ())
        return (RECORD, tuple(str(field["name"]) for field in fields),
                tuple(self.value(field["type"]) for field in fields))


def compile_program(parsed: Any) -> tuple[Any, ...] | None:
    """The read program of the parsed writer schema `parsed` (fastavro's form), or None when the
    schema is not one it takes (those the Python reader does not take either)."""
    named = dict(parsed.get("__named_schemas", {})) if isinstance(parsed, dict) else {}
    try:
        return _Program(named).value(parsed)
    except (Unsupported, RecursionError, LookupError, TypeError, ValueError):
        return None


def compile_program_reader(parsed: Any, failure: Callable[[Exception, int], DecodeError]) -> Reader | None:
    """The C reader of whole records written with `parsed`, failing as `compile_reader`'s does; None
    when the extension is not built or the schema is not one it takes. Schemas whose array items
    can take no bytes must not be given (`avro._guarded` keeps them from it): the reader refuses
    such an item rather than loop on it."""
    program = compile_program(parsed) if _avroc is not None else None
    if program is None:
        return None
    try:
        reader: Reader = _avroc.Reader(program, HEADER_SIZE, MAX_VALUE_BYTES, MAX_VALUES, failure, LeftOver,
                                       too_long, bounds)
    except (ValueError, TypeError, OverflowError):
        return None
    return reader


def reader_kind(reader: Reader) -> str:
    """What reads with `reader`, in words (for benches and diagnostics)."""
    if _avroc is not None and isinstance(reader, _avroc.Reader):
        return "C program"
    code = getattr(reader, "__code__", None)
    return "generated Python" if code is not None and code.co_filename == "<avro reader>" else "fastavro"
