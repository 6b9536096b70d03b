"""The functions of the CEL standard extension libraries (as cel-go and cel-cpp define them):
strings, math, lists, sets, optionals and encoders, plus bool() and type().

`FUNCTIONS` maps (name, is_method) to the implementation and its overloads.  An overload lists
the static types of its parameters (the receiver first for methods; `*` accepts any type, `num`
any number) and of its result; the checker picks the overloads that the argument types allow, and
the implementation checks the run-time types itself.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import formatting
from . import runtime as rt
from .errors import EvaluationError
from .runtime import INT_MAX, INT_MIN, MAX_SIZE, UInt, no_overload
from .values import NONE, CelType, Optional, some


@dataclass(frozen=True, slots=True)
class Overload:
    params: tuple[str, ...]
    result: str
    variadic: bool = False


@dataclass(frozen=True, slots=True)
class Function:
    impl: Callable[..., Any]
    overloads: tuple[Overload, ...]


FUNCTIONS: dict[tuple[str, bool], Function] = {}


def _define(name: str, member: bool, *signatures: str, variadic: bool = False) -> Callable[[Any], Any]:
    """Register `impl` for `name`; each signature reads `t1,t2->result`."""
    def register(impl: Callable[..., Any]) -> Callable[..., Any]:
        overloads = []
        for sig in signatures:
            params, result = sig.split("->")
            overloads.append(Overload(tuple(p for p in params.split(",") if p), result, variadic))
        FUNCTIONS[(name, member)] = Function(impl, tuple(overloads))
        return impl
    return register


def _str(value: Any, name: str, *others: Any) -> str:
    if type(value) is not str:
        raise no_overload(name, value, *others)
    return value


def _int(value: Any, name: str) -> int:
    if type(value) is not int:
        raise no_overload(name, value)
    return int(value)


def _check_size(length: int) -> None:
    if length > MAX_SIZE:
        raise EvaluationError(f"result longer than {MAX_SIZE} elements")


# --- strings --------------------------------------------------------------------------------------


@_define("charAt", True, "string,int->string")
def char_at(s: Any, i: Any) -> str:
    text = _str(s, "charAt()", i)
    i = _int(i, "charAt()")
    if not 0 <= i <= len(text):
        raise EvaluationError(f"charAt(): index out of range: {i}")
    return text[i:i + 1]


@_define("indexOf", True, "string,string->int", "string,string,int->int")
def index_of(s: Any, sub: Any, start: Any = 0) -> int:
    text = _str(s, "indexOf()", sub)
    part = _str(sub, "indexOf()", s)
    begin = _int(start, "indexOf()")
    if not 0 <= begin <= len(text):
        raise EvaluationError(f"indexOf(): index out of range: {begin}")
    return text.find(part, begin)


@_define("lastIndexOf", True, "string,string->int", "string,string,int->int")
def last_index_of(s: Any, sub: Any, end: Any = None) -> int:
    text = _str(s, "lastIndexOf()", sub)
    part = _str(sub, "lastIndexOf()", s)
    if end is None:
        return text.rfind(part)
    stop = _int(end, "lastIndexOf()")
    if not 0 <= stop <= len(text):
        raise EvaluationError(f"lastIndexOf(): index out of range: {stop}")
    return text.rfind(part, 0, stop + len(part))


_LOWER = {c: c + 32 for c in range(65, 91)}
_UPPER = {c + 32: c for c in range(65, 91)}


@_define("lowerAscii", True, "string->string")
def lower_ascii(s: Any) -> str:
    return _str(s, "lowerAscii()").translate(_LOWER)


@_define("upperAscii", True, "string->string")
def upper_ascii(s: Any) -> str:
    return _str(s, "upperAscii()").translate(_UPPER)


@_define("replace", True, "string,string,string->string", "string,string,string,int->string")
def replace(s: Any, old: Any, new: Any, n: Any = -1) -> str:
    text, before, after = (_str(v, "replace()") for v in (s, old, new))
    limit = _int(n, "replace()")
    if limit == 0:
        return text
    count = text.count(before) if before else len(text) + 1
    if limit > 0:
        count = min(count, limit)
    _check_size(len(text) + count * (len(after) - len(before)))
    return text.replace(before, after, limit if limit > 0 else -1)


@_define("split", True, "string,string->list", "string,string,int->list")
def split(s: Any, sep: Any, n: Any = -1) -> list[str]:
    text = _str(s, "split()", sep)
    separator = _str(sep, "split()", s)
    limit = _int(n, "split()")
    if limit == 0:
        return []
    if limit == 1:
        return [text]
    if separator == "":
        chars = list(text)
        if 0 < limit < len(chars):
            return [*chars[:limit - 1], "".join(chars[limit - 1:])]
        return chars
    return text.split(separator, limit - 1 if limit > 0 else -1)


@_define("substring", True, "string,int->string", "string,int,int->string")
def substring(s: Any, start: Any, end: Any = None) -> str:
    text = _str(s, "substring()", start)
    begin = _int(start, "substring()")
    stop = len(text) if end is None else _int(end, "substring()")
    if not 0 <= begin <= len(text) or not 0 <= stop <= len(text):
        raise EvaluationError(f"substring(): index out of range: {begin}, {stop}")
    if begin > stop:
        raise EvaluationError(f"substring(): invalid range: start {begin} > end {stop}")
    return text[begin:stop]


_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
         "\u2028\u2029\u202f\u205f\u3000"


@_define("trim", True, "string->string")
def trim(s: Any) -> str:
    return _str(s, "trim()").strip(_SPACE)


@_define("join", True, "list->string", "list,string->string")
def join(items: Any, sep: Any = "") -> str:
    if type(items) is not list:
        raise no_overload("join()", items)
    separator = _str(sep, "join()", items)
    parts: list[str] = []
    for item in items:
        parts.append(_str(item, "join()"))
    return separator.join(parts)


@_define("reverse", True, "string->string", "list->list")
def reverse(value: Any) -> Any:
    if type(value) is str or type(value) is list:
        return value[::-1]
    raise no_overload("reverse()", value)


_QUOTE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
                  "\\": "\\\\", '"': '\\"'}


@_define("strings.quote", False, "string->string")
def quote(s: Any) -> str:
    text = _str(s, "strings.quote()")
    return '"' + "".join(_QUOTE_ESCAPES.get(c, c) for c in text) + '"'


_define("format", True, "string,list->string")(formatting.string_format)


# --- math -------------------------------------------------------------------------------------------


def _number(value: Any, name: str) -> Any:
    if type(value) not in rt.NUMERIC:
        raise no_overload(name, value)
    return value


def _extreme(name: str, args: tuple[Any, ...], pick_greater: bool) -> Any:
    values = args[0] if len(args) == 1 and type(args[0]) is list else list(args)
    if not values:
        raise EvaluationError(f"{name}(): no arguments")
    best = _number(values[0], name)
    for v in values[1:]:
        _number(v, name)
        if (rt.gt if pick_greater else rt.lt)(v, best):
            best = v
    return best


@_define("math.greatest", False, "num->dyn", "list->dyn", variadic=True)
def greatest(*args: Any) -> Any:
    return _extreme("math.greatest", args, True)


@_define("math.least", False, "num->dyn", "list->dyn", variadic=True)
def least(*args: Any) -> Any:
    return _extreme("math.least", args, False)


@_define("math.abs", False, "int->int", "uint->uint", "double->double")
def abs_(x: Any) -> Any:
    tx = type(x)
    if tx is int:
        if x == INT_MIN:
            raise rt.overflow("math.abs()")
        return abs(x)
    if tx is UInt:
        return x
    if tx is float:
        return abs(x)
    raise no_overload("math.abs()", x)


@_define("math.sign", False, "int->int", "uint->uint", "double->double")
def sign(x: Any) -> Any:
    tx = type(x)
    if tx is int:
        return (x > 0) - (x < 0)
    if tx is UInt:
        return UInt(1 if x else 0)
    if tx is float:
        if x != x:  # noqa: PLR0124 - NaN test
            return x
        return float((x > 0) - (x < 0))
    raise no_overload("math.sign()", x)


def _double(x: Any, name: str) -> float:
    if type(x) is not float:
        raise no_overload(name, x)
    return float(x)


def _rounding(name: str, fn: Callable[[float], float]) -> Callable[[Any], float]:
    def impl(x: Any) -> float:
        v = _double(x, name)
        if math.isinf(v) or v != v:  # noqa: PLR0124 - NaN test
            return v
        return math.copysign(fn(v), v)
    return impl


def _round_half_away(v: float) -> float:
    return float(math.floor(abs(v) + 0.5)) if abs(v) < 2**52 else abs(v)


_define("math.ceil", False, "double->double")(_rounding("math.ceil", lambda v: float(math.ceil(v))))
_define("math.floor", False, "double->double")(_rounding("math.floor", lambda v: float(math.floor(v))))
_define("math.trunc", False, "double->double")(_rounding("math.trunc", lambda v: float(math.trunc(v))))
_define("math.round", False, "double->double")(_rounding("math.round", _round_half_away))


@_define("math.isInf", False, "double->bool")
def is_inf(x: Any) -> bool:
    return math.isinf(_double(x, "math.isInf"))


@_define("math.isNaN", False, "double->bool")
def is_nan(x: Any) -> bool:
    return math.isnan(_double(x, "math.isNaN"))


@_define("math.isFinite", False, "double->bool")
def is_finite(x: Any) -> bool:
    return math.isfinite(_double(x, "math.isFinite"))


@_define("math.sqrt", False, "num->double")
def sqrt(x: Any) -> float:
    v = float(_number(x, "math.sqrt()"))
    if v < 0:
        return math.nan
    return math.sqrt(v)


def _bits(name: str, op: Callable[[int, int], int]) -> Callable[[Any, Any], Any]:
    def impl(a: Any, b: Any) -> Any:
        ta = type(a)
        if ta is type(b) and (ta is int or ta is UInt):
            r = op(int(a), int(b))
            return r if ta is int else UInt(r)
        raise no_overload(name, a, b)
    return impl


_define("math.bitAnd", False, "int,int->int", "uint,uint->uint")(_bits("math.bitAnd", lambda a, b: a & b))
_define("math.bitOr", False, "int,int->int", "uint,uint->uint")(_bits("math.bitOr", lambda a, b: a | b))
_define("math.bitXor", False, "int,int->int", "uint,uint->uint")(_bits("math.bitXor", lambda a, b: a ^ b))


@_define("math.bitNot", False, "int->int", "uint->uint")
def bit_not(a: Any) -> Any:
    if type(a) is int:
        return ~a
    if type(a) is UInt:
        return UInt(~int(a) & rt.UINT_MAX)
    raise no_overload("math.bitNot", a)


def _shift(name: str, left: bool) -> Callable[[Any, Any], Any]:
    def impl(a: Any, n: Any) -> Any:
        ta = type(a)
        if type(n) is not int or (ta is not int and ta is not UInt):
            raise no_overload(name, a, n)
        if n < 0:
            raise EvaluationError(f"{name}(): negative shift: {n}")
        if n >= 64:
            return 0 if ta is int else UInt(0)
        bits = int(a) & rt.UINT_MAX
        bits = (bits << n) & rt.UINT_MAX if left else bits >> n
        if ta is UInt:
            return UInt(bits)
        return bits - 2**64 if bits > INT_MAX else bits
    return impl


_define("math.bitShiftLeft", False, "int,int->int", "uint,int->uint")(_shift("math.bitShiftLeft", True))
_define("math.bitShiftRight", False, "int,int->int", "uint,int->uint")(_shift("math.bitShiftRight", False))


# --- lists and sets -----------------------------------------------------------------------------------


def _list(value: Any, name: str) -> list[Any]:
    if type(value) is not list:
        raise no_overload(name, value)
    return value


@_define("lists.range", False, "int->list")
def list_range(n: Any) -> list[int]:
    n = _int(n, "lists.range()")
    if n < 0:
        raise EvaluationError(f"lists.range(): negative length {n}")
    _check_size(n)
    return list(range(n))


@_define("distinct", True, "list->list")
def distinct(items: Any) -> list[Any]:
    out: list[Any] = []
    for item in _list(items, "distinct()"):
        if not any(rt.eq(item, seen) for seen in out):
            out.append(item)
    return out


def _flatten(items: list[Any], depth: int) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if type(item) is list and depth > 0:
            out.extend(_flatten(item, depth - 1))
        else:
            out.append(item)
    return out


@_define("flatten", True, "list->list", "list,int->list")
def flatten(items: Any, depth: Any = 1) -> list[Any]:
    depth = _int(depth, "flatten()")
    if depth < 0:
        raise EvaluationError("flatten(): level must be non-negative")
    result = _flatten(_list(items, "flatten()"), min(depth, 64))
    _check_size(len(result))
    return result


@_define("slice", True, "list,int,int->list")
def slice_(items: Any, start: Any, end: Any) -> list[Any]:
    values = _list(items, "slice()")
    begin = _int(start, "slice()")
    stop = _int(end, "slice()")
    if begin < 0 or stop < 0:
        raise EvaluationError(f"slice(): negative index: {min(begin, stop)}")
    if begin > stop:
        raise EvaluationError(f"slice(): start index {begin} must be less than or equal to end index {stop}")
    if stop > len(values):
        raise EvaluationError(f"slice(): list is length {len(values)}")
    return values[begin:stop]


_SORTABLE = (int, UInt, float, str, bytes, bool, rt.Timestamp, rt.Duration)


def sort_key_check(values: list[Any], name: str) -> None:
    """Sorting needs values of one orderable type (numbers may mix)."""
    kinds = {type(v) for v in values}
    if not kinds:
        return
    if kinds <= rt.NUMERIC or (len(kinds) == 1 and next(iter(kinds)) in _SORTABLE):
        if any(type(v) is float and v != v for v in values):  # noqa: PLR0124 - NaN test
            raise EvaluationError(f"{name}: cannot sort NaN")
        return
    raise EvaluationError(f"{name}: list elements must have one comparable type")


@_define("sort", True, "list->list")
def sort(items: Any) -> list[Any]:
    values = _list(items, "sort()")
    sort_key_check(values, "sort()")
    return sorted(values)


@_define("first", True, "list->optional")
def first(items: Any) -> Optional:
    values = _list(items, "first()")
    return some(values[0]) if values else NONE


@_define("last", True, "list->optional")
def last(items: Any) -> Optional:
    values = _list(items, "last()")
    return some(values[-1]) if values else NONE


def _contains_all(a: list[Any], b: list[Any]) -> bool:
    return all(any(rt.eq(x, y) for y in a) for x in b)


@_define("sets.contains", False, "list,list->bool")
def sets_contains(a: Any, b: Any) -> bool:
    return _contains_all(_list(a, "sets.contains()"), _list(b, "sets.contains()"))


@_define("sets.equivalent", False, "list,list->bool")
def sets_equivalent(a: Any, b: Any) -> bool:
    a = _list(a, "sets.equivalent()")
    b = _list(b, "sets.equivalent()")
    return _contains_all(a, b) and _contains_all(b, a)


@_define("sets.intersects", False, "list,list->bool")
def sets_intersects(a: Any, b: Any) -> bool:
    a = _list(a, "sets.intersects()")
    b = _list(b, "sets.intersects()")
    return any(any(rt.eq(x, y) for y in b) for x in a)


# --- optionals --------------------------------------------------------------------------------------


@_define("optional.of", False, "*->optional")
def optional_of(value: Any) -> Optional:
    return some(value)


@_define("optional.none", False, "->optional")
def optional_none() -> Optional:
    return NONE


def is_zero(value: Any) -> bool:
    tv = type(value)
    if value is None:
        return True
    if tv in (bool, int, UInt, float, str, bytes, list, dict):
        return not value
    if tv is rt.Timestamp or tv is rt.Duration:
        return bool(value.ns == 0)
    if tv is Optional:
        return not value.present
    return False


@_define("optional.ofNonZeroValue", False, "*->optional")
def optional_of_non_zero(value: Any) -> Optional:
    return NONE if is_zero(value) else some(value)


def _optional(value: Any, name: str) -> Optional:
    if type(value) is not Optional:
        raise no_overload(name, value)
    return value


@_define("hasValue", True, "optional->bool")
def has_value(opt: Any) -> bool:
    return _optional(opt, "hasValue()").present


@_define("value", True, "optional->dyn")
def value(opt: Any) -> Any:
    o = _optional(opt, "value()")
    if not o.present:
        raise EvaluationError("optional.none() dereference")
    return o.value


# `or` and `orValue` evaluate their argument only when the optional is empty: see the compiler.
@_define("or", True, "optional,optional->optional")
def or_(opt: Any, other: Any) -> Any:
    o = _optional(opt, "or()")
    return o if o.present else _optional(other, "or()")


@_define("orValue", True, "optional,*->dyn")
def or_value(opt: Any, default: Any) -> Any:
    o = _optional(opt, "orValue()")
    return o.value if o.present else default


@_define("optional.unwrap", False, "list->list")
def unwrap(items: Any) -> list[Any]:
    out = []
    for item in _list(items, "optional.unwrap()"):
        if _optional(item, "optional.unwrap()").present:
            out.append(item.value)
    return out


_define("unwrapOpt", True, "list->list")(unwrap)


# --- encoders, bool() and type() -------------------------------------------------------------------


@_define("base64.encode", False, "bytes->string")
def b64encode(data: Any) -> str:
    if type(data) is not bytes:
        raise no_overload("base64.encode()", data)
    return base64.b64encode(data).decode("ascii")


@_define("base64.decode", False, "string->bytes")
def b64decode(text: Any) -> bytes:
    s = _str(text, "base64.decode()")
    try:
        return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise EvaluationError("base64.decode(): invalid base64 data") from None


_BOOL_TEXT = {"1": True, "t": True, "true": True, "TRUE": True, "True": True,
              "0": False, "f": False, "false": False, "FALSE": False, "False": False}


@_define("bool", False, "bool->bool", "string->bool")
def to_bool(value: Any) -> bool:
    if value is True or value is False:
        return value is True
    if type(value) is str:
        try:
            return _BOOL_TEXT[value]
        except KeyError:
            raise EvaluationError(f"bool() cannot parse {value!r}") from None
    raise no_overload("bool()", value)


_TYPE_OF: dict[type, CelType] = {
    bool: CelType("bool"), int: CelType("int"), UInt: CelType("uint"), float: CelType("double"),
    str: CelType("string"), bytes: CelType("bytes"), type(None): CelType("null_type"), list: CelType("list"),
    dict: CelType("map"), rt.Timestamp: CelType("google.protobuf.Timestamp"),
    rt.Duration: CelType("google.protobuf.Duration"), Optional: CelType("optional_type"), CelType: CelType("type"),
}


@_define("type", False, "*->type")
def type_of(value: Any) -> CelType:
    try:
        return _TYPE_OF[type(value)]
    except KeyError:
        raise no_overload("type()", value) from None
