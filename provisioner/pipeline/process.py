"""The pure per-record function of spec.md ("Per-record semantics", "Keys").

`Pipeline(product).process(record)` turns one Kafka record into one op. No I/O: `provisioner test`,
the consumers and the benchmarks all run exactly this code. The hot path avoids work it does not
need: `record` is only built when an expression reads it, and a spec without a schema pays nothing
for schemas.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Final

from provisioner.errors import UnavailableError
from provisioner.expr import EvaluationError, Program, compile_expression
from provisioner.formats.bounds import MAX_DEPTH, MAX_VALUE_BYTES, MAX_VALUES, TOO_MANY_VALUES, bounds_failure
from provisioner.formats.decoders import Decode, NoRegistry, registry_decoder
from provisioner.formats.json_text import NotJson, not_json
from provisioner.formats.schemas import DecodeError, SchemaMismatch, SchemaSource
from provisioner.formats.utf8 import NotUtf8, not_utf8
from provisioner.pipeline.event_schema import Validator, compile_schema
from provisioner.pipeline.ops import SKIP, DeadLetter, Delete, KeyPart, Op, RecordLike, Stage, Upsert
from provisioner.pipeline.order_reading import OrderReader, order_reader
from provisioner.pipeline.ordering import order_of
from provisioner.spec.models import DataProduct

# A tuple, not `str | int`: that expression builds a new union object on every evaluation.
_KEY_TYPES: Final = (str, int)


def _reject_constant(name: str) -> Any:
    raise NotJson(f"{name} is not a JSON value")


_decoder = json.JSONDecoder(parse_constant=_reject_constant)
_decode_json: Callable[[str], Any] = _decoder.decode
_scan_once: Callable[[str, int], tuple[Any, int]] = _decoder.scan_once  # type: ignore[attr-defined]


# Below these sizes no value can break a bound (each level of nesting takes two bytes, each value
# at least one), so the common small record pays one length comparison.
_DEPTH_CHECK_BYTES: Final = 2 * (MAX_DEPTH + 1)
# Decoding a value only to refuse it would still take its memory for a moment: past this many
# `[` and `{` bytes (more than MAX_VALUES containers, unless strings hold hundreds of thousands of
# brackets) a value is refused undecoded.
_MAX_BRACKETS: Final = 4 * MAX_VALUES


class DecodeRefused(ValueError):
    """A value that is valid JSON but breaks one of the decode bounds."""


def decode_value(value: bytes) -> Any:
    """The event of a record value, as the consumer decodes it; ValueError (NotUtf8, NotJson,
    DecodeRefused) when it is not one."""
    size = len(value)
    if size > MAX_VALUE_BYTES:
        raise DecodeRefused(f"value is {size} bytes, more than {MAX_VALUE_BYTES}")
    brackets = value.count(b"[") + value.count(b"{") if size >= _DEPTH_CHECK_BYTES else 0
    if brackets > _MAX_BRACKETS:
        raise DecodeRefused(TOO_MANY_VALUES)
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as error:
        raise not_utf8(error) from None
    # Fast path: a document with no surrounding whitespace scanned in one C call. Anything else
    # (whitespace, trailing data, invalid JSON) goes through `decode`, which gives the same value
    # and raises the same errors as always.
    try:
        try:
            event, end = _scan_once(text, 0)
            if end != len(text):
                event = _decode_json(text)
        except StopIteration:
            event = _decode_json(text)
    except RecursionError:
        raise DecodeRefused(f"arrays and objects are nested more than {MAX_DEPTH} levels deep") from None
    except json.JSONDecodeError as error:
        raise not_json(error) from None
    if brackets > MAX_DEPTH or size > MAX_VALUES:
        failure = bounds_failure(event)
        if failure is not None:
            raise DecodeRefused(failure)
    return event


def decode_failure(error: ValueError) -> str:
    """The dead-letter message of a value `decode_value` refused."""
    if isinstance(error, DecodeRefused):
        return f"value refused: {error}"
    if isinstance(error, NotUtf8 | NotJson):
        return f"value is {error}"
    return f"value is not JSON ({error})"


def scan_json(text: str, index: int) -> tuple[Any, int]:
    """The JSON value starting at `index` of `text` and the index after it (the decoder's scanner)."""
    return _scan_once(text, index)


def _headers(record: RecordLike) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, raw in record.headers:
        headers[name] = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return headers


# The record fields read without decoding or conversion (their getters cannot fail).
_POSITION_FIELDS: Final = frozenset({"topic", "partition", "offset"})
_RECORD_FIELDS: dict[str, Callable[[RecordLike], Any]] = {
    "key": lambda r: None if r.key is None else r.key.decode("utf-8", "replace"),
    "headers": _headers,
    "topic": lambda r: r.topic,
    "partition": lambda r: r.partition,
    "offset": lambda r: r.offset,
    "timestamp": lambda r: datetime.fromtimestamp(r.timestamp / 1000, tz=UTC),
}


def record_activation(record: RecordLike, fields: Iterable[str] = _RECORD_FIELDS,
                      getters: dict[str, Callable[[RecordLike], Any]] = _RECORD_FIELDS) -> dict[str, Any]:
    """The CEL `record` variable for a Kafka record: only the `fields` the expressions read."""
    return {name: getters[name](record) for name in fields}


class KeyDecodeError(DecodeError):
    """A record key that does not decode by `source.keyFormat`."""


def _key_getter(fmt: str, decode: Decode) -> Callable[[RecordLike], Any]:
    def key(record: RecordLike) -> Any:
        raw = record.key
        if raw is None:
            return None
        try:
            return decode(raw)
        except (NotUtf8, NotJson) as error:
            raise KeyDecodeError(f"key is {error}") from None
        except ValueError as error:  # DecodeError, SchemaMismatch, DecodeRefused
            raise KeyDecodeError(f"key does not decode as {fmt}: {error}") from None

    return key


def _format_decoder(fmt: str, schemas: SchemaSource | None) -> Decode:
    """The decoder of `fmt` (json: the consumer's bounded JSON decoder)."""
    if fmt == "json":
        return decode_value
    return registry_decoder(fmt, schemas or NoRegistry(), decode_json=decode_value, compile_schema=compile_schema)


def unexpected_failure(error: BaseException) -> str:
    """The dead-letter message for an exception no stage foresaw (never a traceback)."""
    if isinstance(error, RecursionError):
        return "the value is nested too deeply to process"
    if isinstance(error, MemoryError):
        return "the value needs more memory than the consumer has"
    text = str(error)
    return f"unexpected {type(error).__name__}" + (f": {text}" if text else "")


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__


class Pipeline:
    """A DataProduct's expressions compiled once, applied to records one at a time.

    `schemas` is where `avro`, `protobuf` and `jsonschema` records find their schemas (the
    registry client the consumer hands in; it does the I/O, this class none). Without one, such
    records are dead letters that say no registry is configured.
    """

    def __init__(self, product: DataProduct, schemas: SchemaSource | None = None, *,
                 formats: tuple[str, str] | None = None) -> None:
        spec = product.spec
        # `formats` (value, key) overrides the source's: `provisioner test` feeds decoded values.
        value_format, key_format = formats or (spec.source.format, spec.source.key_format)
        # Chosen once: JSON keeps its direct call; a registry format decodes through its cache.
        self._decode: Decode = _format_decoder(value_format, schemas)
        self._decode_failure: Callable[[ValueError], str] = (
            decode_failure if value_format == "json" else lambda error: f"value: {error}")
        self._getters = _RECORD_FIELDS
        if key_format != "string":
            key_decoder = _format_decoder(key_format, schemas)
            self._getters = {**_RECORD_FIELDS, "key": _key_getter(key_format, key_decoder)}
        self.product = product
        self._filter: Program | None = (
            compile_expression(spec.filter, expect_bool=True) if spec.filter else None
        )
        self._delete: Program | None = (
            compile_expression(spec.delete, expect_bool=True) if spec.delete else None
        )
        self._fields: list[tuple[str, Program]] = [
            (name, compile_expression(source)) for name, source in product.fields.items()
        ]
        self._key_names = product.key_fields
        by_name = dict(self._fields)
        self._key_programs: list[tuple[str, Program]] = [(name, by_name[name]) for name in self._key_names]
        # `order` is evaluated last, on upserts and deletes only; None costs one test per op.
        self._order: Program | None = compile_expression(spec.order) if spec.order else None
        programs = [p for p in (self._filter, self._delete) if p is not None]
        programs += [p for _, p in self._fields]
        # Only what the expressions read: a datetime and a headers dict per record are not free.
        read = frozenset().union(*(p.record_fields for p in programs))
        ordered_by = self._order.record_fields if self._order is not None else frozenset()
        # An order read only from the record's position (`record.offset`) gets its own `record`
        # when an op needs it: no dict per skipped record. Those getters cannot fail, so no
        # record changes stage.
        self._order_fields: tuple[str, ...] = ()
        if ordered_by and not read and ordered_by <= _POSITION_FIELDS:
            self._order_fields = tuple(sorted(ordered_by))
        else:
            read |= ordered_by
        # `record.offset`, `timestamp(event.ts)`...: the value read without evaluating the expression.
        self._order_reader: OrderReader | None = order_reader(spec.order) if spec.order else None
        self._record_fields = tuple(sorted(read))
        schema = spec.source.json_schema
        self._schema: Validator | None = compile_schema(schema) if schema is not None else None

    def process(self, record: RecordLike) -> Op:
        """The op for one record: never raises, whatever the record holds.

        Bad data is a dead letter at the stage that refused it; so is anything unexpected (an
        exception this code did not foresee), caught here, at the one place every record passes,
        so no record can stop a consumer or make it retry the same record forever.
        """
        stage: Stage = "decode"
        try:
            try:
                activation = (record_activation(record, self._record_fields, self._getters)
                              if self._record_fields else None)
            except KeyDecodeError as error:
                return DeadLetter("decode", str(error))
            raw = record.value
            if raw is None:
                stage = "key"
                return self._delete_op(None, activation, record)
            event = self._event(raw)
            if type(event) is DeadLetter:
                return event
            if self._schema is not None:
                stage = "schema"
                failure = self._schema(event)
                if failure is not None:
                    return DeadLetter("schema", failure)
            if self._filter is not None:
                stage = "filter"
                try:
                    keep = self._filter.evaluate(event, activation)
                except EvaluationError as error:
                    return DeadLetter("filter", f"filter failed: {error}")
                if keep is False:
                    return SKIP
                if keep is not True:
                    return DeadLetter("filter", f"filter returned {_type_name(keep)}, not bool")
            if self._delete is not None:
                stage = "delete"
                try:
                    deleting = self._delete.evaluate(event, activation)
                except EvaluationError as error:
                    return DeadLetter("delete", f"delete failed: {error}")
                if deleting is True:
                    stage = "key"
                    return self._delete_op(event, activation, record)
                if deleting is not False:
                    return DeadLetter("delete", f"delete returned {_type_name(deleting)}, not bool")
            stage = "fields"
            return self._upsert_op(event, activation, record)
        except UnavailableError:
            raise  # a schema registry that does not answer: the consumer retries, the record is fine
        except Exception as error:  # the one place where any failure becomes a dead letter
            return DeadLetter(stage, unexpected_failure(error))

    def _event(self, raw: bytes) -> Any:
        """The decoded value, or the dead letter of one that does not decode (or does not match
        its registered JSON Schema)."""
        try:
            return self._decode(raw)
        except SchemaMismatch as error:
            return DeadLetter("schema", f"value {error}")
        except ValueError as error:
            return DeadLetter("decode", self._decode_failure(error))

    def _upsert_op(self, event: Any, activation: dict[str, Any] | None, record: RecordLike) -> Op:
        """The row the fields make of a kept event, keyed by its key fields."""
        row: dict[str, Any] = {}
        for name, program in self._fields:
            try:
                row[name] = program.evaluate(event, activation)
            except EvaluationError as error:
                return DeadLetter("fields", f"field {name!r}: {error}")
        key: list[KeyPart] = []
        for name in self._key_names:
            value = row[name]
            if value is None or value is True or value is False or not isinstance(value, _KEY_TYPES):
                return DeadLetter("key", f"key field {name!r} is {_type_name(value)}, not a string or int")
            key.append(value)
        if self._order is None:
            return Upsert(tuple(key), row)
        order = self._order_value(event, activation, record)
        if isinstance(order, DeadLetter):
            return order
        return Upsert(tuple(key), row, order)

    def _delete_op(self, event: Any, activation: dict[str, Any] | None, record: RecordLike) -> Op:
        key: list[KeyPart] = []
        for name, program in self._key_programs:
            try:
                value = program.evaluate(event, activation)
            except EvaluationError as error:
                return DeadLetter("key", f"key field {name!r}: {error}")
            if value is None or value is True or value is False or not isinstance(value, _KEY_TYPES):
                return DeadLetter("key", f"key field {name!r} is {_type_name(value)}, not a string or int")
            key.append(value)
        if self._order is None:
            return Delete(tuple(key))
        order = self._order_value(event, activation, record)
        if isinstance(order, DeadLetter):
            return order
        return Delete(tuple(key), order)

    def _order_value(self, event: Any, activation: dict[str, Any] | None, record: RecordLike) -> int | DeadLetter:
        """The op's order value, or the stage-`order` dead letter of a record that has none."""
        assert self._order is not None
        if self._order_reader is not None:
            read = self._order_reader(event, record)
            if read is not None:
                return read
        if self._order_fields:
            activation = record_activation(record, self._order_fields, self._getters)
        try:
            found = order_of(self._order.evaluate(event, activation))
        except EvaluationError as error:
            return DeadLetter("order", f"order failed: {error}")
        except Exception as error:  # as in `process`: unforeseen, but the stage is known
            return DeadLetter("order", unexpected_failure(error))
        return DeadLetter("order", found) if isinstance(found, str) else found
