"""Duration strings of the spec (`24h`, `30s`, `200ms`, `1h30m`), parsed without I/O."""

from __future__ import annotations

import re
from datetime import timedelta

DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_FULL = re.compile(DURATION_PATTERN)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> timedelta:
    """Parse a duration; raises ValueError with the accepted forms when it does not parse."""
    if not _FULL.match(text):
        raise ValueError(f"invalid duration {text!r}: use a number with a unit ms, s, m, h or d, e.g. 30s, 24h")
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(text))
    return timedelta(seconds=seconds)
