"""Value encoding shared by Redis hash fields and Postgres text columns (spec.md, "Stores").

Strings as they are; ints in decimal; doubles as JSON numbers; bools `true`/`false`; maps and lists
as compact JSON; null is `None` (absent hash field, SQL NULL). CEL-only values (timestamps,
durations, bytes) get the text CEL's `string()` gives them: RFC 3339 with a `Z`, seconds with an
`s`, to the nanosecond; bytes as base64.

`encode_value` is the one general encoder. The stores' per-row loops may inline a shortcut for the
common scalar types (Redis hashes, Postgres text columns) and call it for everything else; a
property test checks that every such shortcut agrees with it. `to_json` with `json_default` is the
one compact JSON writer (Redis `json` structure, `jsonb` columns).
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from typing import Any

from provisioner.expr import times


def json_default(value: Any) -> Any:
    """`json.dumps`' `default`: the text of a CEL-only value; TypeError for anything else."""
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


class Unencodable(ValueError):
    """A value no store can encode: nested too deeply for the encoder (it would overflow the
    interpreter's stack), or a CEL value with no text (a type, an optional)."""


def to_json(value: Any, *, allow_nan: bool = True) -> str:
    """Compact JSON of a row value (maps, lists, or a whole row). With `allow_nan` False a NaN or
    infinity raises ValueError instead of becoming JSON that strict readers refuse; a value that
    cannot be encoded raises Unencodable (a ValueError), never RecursionError or TypeError."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=allow_nan,
                          default=json_default)
    except RecursionError:
        raise Unencodable("the value is nested too deeply to encode") from None
    except TypeError as error:
        raise Unencodable(str(error)) from None


def encode_value(value: Any) -> str | None:
    """The text form of one field value, or None for null."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | dict | list):
        return to_json(value)
    if isinstance(value, datetime | timedelta | bytes):
        return str(json_default(value))  # the same text as inside a JSON value
    return to_json(value)


def format_timestamp(value: datetime) -> str:
    """What CEL's `string()` gives: RFC 3339 in UTC with a `Z`, the fraction of the second to the
    nanosecond without trailing zeros."""
    return times.format_timestamp(times.as_timestamp(value))


def format_duration(value: timedelta) -> str:
    """What CEL's `string()` gives: seconds with an `s` (`90s`, `1.500s`), to the nanosecond."""
    return times.format_duration(times.as_duration(value))
