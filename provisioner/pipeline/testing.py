"""Run a spec's `tests:` (and ad-hoc events) through the pipeline, offline.

Who calls it: `provisioner test`. Expected and actual ops are compared as a user reads them: keys
as rendered text (`[5]` matches `["5"]`), numbers by value (`150` matches `150.0`), bools only equal
bools.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

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


def given_record(product: DataProduct, given: GivenRecord, index: int) -> Record:
    """A Kafka record for a test's `given` entry (the value is JSON-encoded; null is a tombstone)."""
    value = None if given.value is None else _value_bytes(given.value)
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


def run_test(pipeline: Pipeline, test: SpecTest) -> SpecTestOutcome:
    ops = ordered_ops(pipeline, (given_record(pipeline.product, given, i) for i, given in enumerate(test.given)))
    passed = len(ops) == len(test.expect) and all(op_matches(e, op) for e, op in zip(test.expect, ops, strict=True))
    return SpecTestOutcome(
        name=test.name,
        passed=passed,
        expected=[expected_to_dict(e) for e in test.expect],
        actual=[op_to_dict(op) for op in ops],
    )


def run_tests(product: DataProduct) -> list[SpecTestOutcome]:
    pipeline = Pipeline(product)
    return [run_test(pipeline, test) for test in product.spec.tests]


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
