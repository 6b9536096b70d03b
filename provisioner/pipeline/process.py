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

from provisioner.expr import EvaluationError, Program, compile_expression
from provisioner.pipeline.event_schema import Validator, compile_schema
from provisioner.pipeline.ops import SKIP, DeadLetter, Delete, KeyPart, Op, RecordLike, Upsert
from provisioner.spec.models import DataProduct

# A tuple, not `str | int`: that expression builds a new union object on every evaluation.
_KEY_TYPES: Final = (str, int)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_decoder = json.JSONDecoder(parse_constant=_reject_constant)
_decode_json: Callable[[str], Any] = _decoder.decode
_scan_once: Callable[[str, int], tuple[Any, int]] = _decoder.scan_once  # type: ignore[attr-defined]


def _decode(value: bytes) -> Any:
    text = value.decode("utf-8")
    # Fast path: a document with no surrounding whitespace scanned in one C call. Anything else
    # (whitespace, trailing data, invalid JSON) goes through `decode`, which gives the same value
    # and raises the same errors as always.
    try:
        event, end = _scan_once(text, 0)
    except StopIteration:
        return _decode_json(text)
    if end == len(text):
        return event
    return _decode_json(text)


def _headers(record: RecordLike) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, raw in record.headers:
        headers[name] = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return headers


_RECORD_FIELDS: dict[str, Callable[[RecordLike], Any]] = {
    "key": lambda r: None if r.key is None else r.key.decode("utf-8", "replace"),
    "headers": _headers,
    "topic": lambda r: r.topic,
    "partition": lambda r: r.partition,
    "offset": lambda r: r.offset,
    "timestamp": lambda r: datetime.fromtimestamp(r.timestamp / 1000, tz=UTC),
}


def record_activation(record: RecordLike, fields: Iterable[str] = _RECORD_FIELDS) -> dict[str, Any]:
    """The CEL `record` variable for a Kafka record: only the `fields` the expressions read."""
    return {name: _RECORD_FIELDS[name](record) for name in fields}


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
    """A DataProduct's expressions compiled once, applied to records one at a time."""

    def __init__(self, product: DataProduct) -> None:
        spec = product.spec
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
        programs = [p for p in (self._filter, self._delete) if p is not None] + [p for _, p in self._fields]
        # Only what the expressions read: a datetime and a headers dict per record are not free.
        self._record_fields = tuple(sorted(frozenset().union(*(p.record_fields for p in programs))))
        schema = spec.source.json_schema
        self._schema: Validator | None = compile_schema(schema) if schema is not None else None

    def process(self, record: RecordLike) -> Op:
        """The op for one record (never raises for bad data: that is what dead letters are for)."""
        activation = record_activation(record, self._record_fields) if self._record_fields else None
        raw = record.value
        if raw is None:
            return self._delete_op(None, activation)
        try:
            event = _decode(raw)
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            return DeadLetter("decode", f"value is not UTF-8 JSON: {error}")
        if self._schema is not None:
            failure = self._schema(event)
            if failure is not None:
                return DeadLetter("schema", failure)
        if self._filter is not None:
            try:
                keep = self._filter.evaluate(event, activation)
            except EvaluationError as error:
                return DeadLetter("filter", f"filter failed: {error}")
            if keep is False:
                return SKIP
            if keep is not True:
                return DeadLetter("filter", f"filter returned {_type_name(keep)}, not bool")
        if self._delete is not None:
            try:
                deleting = self._delete.evaluate(event, activation)
            except EvaluationError as error:
                return DeadLetter("delete", f"delete failed: {error}")
            if deleting is True:
                return self._delete_op(event, activation)
            if deleting is not False:
                return DeadLetter("delete", f"delete returned {_type_name(deleting)}, not bool")
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
        return Upsert(tuple(key), row)

    def _delete_op(self, event: Any, activation: dict[str, Any] | None) -> Op:
        key: list[KeyPart] = []
        for name, program in self._key_programs:
            try:
                value = program.evaluate(event, activation)
            except EvaluationError as error:
                return DeadLetter("key", f"key field {name!r}: {error}")
            if value is None or value is True or value is False or not isinstance(value, _KEY_TYPES):
                return DeadLetter("key", f"key field {name!r} is {_type_name(value)}, not a string or int")
            key.append(value)
        return Delete(tuple(key))
