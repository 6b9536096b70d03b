"""The `spec.order` shortcuts agree with evaluating the expression: the same order value, or no
answer (and then the pipeline evaluates it, so dead letters are unchanged)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioner.expr import compile_expression
from provisioner.expr.errors import EvaluationError
from provisioner.expr.times import parse_timestamp
from provisioner.pipeline.ops import DeadLetter, Record, Upsert
from provisioner.pipeline.order_reading import order_reader, utc_text_ns
from provisioner.pipeline.ordering import order_of
from provisioner.pipeline.process import Pipeline, record_activation
from tests.unit.test_order import load


def evaluated_ns(text: str) -> int | None:
    try:
        return parse_timestamp(text).ns
    except EvaluationError:
        return None


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
       st.integers(0, 9), st.integers(0, 999_999_999), st.sampled_from("Zz"), st.sampled_from("Tt"))
def test_utc_text_gives_what_cel_timestamp_gives(moment: datetime, digits: int, nanos: int, zone: str,
                                                  sep: str) -> None:
    fraction = f".{str(nanos).zfill(9)[:digits]}" if digits else ""
    text = moment.strftime(f"%Y-%m-%d{sep}%H:%M:%S").zfill(19) + fraction + zone
    assert utc_text_ns(text) == evaluated_ns(text) is not None


@given(st.text(alphabet="0123456789-:TZz.+ x\u0661", min_size=0, max_size=32))
def test_any_other_text_gets_the_same_value_or_none(text: str) -> None:
    found = utc_text_ns(text)
    assert found is None or found == evaluated_ns(text)


@pytest.mark.parametrize("text", [
    "2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "0000-01-01T00:00:00Z", "2026-01-01T24:00:00Z",
    "2026-01-01T23:60:00Z", "2026-01-01T23:59:60Z", "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00.1234567890Z",
    "2026-01-01T00:00:00+00:00", "2026-01-01 00:00:00Z", "2026-01-01T00:00:0\u0661Z", "2026-01-01T00:00:00",
])
def test_invalid_or_other_forms_get_no_answer(text: str) -> None:
    assert utc_text_ns(text) is None


def test_valid_edges_match() -> None:
    for text in ("2024-02-29T23:59:59.999999999Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.1z",
                 "1969-12-31t23:59:59.5Z"):
        assert utc_text_ns(text) == evaluated_ns(text) is not None


def test_only_the_known_forms_have_a_shortcut() -> None:
    assert order_reader("record.offset") is not None
    assert order_reader("timestamp(event.ts)") is not None
    assert order_reader("timestamp(event.meta.at)") is not None
    for source in ("event.version", "timestamp(event.ts) + duration('1s')", "timestamp(event.?ts)",
                   "record.timestamp", "timestamp(record.key)", "timestamp(1)", "int(", "x.offset"):
        assert order_reader(source) is None


@pytest.mark.parametrize("order", ["timestamp(event.ts)", "timestamp(event.meta.at)", "record.offset"])
@pytest.mark.parametrize("event", [
    {"id": "a", "ts": "2026-01-01T10:00:01.250Z", "meta": {"at": "2026-03-01T00:00:00Z"}},
    {"id": "a", "ts": "2026-01-01T11:00:01+01:00", "meta": {"at": "2026-03-01T00:00:00.000000001z"}},
    {"id": "a", "ts": 5, "meta": "x"},
    {"id": "a", "ts": "yesterday", "meta": {"at": None}},
    {"id": "a", "meta": {}},
    {"id": "a", "ts": "2026-02-30T00:00:00Z", "meta": {"at": ["2026-03-01T00:00:00Z"]}},
])
def test_the_pipeline_gives_what_the_expression_evaluates_to(order: str, event: dict[str, Any]) -> None:
    record = Record("accounts.v1", 1, 77, 1_767_225_600_000, None, json.dumps(event).encode())
    op = Pipeline(load(order)).process(record)
    program = compile_expression(order)
    try:
        expected: Any = order_of(program.evaluate(event, record_activation(record)))
    except EvaluationError as error:
        expected = f"order failed: {error}"
    if isinstance(expected, int):
        assert op == Upsert(("a",), {"id": "a", "balance": 0}, expected)
    else:
        assert op == DeadLetter("order", expected)


def test_minutes_and_days_across_the_epoch() -> None:
    start = datetime(1969, 12, 31, 23, 58, tzinfo=UTC)
    for step in range(0, 240, 7):
        moment = start + timedelta(seconds=step, microseconds=step * 1001)
        text = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert utc_text_ns(text) == evaluated_ns(text)
