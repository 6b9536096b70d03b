"""CEL value model and operations on runtime values, used when types are only known at run time.

Values are plain Python objects: int (CEL int), UInt (CEL uint), float, str, bytes, None, list,
dict, tz-aware datetime (timestamp) and timedelta (duration).  `bool` is a subclass of `int` in
Python, so every dispatch here compares exact types (`type(x) is int`), never `isinstance`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from typing import Any, NoReturn

from .errors import EvaluationError

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
    type(None): "null", list: "list", dict: "map", datetime: "timestamp", timedelta: "duration",
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


_MAX_DURATION_US = (2**63 - 1) // 1000


def check_duration(value: timedelta) -> timedelta:
    if abs(value // timedelta(microseconds=1)) > _MAX_DURATION_US:
        raise EvaluationError("duration out of range")
    return value


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
        if ta is timedelta:
            return check_duration(a + b)
    elif ta is datetime and type(b) is timedelta:
        return shift(a, b)
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
        if ta is timedelta:
            return check_duration(a - b)
        if ta is datetime:
            return check_duration(a - b)
    elif ta is datetime and type(b) is timedelta:
        return shift(a, -b)
    raise no_overload("'-'", a, b)


def shift(ts: datetime, delta: timedelta) -> datetime:
    try:
        return ts + delta
    except OverflowError:
        raise EvaluationError("timestamp out of range") from None


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
        return a if a == INT_MIN else -a
    if ta is float:
        return -a
    if ta is timedelta:
        return check_duration(-a)
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
        if ta is list:
            return len(a) == len(b) and all(eq(x, y) for x, y in zip(a, b, strict=True))
        if ta is dict:
            if len(a) != len(b):
                return False
            return all(k in b and eq(v, b[k]) for k, v in a.items())
        return bool(a == b)
    if ta in NUMERIC and tb in NUMERIC:
        if ta is float or tb is float:
            return float(a) == float(b)
        return bool(a == b)
    return False


def compare(op: str, a: Any, b: Any) -> Any:
    """Return -1, 0 or 1 ordering `a` and `b`; raise when CEL defines no ordering."""
    ta = type(a)
    tb = type(b)
    if ta in NUMERIC and tb in NUMERIC:
        if ta is float or tb is float:
            fa = float(a)
            fb = float(b)
            if fa != fa or fb != fb:  # noqa: PLR0124 - NaN test, cheaper than math.isnan
                raise no_overload(op, a, b)
            return (fa > fb) - (fa < fb)
        return (a > b) - (a < b)
    if ta is tb and ta in _ORDERED:
        return (a > b) - (a < b)
    raise no_overload(op, a, b)


_ORDERED = frozenset({str, bytes, bool, datetime, timedelta})


def lt(a: Any, b: Any) -> Any:
    return compare("'<'", a, b) < 0


def le(a: Any, b: Any) -> Any:
    return compare("'<='", a, b) <= 0


def gt(a: Any, b: Any) -> Any:
    return compare("'>'", a, b) > 0


def ge(a: Any, b: Any) -> Any:
    return compare("'>='", a, b) >= 0


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
        if ti is UInt or ti is bool:
            return False
        raise EvaluationError(f"unsupported map key type: {type_name(item)}")
    raise no_overload("'in'", item, container)


def index(container: Any, key: Any) -> Any:
    tc = type(container)
    if tc is dict:
        tk = type(key)
        if tk is str or tk is int:
            try:
                return container[key]
            except KeyError:
                raise EvaluationError(f"no such key: {key!r}") from None
        if tk is UInt or tk is bool:
            raise EvaluationError(f"no such key: {key!r}")
        raise EvaluationError(f"unsupported map key type: {type_name(key)}")
    if tc is list:
        tk = type(key)
        if tk is int or tk is UInt:
            if 0 <= key < len(container):
                return container[key]
            raise EvaluationError(f"index out of bounds: {int(key)}")
        raise no_overload("'[]'", container, key)
    raise no_overload("'[]'", container, key)


def select(value: Any, field: str) -> Any:
    if type(value) is dict:
        try:
            return value[field]
        except KeyError:
            raise EvaluationError(f"no such key: {field!r}") from None
    raise EvaluationError(f"no field {field!r} on a value of type {type_name(value)}")


def has_field(value: Any, field: str) -> bool:
    if type(value) is dict:
        return field in value
    raise EvaluationError(f"has() cannot test field {field!r} on a value of type {type_name(value)}")


def make_map_key(key: Any) -> Any:
    tk = type(key)
    if tk is str or tk is int:
        return key
    raise EvaluationError(f"unsupported map key type: {type_name(key)}")


def size(value: Any) -> int:
    tv = type(value)
    if tv is str:
        return len(value) if value.isascii() else len(value.encode("utf-8"))
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
    """Render a double as the reference does: shortest round-trip digits, never an exponent."""
    if math.isnan(value):
        return "NaN"
    if value in (math.inf, -math.inf):
        return "inf" if value > 0 else "-inf"
    text = repr(value)
    if "e" in text:
        text = format(Decimal(text), "f")
    if text.endswith(".0"):
        text = text[:-2]
    return text


def format_timestamp(ts: datetime) -> str:
    micro = ts.microsecond
    if micro == 0:
        frac = ""
    elif micro % 1000 == 0:
        frac = f".{micro // 1000:03d}"
    else:
        frac = f".{micro:06d}"
    offset = ts.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(offset) // timedelta(minutes=1)
    return (f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d}T{ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}"
            f"{frac}{sign}{minutes // 60:02d}:{minutes % 60:02d}")


def to_string(value: Any) -> Any:
    tv = type(value)
    if tv is str:
        return value
    if tv is int or tv is UInt:
        return str(int(value))
    if tv is float:
        return format_double(value)
    if tv is bytes:
        return value.decode("utf-8", errors="replace")
    if tv is datetime:
        return format_timestamp(value)
    raise no_overload("string()", value)


def to_bytes(value: Any) -> Any:
    tv = type(value)
    if tv is bytes:
        return value
    if tv is str:
        return value.encode("utf-8")
    raise no_overload("bytes()", value)


# --- timestamps and durations ------------------------------------------------------------------

_TIMESTAMP_TEXT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))\Z")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def to_timestamp(value: Any) -> datetime:
    if type(value) is not str:
        raise no_overload("timestamp()", value)
    m = _TIMESTAMP_TEXT.match(value)
    if m is None:
        raise EvaluationError(f"timestamp() cannot parse {value!r} (expected RFC 3339)")
    frac = (m.group(7) or "").ljust(9, "0")
    if frac[6:] != "000":
        raise EvaluationError("timestamps with sub-microsecond precision are not supported")
    if m.group(8):
        tz = UTC
    else:
        hours, minutes = int(m.group(10)), int(m.group(11))
        if hours > 23 or minutes > 59:
            raise EvaluationError(f"timestamp() cannot parse {value!r}: bad offset")
        offset = timedelta(hours=hours, minutes=minutes)
        tz = timezone(-offset if m.group(9) == "-" else offset)
    try:
        return datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)),
                        int(m.group(5)), int(m.group(6)), int(frac[:6]), tzinfo=tz)
    except ValueError as exc:
        raise EvaluationError(f"timestamp() cannot parse {value!r}: {exc}") from None


def to_duration(value: Any) -> timedelta:
    if type(value) is not str:
        raise no_overload("duration()", value)
    text = value
    sign = 1
    if text[:1] in ("+", "-"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    total = Fraction(0)
    if text != "0":
        pos = 0
        while pos < len(text) or pos == 0:
            m = _DURATION_PART.match(text, pos)
            if m is None:
                raise EvaluationError(f"duration() cannot parse {value!r}")
            total += Fraction(m.group(1)) * _UNIT_NS[m.group(2)]
            pos = m.end()
    nanos = sign * total
    if nanos.denominator != 1 or nanos.numerator % 1000:
        raise EvaluationError("durations with sub-microsecond precision are not supported")
    if abs(nanos) > 2**63 - 1:
        raise EvaluationError("duration out of range")
    return timedelta(microseconds=nanos.numerator // 1000)


def _total(value: timedelta, unit_us: int) -> int:
    micros = value // timedelta(microseconds=1)
    q = abs(micros) // unit_us
    return q if micros >= 0 else -q


def time_getter(name: str) -> Any:
    """Return the implementation of a timestamp/duration accessor such as getHours()."""
    ts_getters: dict[str, Callable[[datetime], int]] = {
        "getFullYear": lambda t: t.year,
        "getMonth": lambda t: t.month - 1,
        "getDayOfMonth": lambda t: t.day - 1,
        "getDate": lambda t: t.day,
        "getDayOfWeek": lambda t: (t.weekday() + 1) % 7,
        "getDayOfYear": lambda t: t.timetuple().tm_yday - 1,
        "getHours": lambda t: t.hour,
        "getMinutes": lambda t: t.minute,
        "getSeconds": lambda t: t.second,
        "getMilliseconds": lambda t: t.microsecond // 1000,
    }
    dur_units = {"getHours": 3_600_000_000, "getMinutes": 60_000_000, "getSeconds": 1_000_000,
                 "getMilliseconds": 1000}
    ts_get = ts_getters[name]
    dur_unit = dur_units.get(name)

    def impl(value: Any) -> int:
        tv = type(value)
        if tv is datetime:
            return int(ts_get(value))
        if tv is timedelta and dur_unit is not None:
            return _total(value, dur_unit)
        raise no_overload(f"{name}()", value)
    return impl


TIMESTAMP_GETTERS = frozenset({"getFullYear", "getMonth", "getDayOfMonth", "getDate", "getDayOfWeek",
                               "getDayOfYear", "getHours", "getMinutes", "getSeconds", "getMilliseconds"})
DURATION_GETTERS = frozenset({"getHours", "getMinutes", "getSeconds", "getMilliseconds"})
