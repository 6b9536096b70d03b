"""Run a spec's `tests:` (and ad-hoc events) through the pipeline, offline.

Who calls it: `provisioner test`. Expected and actual ops are compared as a user reads them: keys
as rendered text (`[5]` matches `["5"]`), numbers by value (`150` matches `150.0`), bools only equal
bools.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from provisioner.formats.encode import EncodeError, test_encoder
from provisioner.pipeline.encoding import Unencodable, json_default, to_json
from provisioner.pipeline.eventfile import EventLine
from provisioner.pipeline.ops import DeadLetter, Delete, Op, Record, Skip, Upsert, render_key
from provisioner.pipeline.ordering import OrderTracker
from provisioner.pipeline.process import Pipeline
from provisioner.spec.durations import parse_duration
from provisioner.spec.models import DataProduct, ExpectedOp, GivenRecord, SpecTest
from provisioner.spec.timestamps import to_epoch_ms

DEFAULT_TIMESTAMP_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: tests are deterministic


def _json_ready(value: Any) -> Any:
    try:
        return json.loads(to_json(value))
    except Unencodable:  # a CEL type or optional, which every store refuses: shown as CEL writes it
        return json.loads(json.dumps(value, default=repr))


def op_to_dict(op: Op) -> dict[str, Any]:
    """The op in the shape of a test's `expect` entry (also the JSON output of `test --events`)."""
    if isinstance(op, Upsert):
        return {"upsert": {"key": list(op.key), "fields": _json_ready(dict(op.row))}}
    if isinstance(op, Delete):
        return {"delete": {"key": list(op.key)}}
    if isinstance(op, Skip):
        return {"skip": {"reason": op.reason}}
    return {"deadLetter": {"stage": op.stage, "message": op.message}}


def expected_to_dict(expected: ExpectedOp) -> dict[str, Any]:
    if expected.upsert is not None:
        return {"upsert": {"key": list(expected.upsert.key), "fields": dict(expected.upsert.fields)}}
    if expected.delete is not None:
        return {"delete": {"key": list(expected.delete.key)}}
    if expected.skip is not None:
        return {"skip": {} if expected.skip.reason is None else {"reason": expected.skip.reason}}
    assert expected.dead_letter is not None
    return {"deadLetter": {"stage": expected.dead_letter.stage}}


def _values_equal(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return expected == actual or (math.isnan(expected) and math.isnan(actual))
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(_values_equal(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(map(_values_equal, expected, actual))
    return bool(expected == actual)


def op_matches(expected: ExpectedOp, op: Op) -> bool:
    """Whether `op` is what `expected` describes."""
    if expected.upsert is not None:
        return (
            isinstance(op, Upsert)
            and render_key(tuple(expected.upsert.key)) == render_key(op.key)
            and _values_equal(dict(expected.upsert.fields), _json_ready(dict(op.row)))
        )
    if expected.delete is not None:
        return isinstance(op, Delete) and render_key(tuple(expected.delete.key)) == render_key(op.key)
    if expected.skip is not None:
        return isinstance(op, Skip) and expected.skip.reason in (None, op.reason)
    assert expected.dead_letter is not None
    return isinstance(op, DeadLetter) and op.stage == expected.dead_letter.stage


def _timestamp_ms(text: str | None) -> int:
    if text is None:
        return DEFAULT_TIMESTAMP_MS
    return to_epoch_ms(text)


def _value_bytes(value: Any) -> bytes:
    """A test value as a JSON producer sends it: UTF-8, a lone surrogate as its `\\ud800` escape."""
    text = to_json(value)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":"), default=json_default).encode("ascii")


def given_record(product: DataProduct, given: GivenRecord, index: int,
                 encode: Callable[[Any], bytes] = _value_bytes) -> Record:
    """A Kafka record for a test's `given` entry (the value is JSON-encoded, or by `encode`; null is
    a tombstone)."""
    value = None if given.value is None else encode(given.value)
    return Record(
        topic=product.spec.source.topic,
        partition=given.partition,
        offset=index if given.offset is None else given.offset,
        timestamp=_timestamp_ms(given.timestamp),
        key=None if given.key is None else given.key.encode("utf-8"),
        value=value,
        headers=tuple((k, v.encode("utf-8")) for k, v in given.headers.items()),
    )


@dataclass(frozen=True, slots=True)
class SpecTestOutcome:
    """The result of one spec test: passed, or the expected and actual ops to diff."""

    name: str
    passed: bool
    expected: list[dict[str, Any]]
    actual: list[dict[str, Any]]
    error: str | None = None


def ordered_ops(pipeline: Pipeline, records: Iterable[Record]) -> list[Op]:
    """The ops of `records` in order, as a store applies them: with `spec.order`, an op older than
    its key's last applied one is a skip with reason `stale`."""
    spec = pipeline.product.spec
    if spec.order is None:
        return [pipeline.process(record) for record in records]
    tracker = OrderTracker(round(parse_duration(spec.order_retention).total_seconds() * 1000))
    return [tracker.admit(pipeline.process(record), record.timestamp) for record in records]


def run_test(pipeline: Pipeline, test: SpecTest, encode: Callable[[Any], bytes] = _value_bytes) -> SpecTestOutcome:
    expected = [expected_to_dict(e) for e in test.expect]
    try:
        records = [given_record(pipeline.product, given, i, encode) for i, given in enumerate(test.given)]
    except EncodeError as error:
        return SpecTestOutcome(name=test.name, passed=False, expected=expected, actual=[], error=str(error))
    ops = ordered_ops(pipeline, records)
    passed = len(ops) == len(test.expect) and all(op_matches(e, op) for e, op in zip(test.expect, ops, strict=True))
    return SpecTestOutcome(name=test.name, passed=passed, expected=expected, actual=[op_to_dict(op) for op in ops])


def decoded_formats(product: DataProduct) -> tuple[str, str]:
    """The formats a test without a schema file runs with: its given values are the decoded event
    (JSON), and a key of a schema-registry format is given as its JSON text."""
    key_format = product.spec.source.key_format
    return "json", key_format if key_format in ("string", "json") else "json"


def run_tests(product: DataProduct, schema_texts: Mapping[str, str] | None = None) -> list[SpecTestOutcome]:
    """Each test's outcome; `schema_texts` holds the text of each schema file a test names."""
    fmt = product.spec.source.format
    plain = Pipeline(product) if fmt == "json" else Pipeline(product, formats=decoded_formats(product))
    outcomes: list[SpecTestOutcome] = []
    for test in product.spec.tests:
        if test.schema_file is None or fmt == "json":
            outcomes.append(run_test(plain, test))
            continue
        text = (schema_texts or {}).get(test.schema_file)
        try:
            if text is None:
                raise ValueError(f"schema file {test.schema_file} was not read")
            schemas, encode = test_encoder(fmt, text)
        except ValueError as error:
            outcomes.append(SpecTestOutcome(name=test.name, passed=False, expected=[], actual=[],
                                            error=f"schema {test.schema_file}: {error}"))
            continue
        key_format = product.spec.source.key_format
        formats = (fmt, key_format if key_format in ("string", "json") else "json")
        outcomes.append(run_test(Pipeline(product, schemas, formats=formats), test, encode))
    return outcomes


def line_record(product: DataProduct, line: EventLine, index: int) -> Record:
    """The Kafka record the consumer would read for a line of an event file (`test --events`)."""
    return Record(
        topic=product.spec.source.topic,
        partition=line.partition or 0,
        offset=index if line.offset is None else line.offset,
        timestamp=DEFAULT_TIMESTAMP_MS if line.timestamp_ms is None else line.timestamp_ms,
        key=None if line.key is None else line.key.encode("utf-8"),
        value=line.value,
        headers=tuple((name, text.encode("utf-8")) for name, text in line.headers.items()),
    )
