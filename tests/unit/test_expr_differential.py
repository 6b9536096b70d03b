"""Differential tests: whatever our engine compiles must evaluate exactly as the reference `cel`."""

from __future__ import annotations

import math
from typing import Any

import cel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioner.expr import EvaluationError, ExpressionError, UInt, compile_expression

from .cel_strategies import events, expressions
from .test_expr_unit import EVENT as UNIT_EVENT
from .test_expr_unit import RECORD as UNIT_RECORD
from .test_expr_unit import RUNTIME_ERRORS, VALUES

RECORD = {"key": "k1", "headers": {"h": "v"}, "topic": "orders", "partition": 3, "offset": 42,
          "timestamp": None}


def normalize(value: Any) -> Any:
    """Map our values onto what the reference returns to Python (uint comes back as int)."""
    if type(value) is UInt:
        return int(value)
    if type(value) is list:
        return [normalize(v) for v in value]
    if type(value) is dict:
        return {normalize(k): normalize(v) for k, v in value.items()}
    return value


def same(a: Any, b: Any) -> bool:
    """Equality that distinguishes 1, 1.0 and True and treats NaN as equal to NaN."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def reference(source: str, event: Any) -> tuple[bool, Any]:
    try:
        return True, cel.compile(source).execute({"event": event, "record": RECORD})
    except Exception as exc:  # the reference signals every CEL error as some exception
        return False, exc


def ours(source: str, event: Any) -> tuple[bool, Any] | None:
    try:
        program = compile_expression(source)
    except ExpressionError:
        return None
    try:
        return True, normalize(program(event, RECORD))
    except EvaluationError as exc:
        return False, exc


def assert_agrees(source: str, event: Any) -> None:
    got = ours(source, event)
    if got is None:
        return
    ok, value = got
    ref_ok, ref_value = reference(source, event)
    assert ok == ref_ok, f"{source!r} on {event!r}: ours={value!r} reference={ref_value!r}"
    if ok:
        assert same(value, ref_value), f"{source!r} on {event!r}: ours={value!r} reference={ref_value!r}"


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(source=expressions(), event=events())
def test_random_expressions_agree_with_reference(source: str, event: dict[str, Any]) -> None:
    assert_agrees(source, event)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(source=expressions(depth=1), event=events())
def test_shallow_expressions_agree_with_reference(source: str, event: dict[str, Any]) -> None:
    assert_agrees(source, event)


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(st.text(max_size=12), st.from_regex(r"[+-]?[0-9]{0,20}(\.[0-9]{0,4})?(e[+-]?[0-9]{1,3})?",
                                                          fullmatch=True)),
       func=st.sampled_from(["int", "uint", "double", "string", "bytes", "size"]))
def test_conversions_of_strings_agree(value: str, func: str) -> None:
    assert_agrees(f"{func}(event.v)", {"v": value})


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(st.floats(), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
       func=st.sampled_from(["int", "uint", "double", "string"]))
def test_conversions_of_numbers_agree(value: Any, func: str) -> None:
    assert_agrees(f"{func}(event.v)", {"v": value})


@settings(max_examples=300, deadline=None)
@given(a=st.one_of(st.floats(), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
       b=st.one_of(st.floats(), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
       op=st.sampled_from(["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">="]))
def test_numeric_operators_agree(a: Any, b: Any, op: str) -> None:
    assert_agrees(f"event.a {op} event.b", {"a": a, "b": b})


@pytest.mark.parametrize("source", [
    "event.type == 'OrderPlaced' && event.amount >= 100.0 && event.customer.tier == 'gold'",
    "event.amount * double(event.qty)", "event.customer.id", "has(event.deleted) && event.deleted",
    "event.items.exists(i, i.price > 100.0)", "event.type == 'OrderCancelled'",
])
@given(event=st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["OrderPlaced", "OrderCancelled", 1]),
    "amount": st.one_of(st.floats(), st.integers(-5, 500)),
    "qty": st.one_of(st.integers(-3, 3), st.floats(-3, 3)),
    "customer": st.fixed_dictionaries({}, optional={"tier": st.sampled_from(["gold", "silver"]),
                                                     "id": st.text(max_size=3)}),
    "deleted": st.one_of(st.booleans(), st.none()),
    "items": st.lists(st.fixed_dictionaries({"price": st.one_of(st.floats(0, 200), st.integers(0, 200))})),
}))
@settings(max_examples=60, deadline=None)
def test_realistic_expressions_agree(source: str, event: dict[str, Any]) -> None:
    assert_agrees(source, event)


KNOWN_DIFFERENCES = {"duration('1ns')"}  # the reference keeps nanoseconds; we reject them


@pytest.mark.parametrize("source", [s for s, _ in VALUES] + [s for s in RUNTIME_ERRORS if s not in KNOWN_DIFFERENCES])
def test_hand_written_cases_agree(source: str) -> None:
    got = ours_with(source, UNIT_EVENT, UNIT_RECORD)
    ref_ok, ref_value = reference_with(source, UNIT_EVENT, UNIT_RECORD)
    assert got is not None and got[0] == ref_ok, (source, got, ref_value)
    if ref_ok:
        assert same(got[1], ref_value) or (isinstance(ref_value, float) and math.isnan(ref_value)), \
            (source, got, ref_value)


def ours_with(source: str, event: Any, record: Any) -> tuple[bool, Any] | None:
    try:
        return True, normalize(compile_expression(source)(event, record))
    except ExpressionError:
        return None
    except EvaluationError as exc:
        return False, exc


def reference_with(source: str, event: Any, record: Any) -> tuple[bool, Any]:
    try:
        return True, cel.compile(source).execute({"event": event, "record": record})
    except Exception as exc:  # the reference signals every CEL error as some exception
        return False, exc
