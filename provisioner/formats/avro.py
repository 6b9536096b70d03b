"""Avro values in the Confluent wire format, read with the schema they were written with.

Each schema id is fetched once from the `SchemaSource`, parsed with its references (named types in
other subjects) and kept; a new id (a new schema version mid-stream) is one more fetch, no restart.
Reading is a program compiled for the schema and interpreted in C (`avro_program`), else (the
extension not built) a Python reader generated for it (`avro_compiled`), or fastavro's C reader for
the logical types those leave to fastavro. Schemas whose values could be nested without bound (a
recursive type) or hold any number of values in no bytes (an array of nulls) use fastavro's
pure-Python reader, whose recursion Python bounds and whose array blocks are counted here, since
the C reader would overflow the C stack (a crash, not an error) on a record nested 200,000 deep.
"""

from __future__ import annotations

import importlib
import io
import json
import struct
from collections.abc import Callable
from typing import Any, Final

import fastavro
from fastavro import _read_py
from fastavro.io.binary_decoder import BinaryDecoder

from provisioner.formats.avro_compiled import LeftOver, Reader, compile_reader
from provisioner.formats.avro_program import compile_program_reader
from provisioner.formats.avro_values import Convert, compile_converter
from provisioner.formats.bounds import MAX_DEPTH, MAX_VALUE_BYTES, MAX_VALUES, TOO_MANY_VALUES, bounds_failure
from provisioner.formats.schemas import (
    CompiledSchemas,
    DecodeError,
    RegisteredSchema,
    SchemaSource,
    resolve_references,
)
from provisioner.formats.utf8 import not_utf8
from provisioner.formats.wire import HEADER_SIZE, split_header

__all__ = ["AvroFormat", "fastavro_reader", "parse_avro"]

# The pure-Python reader and its decoder (untyped internals of fastavro 1.x): recursion that Python
# bounds, and array blocks this module can count (see the module docstring).
_PY_READER: Any = _read_py
_PY_DECODER: Any = BinaryDecoder
try:  # the C reader's entry below schemaless_reader (absent where fastavro has no compiled wheel)
    _C_READ_DATA: Any = importlib.import_module("fastavro._read")._read_data
except (ImportError, AttributeError):
    _C_READ_DATA = None
_UNBOUNDED: Final = MAX_DEPTH + 1


def parse_avro(schema: RegisteredSchema, references: list[tuple[str, RegisteredSchema]]) -> Any:
    """The parsed writer schema (fastavro's form), its references' named types included."""
    named: dict[str, Any] = {}
    try:
        for name, referenced in references:
            if referenced.schema_type != "AVRO":
                raise DecodeError(f"reference {name!r} is a {referenced.schema_type} schema, not Avro")
            fastavro.parse_schema(json.loads(referenced.text), named_schemas=named)
        return fastavro.parse_schema(json.loads(schema.text), named_schemas=named)
    except DecodeError:
        raise
    except Exception as error:  # fastavro raises several kinds for a schema it cannot use
        raise DecodeError(f"not a usable Avro schema: {error}") from None


class _Shape:
    """How deep a schema's values can nest (containers), and whether an array's items can take no
    bytes at all; a recursive schema is unbounded."""

    def __init__(self, named: dict[str, Any]) -> None:
        self.named = named
        self.zero_width_items = False

    def depth(self, schema: Any, visiting: frozenset[str]) -> int:
        if isinstance(schema, str):
            if schema not in self.named:
                return 0
            if schema in visiting:
                return _UNBOUNDED
            return self.depth(self.named[schema], visiting | {schema})
        if isinstance(schema, list):
            return max((self.depth(branch, visiting) for branch in schema), default=0)
        kind = schema.get("type")
        if kind in ("record", "error"):
            inner = visiting | {schema.get("name", "")}
            return 1 + max((self.depth(f["type"], inner) for f in schema.get("fields", ())), default=0)
        if kind == "array":
            if self.width(schema["items"], frozenset()) == 0:
                self.zero_width_items = True
            return 1 + self.depth(schema["items"], visiting)
        if kind == "map":
            return 1 + self.depth(schema["values"], visiting)
        if isinstance(kind, str | list | dict) and kind not in ("enum", "fixed"):
            return self.depth(kind, visiting)
        return 0

    def width(self, schema: Any, visiting: frozenset[str]) -> int:
        """0 when a value of `schema` can take no bytes, else 1."""
        if isinstance(schema, str):
            if schema == "null":
                return 0
            target = self.named.get(schema)
            if target is None or schema in visiting:
                return 1
            return self.width(target, visiting | {schema})
        if isinstance(schema, list):
            return 1  # the branch index
        kind = schema.get("type")
        if kind in ("record", "error"):
            inner = visiting | {schema.get("name", "")}
            return max((self.width(f["type"], inner) for f in schema.get("fields", ())), default=0)
        if kind == "fixed":
            return 1 if schema.get("size", 0) else 0
        if kind in ("array", "map", "enum"):
            return 1
        return self.width(kind, visiting) if isinstance(kind, str | dict) else 1


class _BoundedDecoder(_PY_DECODER):  # type: ignore[misc]
    """fastavro's decoder counting array and map items, so no record holds more than MAX_VALUES."""

    _block_count: int

    def __init__(self, fo: io.BytesIO) -> None:
        super().__init__(fo)
        self.items = 0

    def _iter_array_or_map(self) -> Any:
        while self._block_count != 0:
            if self._block_count < 0:
                self._block_count = -self._block_count
                self.read_long()
            self.items += self._block_count
            if self.items > MAX_VALUES:
                raise DecodeError(TOO_MANY_VALUES)
            for _ in range(self._block_count):
                yield
            self._block_count = self.read_long()

    iter_array = _iter_array_or_map
    iter_map = _iter_array_or_map


def _guarded(parsed: Any) -> bool:
    """Whether values of `parsed` can nest without bound or hold any number of values in no bytes."""
    shape = _Shape(dict(parsed.get("__named_schemas", {})) if isinstance(parsed, dict) else {})
    depth = shape.depth(parsed, frozenset())
    return depth > MAX_DEPTH or shape.zero_width_items


def _reader(schema_id: int, parsed: Any) -> Reader:
    """The function that reads one record written with `parsed`: compiled for the schema where
    `avro_program` (in C) or `avro_compiled` takes it, else through fastavro."""
    guarded = _guarded(parsed)
    compiled = None
    if not guarded:
        failure = _failure(schema_id)
        compiled = compile_program_reader(parsed, failure) or compile_reader(parsed, failure)
    return compiled or fastavro_reader(schema_id, parsed, guarded=guarded)


def fastavro_reader(schema_id: int, parsed: Any, *, guarded: bool | None = None) -> Reader:
    """The reader through fastavro and `avro_values` (the reference the compiled readers are
    tested against); `guarded`: through the bounded pure-Python reader (by default, when the
    schema needs it)."""
    if guarded is None:
        guarded = _guarded(parsed)
    convert: Convert | None = compile_converter(parsed)
    options = {"return_record_name": True, "return_record_name_override": True,
               "handle_unicode_errors": "strict", "return_named_type": False, "return_named_type_override": False}
    # schemaless_reader parses the schema again and builds its named-type tables on every call (a
    # third of a small record's decode): the C reader's own entry is called with them built once.
    named = _PY_READER._default_named_schemas()
    writer = fastavro.parse_schema(parsed, named["writer"])
    read_data = _C_READ_DATA
    if read_data is None:
        def read_data(fo: io.BytesIO, writer: Any, named: Any, reader: Any, options: Any) -> Any:
            return fastavro.schemaless_reader(fo, parsed, None, return_record_name=True,
                                              return_record_name_override=True)

    refuse = _failure(schema_id)

    def read(data: bytes) -> Any:
        payload = memoryview(data)[HEADER_SIZE:]
        size = len(payload)
        if size > MAX_VALUE_BYTES:
            raise DecodeError(f"value is {size} bytes, more than {MAX_VALUE_BYTES}")
        fo = io.BytesIO(payload)
        try:
            if guarded:
                py_named = _PY_READER._default_named_schemas()
                py_writer = _PY_READER.parse_schema(parsed, py_named["writer"])
                value = _PY_READER.read_data(_BoundedDecoder(fo), py_writer, py_named, None, options)
            else:
                # Several record types in one union come back as (name, record): see avro_values.
                value = read_data(fo, writer, named, None, options)
            if convert is not None:
                value = convert(value)
        except DecodeError:
            raise
        except RecursionError:
            raise DecodeError(f"the value is nested more than {MAX_DEPTH} levels deep") from None
        except IndexError:  # fastavro's: a union branch or an enum symbol past the schema's
            raise refuse(ValueError("a union or enum index out of range"), fo.tell()) from None
        except Exception as error:  # fastavro's errors for bad bytes are of many kinds
            raise refuse(error, fo.tell()) from None
        left = size - fo.tell()
        if left:
            raise DecodeError(f"payload does not decode with Avro schema {schema_id}: "
                              f"{left} bytes left after the value")
        if guarded or size > MAX_VALUES:
            failure = bounds_failure(value)
            if failure is not None:
                raise DecodeError(failure)
        return value

    return read


def _failure(schema_id: int) -> Callable[[Exception, int], DecodeError]:
    """The DecodeError of bytes that are not a value of schema `schema_id`, the reader at
    `position` in the payload."""

    def failure(error: Exception, position: int) -> DecodeError:
        if isinstance(error, LeftOver):
            detail = str(error)
        elif isinstance(error, UnicodeDecodeError):  # a string's bytes: the reader stands just past them
            detail = f"a string is {not_utf8(error, position - len(error.object))}"
        elif isinstance(error, IndexError | EOFError | struct.error):  # a read past the end, in Python's words
            detail = f"the payload ends inside a value at offset {position}"
        else:  # the readers' own words (a varint too long, an index out of range, a timestamp out of range)
            detail = f"{str(error) or 'not a value of the schema'} at offset {position}"
        return DecodeError(f"payload does not decode with Avro schema {schema_id}: {detail}")

    return failure


class AvroFormat:
    """Decodes `avro` record values (or keys): `decode(bytes)` gives the CEL value or raises
    DecodeError; a registry that cannot be asked raises its retryable error through."""

    def __init__(self, source: SchemaSource) -> None:
        self._schemas = CompiledSchemas(source, self._compile)
        self._by_header: dict[bytes, Reader] = {}
        self.decode = self._decoder()

    def _decoder(self) -> Callable[[bytes], Any]:
        by_header, first = self._by_header, self._decode_first

        def decode(data: bytes) -> Any:
            """The CEL value of a record; the hot path is the reader kept for the record's header
            (magic byte and schema id) as it is."""
            reader = by_header.get(data[:HEADER_SIZE]) if type(data) is bytes else None
            if reader is None:
                return first(data)
            return reader(data)

        return decode

    def _decode_first(self, data: bytes) -> Any:
        """A record whose header has no reader yet (a new schema id), or not in bytes."""
        schema_id, _ = split_header(data)
        data = bytes(data)
        reader = self._schemas.compiled.get(schema_id)
        if reader is None:
            reader = self._schemas.load(schema_id)
        self._by_header[data[:HEADER_SIZE]] = reader
        return reader(data)

    def _compile(self, schema_id: int, registered: RegisteredSchema) -> Reader:
        if registered.schema_type != "AVRO":
            raise DecodeError(f"its type is {registered.schema_type}, not AVRO")
        return _reader(schema_id, parse_avro(registered, resolve_references(self._schemas.source, registered)))
