"""Value encoding shared by Redis hash fields and Postgres text columns (spec.md, "Stores").

Strings as they are; ints in decimal; doubles as JSON numbers; bools `true`/`false`; maps and lists
as compact JSON; null is `None` (absent hash field, SQL NULL). CEL-only values (timestamps,
durations, bytes) get the text a user would expect: RFC 3339, seconds with an `s`, base64.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from typing import Any


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot encode {type(value).__name__}")


def to_json(value: Any) -> str:
    """Compact JSON of a row value (maps, lists, or a whole row)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)


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
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return to_json(value)


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, microseconds only when present."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def format_duration(value: timedelta) -> str:
    """CEL's text form of a duration: seconds with an `s` suffix."""
    seconds = value.total_seconds()
    return f"{int(seconds)}s" if seconds == int(seconds) else f"{seconds}s"
