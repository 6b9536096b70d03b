"""`spec.order` values read without evaluating the expression, for the common forms whose result
is known: `record.offset` (the log's own order) and `timestamp(event.a.b)` over RFC 3339 text in
UTC (`...THH:MM:SS[.fraction]Z`). The order value is an int (`ordering.py`), so these forms need
neither a `record` dict nor a Timestamp object per op: a third of the consumer's CPU per record
with `timestamp(event.ts)`.

A shortcut returns the order value, or None whenever it cannot tell (a missing field, a value
that is not text, any other text form); the caller then evaluates the expression, which gives the
same value or the dead letter it always gave. So a shortcut only ever agrees with the evaluation
(tests/unit/test_order_reading.py holds them to that).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from provisioner.expr import ast
from provisioner.expr.errors import ExpressionError
from provisioner.expr.parser import parse

# (event, record) -> the order value, or None: evaluate the expression instead.
OrderReader = Callable[[Any, Any], int | None]

_NS: Final = 10**9
_DAY_ORDINAL_1970: Final = datetime(1970, 1, 1).toordinal()
_FRACTION_SCALE: Final[tuple[int, ...]] = tuple(10 ** (9 - digits) for digits in range(10))  # ns per unit of n digits
_MINUTES_KEPT: Final = 4096
# The epoch second of each `YYYY-MM-DDTHH:MM` seen (events of a stream mostly share their minutes).
_minute_seconds: dict[str, int] = {}


def order_reader(source: str) -> OrderReader | None:
    """The shortcut of the order expression `source`, or None when it has none."""
    try:
        node = parse(source)
    except (ExpressionError, RecursionError):  # refused by the spec's validation; no shortcut then
        return None
    if _is_record_offset(node):
        return _record_offset
    if isinstance(node, ast.Call) and node.name == "timestamp" and node.target is None and len(node.args) == 1:
        path = _event_path(node.args[0])
        if path is not None:
            return _timestamp_of_text(path)
    return None


def _is_record_offset(node: ast.Node) -> bool:
    return (isinstance(node, ast.Select) and not node.optional and node.field == "offset"
            and isinstance(node.operand, ast.Ident) and node.operand.name == "record")


def _record_offset(event: Any, record: Any) -> int:
    offset: int = record.offset
    return offset


def _event_path(node: ast.Node) -> tuple[str, ...] | None:
    """The field names of `event.a.b...` (plain selections of the event), or None."""
    fields: list[str] = []
    while isinstance(node, ast.Select) and not node.optional:
        fields.append(node.field)
        node = node.operand
    if not fields or not isinstance(node, ast.Ident) or node.name != "event":
        return None
    return tuple(reversed(fields))


def _timestamp_of_text(path: tuple[str, ...]) -> OrderReader:
    if len(path) == 1:
        (name,) = path

        def read_one(event: Any, record: Any) -> int | None:
            if type(event) is not dict:
                return None
            text = event.get(name)
            return utc_text_ns(text) if type(text) is str else None

        return read_one

    def read(event: Any, record: Any) -> int | None:
        value = event
        for name in path:
            if type(value) is not dict:
                return None
            value = value.get(name)
        return utc_text_ns(value) if type(value) is str else None

    return read


def utc_text_ns(text: str) -> int | None:
    """Nanoseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (a valid date and time,
    1 to 9 fraction digits, T and Z in either case), what CEL's `timestamp(text)` gives; None for
    any other text (other forms, offsets, invalid dates and times)."""
    if len(text) < 20 or text[16] != ":":
        return None
    minute = _minute_seconds.get(text[:16])
    if minute is None:
        minute = _minute_of(text[:16])
        if minute is None:
            return None
    second = text[17:19]
    if not (second.isdigit() and second.isascii()) or second > "59":
        return None
    ns = (minute + int(second)) * _NS
    tail = text[19:]
    if tail in {"Z", "z"}:
        return ns
    fraction = tail[1:-1]
    if (tail[0] != "." or tail[-1] not in "Zz" or not 0 < len(fraction) <= 9
            or not (fraction.isdigit() and fraction.isascii())):
        return None
    return ns + int(fraction) * _FRACTION_SCALE[len(fraction)]


def _minute_of(text: str) -> int | None:
    """The epoch second of `YYYY-MM-DDTHH:MM` (a valid date, hour and minute), kept; None otherwise."""
    digits = text[:4] + text[5:7] + text[8:10] + text[11:13] + text[14:]
    if (text[4] != "-" or text[7] != "-" or text[10] not in "Tt" or text[13] != ":" or len(digits) != 12
            or not (digits.isdigit() and digits.isascii())):
        return None
    hours, minutes = int(digits[8:10]), int(digits[10:])
    if hours > 23 or minutes > 59:
        return None
    try:
        day = datetime(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None
    seconds = (day.toordinal() - _DAY_ORDINAL_1970) * 86400 + hours * 3600 + minutes * 60
    if len(_minute_seconds) >= _MINUTES_KEPT:
        _minute_seconds.clear()
    _minute_seconds[text] = seconds
    return seconds
