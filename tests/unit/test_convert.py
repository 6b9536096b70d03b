"""Postgres column conversions (provisioner.stores.convert): every rule of the docstring table."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioner.spec.models import COLUMN_TYPES
from provisioner.stores.convert import ConversionError, convert, timestamp_text


@pytest.mark.parametrize("column_type", COLUMN_TYPES)
def test_null_is_null_for_every_type(column_type):
    assert convert(column_type, None) is None


# -- text -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("abc", "abc"),
        ("", ""),
        ("ünïcødé ✓", "ünïcødé ✓"),
        (42, "42"),
        (-7, "-7"),
        (1.5, "1.5"),
        (1e100, "1e+100"),
        (True, "true"),
        (False, "false"),
        ({"a": [1, 2.5, None]}, '{"a":[1,2.5,null]}'),
        (["x", {"é": 1}], '["x",{"é":1}]'),
        (datetime(2026, 1, 31, 12, 0, tzinfo=UTC), "2026-01-31T12:00:00Z"),
        (timedelta(seconds=90), "90s"),
        (b"\x00\x01", "AAE="),
    ],
)
def test_text_uses_the_spec_encoding(value, text):
    assert convert("text", value) == text


@pytest.mark.parametrize("value", ["a\x00b", "\ud800", ["\udfff"]])
def test_text_refuses_what_postgres_cannot_store(value):
    with pytest.raises(ConversionError):
        convert("text", value)


# -- integer / bigint -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (-5, "-5"), ("42", "42"), ("+42", "42"), ("-0", "0"), ("007", "7"), (150.0, "150"),
     (2**31 - 1, "2147483647"), (-(2**31), "-2147483648")],
)
def test_integer_accepts(value, text):
    assert convert("integer", value) == text


@pytest.mark.parametrize(
    "value",
    [True, False, 1.5, float("nan"), float("inf"), "1.0", "1e3", " 1", "1 ", "", "abc", "0x10", "١٢",
     2**31, -(2**31) - 1, str(2**31), [1], {"a": 1}],
)
def test_integer_refuses(value):
    with pytest.raises(ConversionError, match="integer"):
        convert("integer", value)


def test_integer_messages_say_why():
    with pytest.raises(ConversionError, match=r'^"x" is not a valid integer$'):
        convert("integer", "x")
    with pytest.raises(ConversionError, match="out of range for integer"):
        convert("integer", 2**40)


@pytest.mark.parametrize(("value", "text"), [(2**63 - 1, str(2**63 - 1)), (-(2**63), str(-(2**63))),
                                             (2**40, str(2**40)), ("-9000000000", "-9000000000")])
def test_bigint_accepts_64_bits(value, text):
    assert convert("bigint", value) == text


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, "9" * 25, True, 1e30, "1.5"])
def test_bigint_refuses(value):
    with pytest.raises(ConversionError, match="bigint"):
        convert("bigint", value)


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_bigint_round_trips_every_64_bit_int(number):
    assert int(convert("bigint", number)) == number
    assert int(convert("bigint", str(number))) == number


# -- double precision -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.5, "1.5"), (3, "3.0"), ("2e3", "2000.0"), ("-.5", "-0.5"), ("1.", "1.0"), (-0.0, "0.0"),
     ("1e-400", "0.0"), (0.1, "0.1")],
)
def test_double_accepts(value, text):
    assert convert("double precision", value) == text


@pytest.mark.parametrize("value", [True, float("nan"), float("inf"), "NaN", "Infinity", "inf", "1e400",
                                   10**400, "", "1,5", "abc", [1.0]])
def test_double_refuses(value):
    with pytest.raises(ConversionError, match="double precision"):
        convert("double precision", value)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_double_round_trips_every_finite_float(number):
    assert float(convert("double precision", number)) == number


# -- numeric ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.1, "0.1"), (19.99, "19.99"), (5, "5"), ("19.90", "19.90"), ("1e3", "1000"), ("-2.50", "-2.50"),
     (10**30, "1" + "0" * 30), (1e20, "100000000000000000000"), ("0.000001", "0.000001")],
)
def test_numeric_accepts(value, text):
    assert convert("numeric", value) == text


@pytest.mark.parametrize("value", [True, float("nan"), float("-inf"), "NaN", "abc", "", "1e999999",
                                   "1e-20000", {"n": 1}])
def test_numeric_refuses(value):
    with pytest.raises(ConversionError, match="numeric"):
        convert("numeric", value)


@given(st.decimals(allow_nan=False, allow_infinity=False, places=6))
def test_numeric_keeps_the_value_of_decimal_strings(number):
    assert Decimal(convert("numeric", str(number))) == number


# -- boolean ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "text"), [(True, "true"), (False, "false"), ("true", "true"),
                                             ("FALSE", "false"), ("True", "true")])
def test_boolean_accepts(value, text):
    assert convert("boolean", value) == text


@pytest.mark.parametrize("value", [0, 1, "yes", "t", "1", "", 1.0, [True]])
def test_boolean_refuses(value):
    with pytest.raises(ConversionError, match="boolean"):
        convert("boolean", value)


# -- jsonb ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [({"a": 1, "b": [True, None]}, '{"a":1,"b":[true,null]}'), ("s", '"s"'), (1, "1"), (1.5, "1.5"),
     (False, "false"), ([], "[]"), ({"t": datetime(2026, 1, 1, tzinfo=UTC)}, '{"t":"2026-01-01T00:00:00Z"}'),
     ({"é": "ü"}, '{"é":"ü"}'), ("back\\u0000slash", '"back\\\\u0000slash"')],
)
def test_jsonb_accepts_any_value(value, text):
    assert convert("jsonb", value) == text


@pytest.mark.parametrize("value", [float("nan"), {"x": float("inf")}, {"k": "a\x00"}, {"a\x00": 1},
                                   ["\ud800"], {1j}])
def test_jsonb_refuses(value):
    with pytest.raises(ConversionError):
        convert("jsonb", value)


_STORABLE_TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"))


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                    | _STORABLE_TEXT,
                    lambda children: st.lists(children) | st.dictionaries(_STORABLE_TEXT, children),
                    max_leaves=20).filter(lambda value: value is not None))
def test_jsonb_is_json(value):
    assert json.loads(convert("jsonb", value)) == value


# -- timestamptz ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [("2026-01-31T12:00:00Z", "2026-01-31T12:00:00+00:00"),
     ("2026-01-31t12:00:00z", "2026-01-31T12:00:00+00:00"),
     ("2026-01-31 12:00:00+02:00", "2026-01-31T10:00:00+00:00"),
     ("2026-01-31T12:00:00.123456789Z", "2026-01-31T12:00:00.123456+00:00"),
     (datetime(2026, 1, 31, 12, tzinfo=timezone(timedelta(hours=-5))), "2026-01-31T17:00:00+00:00"),
     (datetime(2026, 1, 31, 12), "2026-01-31T12:00:00+00:00")],
)
def test_timestamptz_accepts(value, text):
    assert convert("timestamptz", value) == text


@pytest.mark.parametrize("value", ["2026-01-31", "2026-01-31T12:00:00", "2026-02-30T00:00:00Z",
                                   "2026-01-31T25:00:00Z", "2026-12-31T23:59:60Z", "yesterday", 1706700000,
                                   True, "0001-01-01T00:00:00+01:00"])
def test_timestamptz_refuses(value):
    with pytest.raises(ConversionError, match="timestamptz"):
        convert("timestamptz", value)


def test_equal_instants_convert_to_equal_text():
    assert convert("timestamptz", "2026-01-01T01:00:00+01:00") == convert("timestamptz", "2026-01-01T00:00:00Z")


# -- date -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [("2026-01-31", "2026-01-31"), (date(2024, 2, 29), "2024-02-29"),
     (datetime(2026, 1, 31, 23, 30, tzinfo=timezone(timedelta(hours=-5))), "2026-02-01")],
)
def test_date_accepts(value, text):
    assert convert("date", value) == text


@pytest.mark.parametrize("value", ["2026-02-30", "2026-1-31", "31/01/2026", "2026-01-31T00:00:00Z", 20260131,
                                   "", True])
def test_date_refuses(value):
    with pytest.raises(ConversionError, match="date"):
        convert("date", value)


# -- uuid -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [("123e4567-e89b-12d3-a456-426614174000", "123e4567-e89b-12d3-a456-426614174000"),
     ("123E4567-E89B-12D3-A456-426614174000", "123e4567-e89b-12d3-a456-426614174000"),
     ("123e4567e89b12d3a456426614174000", "123e4567-e89b-12d3-a456-426614174000"),
     (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001")],
)
def test_uuid_accepts(value, text):
    assert convert("uuid", value) == text


@pytest.mark.parametrize("value", ["123e4567-e89b12d3-a456-426614174000", "{123e4567-e89b-12d3-a456-426614174000}",
                                   "urn:uuid:123e4567-e89b-12d3-a456-426614174000", "xyz", 1, ""])
def test_uuid_refuses(value):
    with pytest.raises(ConversionError, match="uuid"):
        convert("uuid", value)


@given(st.uuids())
def test_uuid_round_trips(value):
    assert convert("uuid", str(value)) == str(value)
    assert convert("uuid", value.hex) == str(value)


# -- misc -------------------------------------------------------------------------------------


def test_messages_shorten_long_values():
    with pytest.raises(ConversionError) as caught:
        convert("integer", "x" * 1000)
    assert len(str(caught.value)) < 100


@pytest.mark.parametrize(("millis", "text"), [(0, "1970-01-01T00:00:00Z"),
                                              (1_706_702_400_123, "2024-01-31T12:00:00.123Z"),
                                              (-1, None)])
def test_timestamp_text(millis, text):
    assert timestamp_text(millis) == text


@given(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary()))
def test_conversions_only_raise_conversion_errors(value):
    for column_type in COLUMN_TYPES:
        try:
            result = convert(column_type, value)
        except ConversionError:
            continue
        assert result is None or isinstance(result, str)
        if isinstance(value, float) and not math.isfinite(value) and column_type not in ("text",):
            pytest.fail(f"{column_type} accepted {value}")
