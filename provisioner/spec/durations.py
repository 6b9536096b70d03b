"""Duration strings of the spec (`24h`, `30s`, `200ms`, `1h30m`), parsed without I/O."""

from __future__ import annotations

import re
from datetime import timedelta

DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_FULL = re.compile(DURATION_PATTERN)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
#: The longest duration: what Python's timedelta holds. Far below Redis's bound for a TTL (the
#: expiry is an absolute Unix time in milliseconds, a signed 64-bit integer: 2^63-1 ms, about
#: 292 million years), so a `ttl` that parses always reaches Redis intact.
MAX_DURATION = timedelta.max


def parse_duration(text: str) -> timedelta:
    """Parse a duration; raises ValueError with the accepted forms when it does not parse."""
    shown = text if len(text) <= 40 else text[:37] + "..."
    if not _FULL.match(text):
        raise ValueError(f"invalid duration {shown!r}: use a number with a unit ms, s, m, h or d, e.g. 30s, 24h")
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(text))
    try:
        if seconds > MAX_DURATION.total_seconds():
            raise OverflowError
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"duration {shown!r} is too long: at most {MAX_DURATION.days} days") from None
