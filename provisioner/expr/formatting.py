"""The strings extension's `format()`: `'%s is %d years old'.format([name, age])`.

The clauses and their output are cel-go's (ext.Strings, the cel-spec strings extension):
`%s` (any value but an optional; lists and maps recursively, map entries sorted by their printed
keys), `%d` (ints, uints, doubles), `%f` and `%e` with an optional precision `%.3f` (at most 100,
6 by default; ints and uints are converted to doubles), `%b` (ints, uints, bools), `%x` and `%X`
(ints, uints, strings, bytes), `%o` (ints, uints) and `%%`.  Doubles print with the shortest
digits that round-trip, never in exponent form (`%s` of 1e20 is `100000000000000000000`), and NaN
and infinities as `NaN`, `Infinity` and `-Infinity` in every clause.  A duration prints as its
seconds (`1.5s`), a timestamp in RFC 3339 (`2023-02-03T23:31:20Z`).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from operator import itemgetter
from typing import Any

from .errors import EvaluationError
from .runtime import MAX_SIZE, UInt, no_overload, type_name
from .times import NS, Duration, Timestamp, format_timestamp
from .values import CelType

MAX_PRECISION = 100
DEFAULT_PRECISION = 6

Clause = Callable[[Any, int], str]

CLAUSE_TYPES: dict[str, tuple[str, ...]] = {
    "s": ("int", "uint", "double", "bool", "string", "bytes", "null", "list", "map", "timestamp", "duration",
          "type"),
    "d": ("int", "uint", "double"), "f": ("int", "uint", "double"), "e": ("int", "uint", "double"),
    "b": ("int", "uint", "bool"), "x": ("int", "uint", "string", "bytes"), "X": ("int", "uint", "string", "bytes"),
    "o": ("int", "uint"),
}
"""The static types each clause accepts (the checker rejects the others when it knows the type)."""

_EXPECTED = {
    "s": "string clause can only be used on strings, bools, bytes, ints, doubles, maps, lists, types, "
         "durations, and timestamps",
    "d": "decimal clause can only be used on ints, uints, and doubles",
    "f": "fixed-point clause can only be used on ints, uints, and doubles",
    "e": "scientific clause can only be used on ints, uints, and doubles",
    "b": "only ints, uints, and bools can be formatted as binary",
    "x": "only ints, uints, bytes, and strings can be formatted as hex",
    "X": "only ints, uints, bytes, and strings can be formatted as hex",
    "o": "octal clause can only be used on ints and uints",
}
_CEL_NAMES = {"null": "null_type", "timestamp": "google.protobuf.Timestamp", "duration": "google.protobuf.Duration",
              "optional": "optional_type"}


def clause_error(kind: str, given: str) -> str:
    """The message for a value of type `given` (a CEL or static type name) that `%kind` rejects."""
    return f"error during formatting: {_EXPECTED[kind]}, was given {_CEL_NAMES.get(given, given)}"


def _fail(kind: str, value: Any) -> EvaluationError:
    return EvaluationError(clause_error(kind, type_name(value)))


def _special(value: float) -> str | None:
    if value != value:  # noqa: PLR0124 - NaN test
        return "NaN"
    if value == float("inf"):
        return "Infinity"
    if value == float("-inf"):
        return "-Infinity"
    return None


def shortest(value: float) -> str:
    """A finite double in its shortest round-trip digits without an exponent (Go's 'f', -1)."""
    text = repr(value)
    if "e" not in text:
        return text[:-2] if text.endswith(".0") else text
    return format(Decimal(text), "f")


def _seconds(d: Duration) -> str:
    ns = d.ns
    sec = abs(ns) // NS
    if ns < 0:
        sec = -sec
    return shortest(float(sec) + float(ns - sec * NS) / 1e9) + "s"


def as_string(value: Any) -> str:
    t = type(value)
    if t is str:
        return str(value)
    if t is bool:
        return "true" if value else "false"
    if t is int or t is UInt:
        return str(int(value))
    if t is float:
        return _special(value) or shortest(value)
    if value is None:
        return "null"
    if t is list:
        return "[" + ", ".join([as_string(v) for v in value]) + "]"
    if t is dict:
        entries = sorted([(as_string(k), as_string(v)) for k, v in value.items()], key=itemgetter(0))
        return "{" + ", ".join([f"{k}: {v}" for k, v in entries]) + "}"
    if t is bytes:
        try:
            return str(value.decode("utf-8"))
        except UnicodeDecodeError:
            raise EvaluationError("error during formatting: %s of bytes that are not valid UTF-8") from None
    if t is Timestamp:
        return format_timestamp(value)
    if t is Duration:
        return _seconds(value)
    if t is CelType:
        return str(value.name)
    raise _fail("s", value)


def _string(value: Any, precision: int) -> str:
    return as_string(value)


def _decimal(value: Any, precision: int) -> str:
    t = type(value)
    if t is int or t is UInt:
        return str(int(value))
    if t is float:
        return _special(value) or shortest(value)
    raise _fail("d", value)


def _floating(kind: str) -> Clause:
    def clause(value: Any, precision: int) -> str:
        t = type(value)
        if t is int or t is UInt:
            return f"{float(value):.{precision}{kind}}"
        if t is float:
            return _special(value) or f"{value:.{precision}{kind}}"
        if t is str:  # as cel-cpp: the three strings CEL's double() reads without digits
            if value in _SPECIAL_STRINGS:
                return str(value)
            raise EvaluationError('error during formatting: only "NaN", "Infinity", and "-Infinity" are '
                                  f"supported for conversion to double, was given string {value[:40]!r}")
        raise _fail(kind, value)
    return clause


_SPECIAL_STRINGS = frozenset({"NaN", "Infinity", "-Infinity"})


def _binary(value: Any, precision: int) -> str:
    t = type(value)
    if t is bool:
        return "1" if value else "0"
    if t is int or t is UInt:
        return format(int(value), "b")
    raise _fail("b", value)


def _hex(kind: str) -> Clause:
    upper = kind == "X"

    def clause(value: Any, precision: int) -> str:
        t = type(value)
        if t is int or t is UInt:
            return format(int(value), kind)
        text: str
        if t is str:
            try:
                text = value.encode("utf-8").hex()
            except UnicodeEncodeError:
                raise EvaluationError("error during formatting: a string that is not valid Unicode") from None
        elif t is bytes:
            text = value.hex()
        else:
            raise _fail(kind, value)
        return text.upper() if upper else text
    return clause


def _octal(value: Any, precision: int) -> str:
    t = type(value)
    if t is int or t is UInt:
        return format(int(value), "o")
    raise _fail("o", value)


CLAUSES: dict[str, Clause] = {"s": _string, "d": _decimal, "f": _floating("f"), "e": _floating("e"), "b": _binary,
                              "x": _hex("x"), "X": _hex("X"), "o": _octal}

Parsed = tuple[tuple[str, ...], tuple[tuple[str, int], ...], str | None]


def parse(text: str) -> Parsed:
    """Split a format string into its literal segments and its clauses `(kind, precision)`.

    There is one more segment than clauses.  The third item is the error of the clause that
    follows the last one parsed, if the string has one: it surfaces when that clause is reached,
    after the argument it would format has been looked up, as cel-go orders these checks.
    Short strings (format strings, in practice) are parsed once and remembered.
    """
    return _parse_short(text) if len(text) <= 256 else _parse(text)


def _parse(text: str) -> Parsed:
    segments: list[str] = []
    clauses: list[tuple[str, int]] = []
    buf: list[str] = []
    i, n = 0, len(text)
    while i < n:
        j = text.find("%", i)
        if j < 0:
            buf.append(text[i:])
            break
        buf.append(text[i:j])
        i = j
        if i + 1 < n and text[i + 1] == "%":
            buf.append("%")
            i += 2
            continue
        segments.append("".join(buf))
        buf = []
        if i + 1 >= n:
            return tuple(segments), tuple(clauses), "unexpected end of string"
        j = i + 1
        precision = DEFAULT_PRECISION
        if text[j] == ".":
            j += 1
            start = j
            while j < n and text[j] in "0123456789":
                j += 1
            prefix = "could not parse formatting clause: error while parsing precision: "
            if j >= n:
                return tuple(segments), tuple(clauses), prefix + "could not find end of precision specifier"
            digits = text[start:j]
            if not digits:
                return (tuple(segments), tuple(clauses),
                        prefix + 'error while converting precision to integer: strconv.Atoi: parsing "": '
                        "invalid syntax")
            significant = digits.lstrip("0") or "0"
            if len(significant) > 3 or int(significant) > MAX_PRECISION:
                shown = significant if len(significant) <= 30 else significant[:30] + "..."
                return (tuple(segments), tuple(clauses),
                        prefix + f"precision {shown} exceeds maximum allowed precision {MAX_PRECISION}")
            precision = int(significant)
        kind = text[j]
        if kind not in CLAUSES:
            shown = kind if kind.isascii() else chr(kind.encode("utf-8", "surrogatepass")[0])
            return (tuple(segments), tuple(clauses),
                    f'could not parse formatting clause: unrecognized formatting clause "{shown}"')
        clauses.append((kind, precision))
        i = j + 1
    segments.append("".join(buf))
    return tuple(segments), tuple(clauses), None


_parse_short = lru_cache(maxsize=512)(_parse)


def string_format(text: Any, args: Any) -> str:
    """`text.format(args)`."""
    if type(text) is not str or type(args) is not list:
        raise no_overload("format()", text, args)
    segments, clauses, error = parse(text)
    count = len(args)
    out = [segments[0]]
    for i, (kind, precision) in enumerate(clauses):
        if i >= count:
            raise EvaluationError(f"index {i} out of range")
        out.append(CLAUSES[kind](args[i], precision))
        out.append(segments[i + 1])
    if error is not None:
        if len(clauses) >= count:
            raise EvaluationError(f"index {len(clauses)} out of range")
        raise EvaluationError(error)
    result = "".join(out)
    if len(result) > MAX_SIZE:
        raise EvaluationError(f"result longer than {MAX_SIZE} elements")
    return result
