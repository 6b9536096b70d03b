"""RFC 3339 timestamps, read one way everywhere: `startFrom`, `replay --from`, test records, event
files and Postgres `timestamptz` values all go through `parse_rfc3339`.

Strict on purpose: a `T` separator (either case), seconds, and a zone (`Z` or `±HH:MM`) are
required, because a timestamp without a zone means different instants on different machines.
"""

from __future__ import annotations

import re
from datetime import datetime

__all__ = ["RFC3339_PATTERN", "parse_rfc3339", "to_epoch_ms"]

RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
_RFC3339 = re.compile(RFC3339_PATTERN)


def parse_rfc3339(text: str) -> datetime:
    """An aware datetime; ValueError with an example of the expected form otherwise."""
    if not _RFC3339.match(text):
        raise ValueError(f"{text!r} is not an RFC 3339 timestamp (e.g. 2026-01-31T00:00:00Z)")
    try:
        return datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a valid RFC 3339 timestamp (e.g. 2026-01-31T00:00:00Z)") from None


def to_epoch_ms(text: str) -> int:
    """Milliseconds since the epoch, as Kafka timestamps count."""
    return int(parse_rfc3339(text).timestamp() * 1000)
