"""CEL value model and operations on runtime values, used when types are only known at run time.

Values are plain Python objects: int (CEL int), UInt (CEL uint), float, str, bytes, None, list,
dict, Timestamp (a UTC datetime) and Duration (a timedelta), both with nanoseconds.  `bool` is a subclass of `int` in
Python, so every dispatch here compares exact types (`type(x) is int`), never `isinstance`.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NoReturn

from . import times
from .errors import EvaluationError
from .times import (
    DURATION_GETTERS,
    TIMESTAMP_GETTERS,
    Duration,
    Timestamp,
    duration_ns,
    make_duration,
    make_timestamp,
    timestamp_ns,
)
from .values import NONE, CelType, Optional, some

__all__ = [
    "DURATION_GETTERS",
    "TIMESTAMP_GETTERS",
    "UTC",
    "Duration",
    "Timestamp",
    "make_duration",
    "make_timestamp",
    "times",
]

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
UINT_MAX = 2**64 - 1
MAX_SIZE = 1_000_000
"""Longest string, bytes or list an expression may build, so a hostile expression cannot eat memory."""


class UInt(int):
    """A CEL `uint` value (an `int` that CEL keeps distinct from `int`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"{int(self)}u"


_NAMES: dict[type, str] = {
    bool: "bool", int: "int", UInt: "uint", float: "double", str: "string", bytes: "bytes",
    type(None): "null", list: "list", dict: "map", Timestamp: "google.protobuf.Timestamp",
    Duration: "google.protobuf.Duration", datetime: "google.protobuf.Timestamp",
    timedelta: "google.protobuf.Duration", Optional: "optional_type", CelType: "type",
}
NUMERIC = frozenset({int, UInt, float})


def type_name(value: Any) -> str:
    """The CEL type name of a runtime value."""
    return _NAMES.get(type(value), type(value).__name__)


def no_overload(op: str, *args: Any) -> EvaluationError:
    types = ", ".join(type_name(a) for a in args)
    return EvaluationError(f"no matching overload for {op} applied to ({types})")


def overflow(op: str) -> EvaluationError:
    return EvaluationError(f"integer overflow in {op}")


def _too_big() -> NoReturn:
    raise EvaluationError(f"result longer than {MAX_SIZE} elements")


def check_int(value: int, op: str) -> int:
    if INT_MIN <= value <= INT_MAX:
        return value
    raise overflow(op)


def check_uint(value: int, op: str) -> UInt:
    if 0 <= value <= UINT_MAX:
        return UInt(value)
    raise overflow(op)


# --- arithmetic ------------------------------------------------------------------------------------


def add(a: Any, b: Any) -> Any:
    ta = type(a)
    if ta is type(b):
        if ta is int:
            r = a + b
            if INT_MIN <= r <= INT_MAX:
                return r
            raise overflow("'+'")
        if ta is float:
            return a + b
        if ta is str or ta is list or ta is bytes:
            if len(a) + len(b) > MAX_SIZE:
                _too_big()
            return a + b
        if ta is UInt:
            return check_uint(int(a) + int(b), "'+'")
        if ta is Duration:
            return duration_ns(a.ns + b.ns)
    elif (ta is Timestamp and type(b) is Duration) or (ta is Duration and type(b) is Timestamp):
        return timestamp_ns(a.ns + b.ns)
    raise no_overload("'+'", a, b)


def sub(a: Any, b: Any) -> Any:
    ta = type(a)
    if ta is type(b):
        if ta is int:
            r = a - b
            if INT_MIN <= r <= INT_MAX:
                return r
            raise overflow("'-'")
        if ta is float:
            return a - b
        if ta is UInt:
            return check_uint(int(a) - int(b), "'-'")
        if ta is Duration or ta is Timestamp:
            return duration_ns(a.ns - b.ns)
    elif ta is Timestamp and type(b) is Duration:
        return timestamp_ns(a.ns - b.ns)
    raise no_overload("'-'", a, b)


def mul(a: Any, b: Any) -> Any:
    ta = type(a)
    if ta is type(b):
        if ta is int:
            r = a * b
            if INT_MIN <= r <= INT_MAX:
                return r
            raise overflow("'*'")
        if ta is float:
            return a * b
        if ta is UInt:
            return check_uint(int(a) * int(b), "'*'")
    raise no_overload("'*'", a, b)


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def div(a: Any, b: Any) -> Any:
    ta = type(a)
    if ta is type(b):
        if ta is float:
            if b == 0.0:
                if math.isnan(a) or a == 0.0:
                    return math.nan
                return math.copysign(math.inf, a) * math.copysign(1.0, b)
            return a / b
        if ta is int:
            if b == 0:
                raise EvaluationError("division by zero")
            return check_int(_trunc_div(a, b), "'/'")
        if ta is UInt:
            if b == 0:
                raise EvaluationError("division by zero")
            return UInt(int(a) // int(b))
    raise no_overload("'/'", a, b)


def mod(a: Any, b: Any) -> Any:
    ta = type(a)
    if ta is type(b):
        if ta is int:
            if b == 0:
                raise EvaluationError("modulus by zero")
            if a == INT_MIN and b == -1:
                raise overflow("'%'")
            return a - b * _trunc_div(a, b)
        if ta is UInt:
            if b == 0:
                raise EvaluationError("modulus by zero")
            return UInt(int(a) % int(b))
    raise no_overload("'%'", a, b)


def neg(a: Any) -> Any:
    ta = type(a)
    if ta is int:
        if a == INT_MIN:
            raise overflow("'-'")
        return -a
    if ta is float:
        return -a
    raise no_overload("'-'", a)


def logical_not(a: Any) -> bool:
    if a is True:
        return False
    if a is False:
        return True
    raise no_overload("'!'", a)


# --- equality and ordering -----------------------------------------------------------------------


def eq(a: Any, b: Any) -> bool:
    """CEL equality: heterogeneous numeric comparison, otherwise false across types."""
    ta = type(a)
    tb = type(b)
    if ta is tb:
        if ta is list or ta is dict:
            return _eq_containers(a, b)
        return bool(a == b)
    if ta in NUMERIC and tb in NUMERIC:
        if ta is float or tb is float:
            return float(a) == float(b)
        return bool(a == b)
    return False


def _eq_containers(a: Any, b: Any) -> bool:
    """`eq` of two lists or two maps, with an explicit stack: values of any depth compare without
    recursion, so a deep event cannot overflow the interpreter's stack."""
    pending: list[tuple[Any, Any]] = [(a, b)]
    pop = pending.pop
    push = pending.append
    while pending:
        x, y = pop()
        tx = type(x)
        if tx is not type(y):
            if not eq(x, y):  # scalars of different types: numbers, or false
                return False
        elif tx is list:
            if len(x) != len(y):
                return False
            for pair in zip(x, y, strict=True):
                push(pair)
        elif tx is dict:
            if len(x) != len(y):
                return False
            for k, v in x.items():
                if k not in y:
                    return False
                push((v, y[k]))
        elif x != y:
            return False
    return True


def _comparable(op: str, a: Any, b: Any) -> tuple[Any, Any]:
    """The operands of an ordering as Python values ordered the CEL way; raise when CEL defines
    no ordering.  An ordering with NaN is false, as in IEEE 754."""
    ta = type(a)
    tb = type(b)
    if ta in NUMERIC and tb in NUMERIC:
        if ta is float or tb is float:
            return float(a), float(b)
        return a, b
    if ta is tb and ta in _ORDERED:
        return a, b
    raise no_overload(op, a, b)


_ORDERED = frozenset({str, bytes, bool, Timestamp, Duration})


def lt(a: Any, b: Any) -> bool:
    x, y = _comparable("'<'", a, b)
    return bool(x < y)


def le(a: Any, b: Any) -> bool:
    x, y = _comparable("'<='", a, b)
    return bool(x <= y)


def gt(a: Any, b: Any) -> bool:
    x, y = _comparable("'>'", a, b)
    return bool(x > y)


def ge(a: Any, b: Any) -> bool:
    x, y = _comparable("'>='", a, b)
    return bool(x >= y)


def ne(a: Any, b: Any) -> bool:
    return not eq(a, b)


# --- containers --------------------------------------------------------------------------------


def contains(item: Any, container: Any) -> bool:
    """The `in` operator."""
    tc = type(container)
    if tc is list:
        if type(item) is str:
            return item in container
        return any(eq(item, x) for x in container)
    if tc is dict:
        ti = type(item)
        if ti is str or ti is int:
            return item in container
        key = numeric_key(item)
        if key is not None:
            return key in container
        if ti is bool or ti is float:
            return False
        raise EvaluationError(f"unsupported map key type: {type_name(item)}")
    raise no_overload("'in'", item, container)


def numeric_key(key: Any) -> int | None:
    """A uint or an integral double as the int key it equals (CEL's numeric equality), else None."""
    tk = type(key)
    if tk is UInt:
        return int(key)
    if tk is float and key.is_integer():
        return int(key)
    return None


def index(container: Any, key: Any) -> Any:
    tc = type(container)
    if tc is dict:
        tk = type(key)
        if tk is str or tk is int:
            try:
                return container[key]
            except KeyError:
                raise EvaluationError(f"no such key: {key!r}") from None
        if tk is UInt or tk is bool or tk is float:
            number = numeric_key(key)
            if number is not None and number in container:
                return container[number]
            raise EvaluationError(f"no such key: {key!r}")
        raise EvaluationError(f"unsupported map key type: {type_name(key)}")
    if tc is Optional:
        return opt_index(container, key)
    if tc is list:
        tk = type(key)
        if tk is int or tk is UInt:
            if 0 <= key < len(container):
                return container[key]
            raise EvaluationError(f"index out of bounds: {int(key)}")
        if tk is float:
            if not key.is_integer():
                raise EvaluationError(f"invalid list index: {key!r} is not an integral value")
            position = int(key)
            if 0 <= position < len(container):
                return container[position]
            raise EvaluationError(f"index out of bounds: {position}")
        raise no_overload("'[]'", container, key)
    raise no_overload("'[]'", container, key)


def select(value: Any, field: str) -> Any:
    if type(value) is dict:
        try:
            return value[field]
        except KeyError:
            raise EvaluationError(f"no such key: {field!r}") from None
    if type(value) is Optional:
        return opt_select(value, field)
    raise EvaluationError(f"no field {field!r} on a value of type {type_name(value)}")


def opt_select(value: Any, field: str) -> Optional:
    """`value.?field`, and a field of an optional value: empty when the field is absent."""
    if type(value) is Optional:
        if not value.present:
            return NONE
        value = value.value
    if type(value) is dict:
        return some(value[field]) if field in value else NONE
    raise EvaluationError(f"no field {field!r} on a value of type {type_name(value)}")


def opt_index(container: Any, key: Any) -> Optional:
    """`container[?key]`, and an index into an optional value: empty when there is no such entry."""
    if type(container) is Optional:
        if not container.present:
            return NONE
        container = container.value
    try:
        return some(index(container, key))
    except EvaluationError:
        if type(container) is list and type(key) in (int, UInt, float):
            if type(key) is float and not key.is_integer():
                raise
            return NONE
        if type(container) is dict and type(key) in (str, int, UInt, float, bool):
            return NONE
        raise


def has_field(value: Any, field: str) -> bool:
    if type(value) is dict:
        return field in value
    if type(value) is Optional:
        return value.present and has_field(value.value, field)
    raise EvaluationError(f"has() cannot test field {field!r} on a value of type {type_name(value)}")


def make_map_key(key: Any) -> Any:
    tk = type(key)
    if tk is str or tk is int or tk is UInt:
        return key
    raise EvaluationError(f"unsupported map key type: {type_name(key)}")


def size(value: Any) -> int:
    tv = type(value)
    if tv is str:
        return len(value)
    if tv is list or tv is dict or tv is bytes:
        return len(value)
    raise no_overload("size()", value)


def string_method(name: str) -> Any:
    """Return the implementation of a string predicate method (contains/startsWith/endsWith)."""
    def impl(s: Any, arg: Any) -> bool:
        if type(s) is not str or type(arg) is not str:
            raise no_overload(name + "()", s, arg)
        if name == "contains":
            return arg in s
        if name == "startsWith":
            return s.startswith(arg)
        return s.endswith(arg)
    return impl


# --- conversions --------------------------------------------------------------------------------

_INT_TEXT = re.compile(r"[+-]?[0-9]+\Z")
_UINT_TEXT = re.compile(r"\+?[0-9]+\Z")
_DOUBLE_TEXT = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)\Z", re.IGNORECASE)


def to_int(value: Any) -> Any:
    tv = type(value)
    if tv is int:
        return value
    if tv is UInt:
        return check_int(int(value), "int()")
    if tv is float:
        if -9223372036854775808.0 < value < 9223372036854775808.0:
            return int(value)
        raise EvaluationError("int() overflow: value out of range")
    if tv is str:
        if not _INT_TEXT.match(value):
            raise EvaluationError(f"int() cannot parse {value!r}")
        return check_int(int(value), "int()")
    if tv is Timestamp:
        return value.ns // times.NS
    raise no_overload("int()", value)


def to_uint(value: Any) -> Any:
    tv = type(value)
    if tv is UInt:
        return value
    if tv is int:
        return check_uint(value, "uint()")
    if tv is float:
        if 0.0 <= value < 18446744073709551616.0:
            return UInt(int(value))
        raise EvaluationError("uint() overflow: value out of range")
    if tv is str:
        if not _UINT_TEXT.match(value):
            raise EvaluationError(f"uint() cannot parse {value!r}")
        return check_uint(int(value), "uint()")
    raise no_overload("uint()", value)


def to_double(value: Any) -> Any:
    tv = type(value)
    if tv is float:
        return value
    if tv is int or tv is UInt:
        return float(value)
    if tv is str:
        if not _DOUBLE_TEXT.match(value):
            raise EvaluationError(f"double() cannot parse {value!r}")
        return float(value)
    raise no_overload("double()", value)


def format_double(value: float) -> str:
    """A double as cel-go and cel-cpp print it: the shortest digits that round-trip, in exponent
    form (`1e+06`, `1e-05`) when the decimal exponent is below -4 or at least 6."""
    if value != value:  # noqa: PLR0124 - NaN test
        return "NaN"
    if value in (math.inf, -math.inf):
        return "inf" if value > 0 else "-inf"
    if value == 0.0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    exp10 = len(digits) + int(exponent) - 1
    minus = "-" if sign else ""
    if exp10 < -4 or exp10 >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{minus}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    if exp10 < 0:
        return f"{minus}0.{'0' * (-exp10 - 1)}{text}"
    if len(text) <= exp10 + 1:
        return minus + text + "0" * (exp10 + 1 - len(text))
    return f"{minus}{text[:exp10 + 1]}.{text[exp10 + 1:]}"


def to_string(value: Any) -> Any:
    tv = type(value)
    if tv is str:
        return value
    if tv is int or tv is UInt:
        return str(int(value))
    if tv is float:
        return format_double(value)
    if tv is bool:
        return "true" if value else "false"
    if tv is bytes:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise EvaluationError("string() of bytes that are not valid UTF-8") from None
    if tv is Timestamp:
        return times.format_timestamp(value)
    if tv is Duration:
        return times.format_duration(value)
    raise no_overload("string()", value)


def to_bytes(value: Any) -> Any:
    tv = type(value)
    if tv is bytes:
        return value
    if tv is str:
        return value.encode("utf-8")
    raise no_overload("bytes()", value)


# --- timestamps and durations ------------------------------------------------------------------


def to_timestamp(value: Any) -> Timestamp:
    tv = type(value)
    if tv is str:
        return times.parse_timestamp(value)
    if tv is Timestamp:
        return times.as_timestamp(value)
    if tv is int:
        return make_timestamp(value)
    raise no_overload("timestamp()", value)


def to_duration(value: Any) -> Duration:
    tv = type(value)
    if tv is str:
        return times.parse_duration(value)
    if tv is Duration:
        return times.as_duration(value)
    raise no_overload("duration()", value)


def time_getter(name: str) -> Any:
    """Return the implementation of a timestamp/duration accessor such as getHours(): a function
    of the value and an optional time zone name."""
    timestamp_field = times.timestamp_field
    duration_field = times.duration_field
    on_durations = name in DURATION_GETTERS

    def impl(value: Any, tz: Any = None) -> int:
        tv = type(value)
        if tv is Timestamp and (tz is None or type(tz) is str):
            return timestamp_field(name, value, tz)
        if tv is Duration and on_durations and tz is None:
            return duration_field(name, value)
        if tz is None:
            raise no_overload(f"{name}()", value)
        raise no_overload(f"{name}()", value, tz)
    return impl
