"""Field value -> Postgres column conversions, pure (no I/O), used by the Postgres store's `prepare`.

Every value is converted in Python before a batch touches the database, so a value that the server
would refuse never fails a whole transaction: it becomes a stage-`store` dead letter instead. The
result is the value's text in the form Postgres' input functions accept, which the store streams
with COPY (text format); the server then only parses canonical text.

| column type        | accepted                                                   | refused                  |
|--------------------|------------------------------------------------------------|--------------------------|
| `text`             | anything, encoded as spec.md says (`encode_value`)         | NUL, lone surrogates     |
| `integer`,`bigint` | an int in range (32/64-bit); a float without fraction      | bools, fractions,        |
|                    | (150.0); a string of digits with an optional sign ("-7")   | out of range             |
| `double precision` | an int or a finite float; a decimal number string ("2e3")  | bools, NaN, infinities   |
| `numeric`          | an int; a finite float as its shortest repr (0.1 stays     | bools, NaN, infinities   |
|                    | 0.1); a decimal number string ("19.90" keeps its scale)    |                          |
| `boolean`          | a bool; the strings "true"/"false" (any case)              | 0/1, "yes", "t", ...     |
| `jsonb`            | any value (a string becomes a JSON string), compact        | NaN, infinities, NUL     |
| `timestamptz`      | a datetime (naive = UTC); an RFC 3339 string with offset   | no offset, invalid dates |
|                    | ("2026-01-31T12:00:00Z"; beyond µs is truncated)           |                          |
| `date`             | "YYYY-MM-DD"; a date; a datetime (its UTC calendar date)   | any other string         |
| `uuid`             | 32 hex digits, all with or all without the 4 hyphens       | anything else            |

Null converts to NULL for every type. Numbers are never taken from bools (`true` is not 1).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from provisioner.pipeline.encoding import Unencodable, encode_value, format_timestamp, to_json
from provisioner.spec.models import ColumnType
from provisioner.spec.timestamps import RFC3339_PATTERN


class ConversionError(ValueError):
    """A value does not convert to a column type; the message says why, without the field name."""


Converter = Callable[[Any], str | None]

_INT_TEXT: Final = re.compile(r"^[+-]?[0-9]{1,20}$")
_NUMBER_TEXT: Final = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,6})?$")
_RFC3339: Final = re.compile(RFC3339_PATTERN)
_DATE_TEXT: Final = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_UUID_TEXT: Final = re.compile(
    r"^[0-9a-fA-F]{8}(-?)[0-9a-fA-F]{4}\1[0-9a-fA-F]{4}\1[0-9a-fA-F]{4}\1[0-9a-fA-F]{12}$"
)
_INT4: Final = (-(2**31), 2**31 - 1)
_INT8: Final = (-(2**63), 2**63 - 1)
# Postgres numeric holds up to 131072 digits before the point and 16383 after it.
_NUMERIC_MAX_INTEGER_DIGITS: Final = 131072
_NUMERIC_MAX_SCALE: Final = 16383
_MAX_SHOWN = 60
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _shown(value: Any) -> str:
    """The value as it appears in a dead-letter message: JSON-like, shortened."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except RecursionError:
        return f"a deeply nested {'array' if isinstance(value, list) else 'object'}"
    except ValueError:
        text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _check_text(text: str, value: Any) -> str:
    # Postgres text cannot hold U+0000, and lone surrogates (possible from JSON "\ud800" escapes)
    # are not UTF-8: either would make the server refuse the whole batch.
    if "\x00" in text:
        raise ConversionError(f"{_shown(value)} contains a NUL character, which Postgres cannot store")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ConversionError(f"{_shown(value)} contains a lone surrogate, not valid UTF-8") from None
    return text


def to_text(value: Any) -> str | None:
    if value is None:
        return None
    try:
        text = encode_value(value)
    except Unencodable as error:
        raise ConversionError(f"{_shown(value)}: {error}") from None
    return None if text is None else _check_text(text, value)


def _integer(bounds: tuple[int, int], name: str) -> Converter:
    low, high = bounds

    def convert(value: Any) -> str | None:
        if value is None:
            return None
        number: int
        if isinstance(value, bool):
            raise ConversionError(f"{_shown(value)} is not a valid {name}")
        if isinstance(value, int):
            number = value
        elif isinstance(value, float):
            if not math.isfinite(value) or not value.is_integer():
                raise ConversionError(f"{_shown(value)} is not a valid {name}")
            number = int(value)
        elif isinstance(value, str) and _INT_TEXT.match(value):
            number = int(value)
        else:
            raise ConversionError(f"{_shown(value)} is not a valid {name}")
        if not low <= number <= high:
            raise ConversionError(f"{_shown(value)} is out of range for {name}")
        return str(number)

    return convert


to_integer = _integer(_INT4, "integer")
to_bigint = _integer(_INT8, "bigint")


def to_double(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConversionError(f"{_shown(value)} is not a valid double precision")
    try:
        if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER_TEXT.match(value)):
            number = float(value)
        else:
            raise ConversionError(f"{_shown(value)} is not a valid double precision")
    except OverflowError:
        raise ConversionError(f"{_shown(value)} is out of range for double precision") from None
    if not math.isfinite(number):
        raise ConversionError(f"{_shown(value)} is not a finite double precision")
    # -0.0 equals 0.0 in Postgres; one text for both keeps equal keys equal within a batch.
    return repr(number) if number != 0 else "0.0"


def to_numeric(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConversionError(f"{_shown(value)} is not a valid numeric")
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ConversionError(f"{_shown(value)} is not a finite numeric")
        # repr is the shortest text that round-trips: 0.1 stays 0.1, not its binary expansion.
        number = Decimal(repr(value))
    elif isinstance(value, str) and _NUMBER_TEXT.match(value):
        try:
            number = Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern only admits valid numbers
            raise ConversionError(f"{_shown(value)} is not a valid numeric") from None
    else:
        raise ConversionError(f"{_shown(value)} is not a valid numeric")
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)  # finite by construction
    if number.adjusted() >= _NUMERIC_MAX_INTEGER_DIGITS or -exponent > _NUMERIC_MAX_SCALE:
        raise ConversionError(f"{_shown(value)} is out of range for numeric")
    # Plain notation: Postgres limits exponents in numeric input, never plain digits.
    return format(number, "f")


def to_boolean(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower()
    raise ConversionError(f"{_shown(value)} is not a valid boolean (true or false)")


def to_jsonb(value: Any) -> str | None:
    if value is None:
        return None
    try:
        text = to_json(value, allow_nan=False)
    except Unencodable as error:
        raise ConversionError(f"{_shown(value)} is not valid JSON: {error}") from None
    except ValueError:
        raise ConversionError(f"{_shown(value)} is not valid JSON (NaN or infinity)") from None
    # jsonb refuses the \u0000 escape; only a real NUL in some string makes json.dumps write it.
    if "\\u0000" in text and _has_nul(value):
        raise ConversionError(f"{_shown(value)} contains a NUL character, which jsonb cannot store")
    return _check_text(text, value)


def _has_nul(value: Any) -> bool:
    """Whether any string in `value` (keys included) holds a NUL; iterative, for any depth."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


# The common case, a UTC timestamp with at most microseconds ("2026-01-31T12:00:00.276Z"), whose
# canonical text is built from its parts: the same text as the general path below gives (the unit
# tests hold the two together) at a third of the cost. The time of day is checked by the pattern,
# the calendar date once per distinct date (a batch's timestamps share a few).
_UTC_TEXT: Final = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.([0-9]{1,6}))?[Zz]\Z"
)
# The same, as Postgres reads it without a rewrite: upper-case T and Z (see `utc_text`).
_UTC_INPUT: Final = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?Z\Z"
)
_VALID_DATES: dict[str, bool] = {}
_VALID_DATES_MAX = 4096


def _valid_date(text: str) -> bool:
    known = _VALID_DATES.get(text)
    if known is None:
        try:
            known = date.fromisoformat(text).year >= 1
        except ValueError:
            known = False
        if len(_VALID_DATES) >= _VALID_DATES_MAX:
            _VALID_DATES.clear()
        _VALID_DATES[text] = known
    return known


def utc_text(value: Any) -> bool:
    """Whether `value` is a valid UTC timestamp text that Postgres reads as `to_timestamptz(value)`
    means it, as it is: a non-key timestamptz column can take it without a rewrite."""
    if type(value) is not str:
        return False
    utc = _UTC_INPUT.match(value)
    return utc is not None and _valid_date(utc.group(1))


def to_timestamptz(value: Any) -> str | None:
    if type(value) is str:
        utc = _UTC_TEXT.match(value)
        if utc is not None and _valid_date(utc.group(1)):
            fraction = utc.group(2)
            head = f"{utc.group(1)}T{value[11:19]}"
            if fraction is None or fraction.count("0") == len(fraction):
                return head + "+00:00"
            return f"{head}.{fraction:0<6}+00:00"
    return _to_timestamptz(value)


def _to_timestamptz(value: Any) -> str | None:
    if value is None:
        return None
    moment: datetime
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and _RFC3339.match(value if value[10:11] != " " else value.replace(" ", "T", 1)):
        # The rules of `spec.timestamps.parse_rfc3339` (its pattern, then fromisoformat), inlined:
        # this runs for every timestamptz value, and the call plus its `Z` rewrite (which Python's
        # fromisoformat does not need) measured 10-20% slower per value. RFC 3339 lets a space
        # stand for the `T` (its section 5.6), so one is accepted here as before.
        try:
            moment = datetime.fromisoformat(value.upper())
        except ValueError:
            raise ConversionError(f"{_shown(value)} is not a valid timestamptz") from None
    else:
        raise ConversionError(
            f"{_shown(value)} is not a valid timestamptz (an RFC 3339 timestamp, e.g. 2026-01-31T12:00:00Z)"
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # One canonical text per instant (UTC), so equal key values coalesce within a batch.
    try:
        return moment.astimezone(UTC).isoformat()
    except OverflowError:
        raise ConversionError(f"{_shown(value)} is out of range for timestamptz") from None


def to_date(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and _DATE_TEXT.match(value):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise ConversionError(f"{_shown(value)} is not a valid date (YYYY-MM-DD)")


def to_uuid(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str) and _UUID_TEXT.match(value):
        return str(uuid.UUID(value))
    raise ConversionError(f"{_shown(value)} is not a valid uuid")


CONVERTERS: Final[dict[str, Converter]] = {
    "text": to_text,
    "integer": to_integer,
    "bigint": to_bigint,
    "double precision": to_double,
    "numeric": to_numeric,
    "boolean": to_boolean,
    "jsonb": to_jsonb,
    "timestamptz": to_timestamptz,
    "date": to_date,
    "uuid": to_uuid,
}


def converter(column_type: ColumnType) -> Converter:
    """The conversion function for a column type of the spec."""
    return CONVERTERS[column_type]


def convert(column_type: ColumnType, value: Any) -> str | None:
    """Convert one value to the Postgres text input of `column_type`; raises ConversionError."""
    return CONVERTERS[column_type](value)


def timestamp_text(timestamp_ms: int) -> str | None:
    """The `_timestamp` of an append-mode row: the record's time, NULL when Kafka has none (-1)."""
    if timestamp_ms < 0:
        return None
    try:
        return format_timestamp(_EPOCH + timedelta(milliseconds=timestamp_ms))
    except OverflowError:
        return None
