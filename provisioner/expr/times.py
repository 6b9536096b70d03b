"""CEL timestamps and durations with nanosecond precision.

`Timestamp` is a UTC `datetime` and `Duration` a `timedelta` (so code outside the engine can use
them as such), each carrying its exact value in nanoseconds in `ns`, which every CEL operation
uses.  Timestamps range over 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z and durations
over ±315,576,000,000.999999999 seconds (10,000 years), as cel-spec defines them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import EvaluationError

_US = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NS = 1_000_000_000
MIN_TIMESTAMP_NS = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _US * 1000
MAX_TIMESTAMP_NS = (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - _EPOCH) // _US * 1000 + NS - 1
MAX_DURATION_NS = 315_576_000_000 * NS + NS - 1


def _ns_of(value: Any) -> int:
    if isinstance(value, Timestamp | Duration):
        return value.ns
    if isinstance(value, datetime):
        return datetime_ns(value)
    if isinstance(value, timedelta):
        return value // _US * 1000
    raise TypeError(f"not a time value: {value!r}")


class _ExactNs:
    """Equality, order and hash by the exact `ns`, against any value of the same base type
    (`_base`): the datetime and timedelta parts are only floored to the microsecond."""

    __slots__ = ()
    ns: int
    _base: type

    def __eq__(self, other: object) -> bool:
        if isinstance(other, self._base):
            return self.ns == _ns_of(other)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        if isinstance(other, self._base):
            return self.ns != _ns_of(other)
        return NotImplemented

    def __lt__(self, other: Any) -> bool:
        return self.ns < _ns_of(other)

    def __le__(self, other: Any) -> bool:
        return self.ns <= _ns_of(other)

    def __gt__(self, other: Any) -> bool:
        return self.ns > _ns_of(other)

    def __ge__(self, other: Any) -> bool:
        return self.ns >= _ns_of(other)

    def __hash__(self) -> int:
        return hash(self.ns)

    def __reduce_ex__(self, protocol: Any) -> Any:
        return self.__reduce__()  # datetime's own __reduce_ex__ would drop `ns`

    def __copy__(self) -> Any:
        return self

    def __deepcopy__(self, memo: Any) -> Any:
        return self


class Timestamp(_ExactNs, datetime):
    """A CEL timestamp: the UTC datetime (to the microsecond) and `ns` since the epoch."""

    __slots__ = ("ns",)
    _base = datetime

    def __repr__(self) -> str:
        return f"Timestamp({format_timestamp(self)!r})"

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        return timestamp_ns, (self.ns,)


class Duration(_ExactNs, timedelta):
    """A CEL duration: the timedelta (floored to the microsecond) and its exact `ns`."""

    __slots__ = ("ns",)
    _base = timedelta

    def __repr__(self) -> str:
        return f"Duration({format_duration(self)!r})"

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        return duration_ns, (self.ns,)


def datetime_ns(value: datetime) -> int:
    """Nanoseconds since the epoch of a datetime (naive ones are UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _US * 1000


# A Timestamp is made in one call from datetime's own 10-byte state (the form pickle uses: year,
# month, day, hour, minute, second, microsecond), whose leading seven bytes are kept per second
# (events of a stream mostly share their seconds): a third of the cost of building it from fields.
_SECONDS_KEPT = 4096
_second_states: dict[int, int] = {}


def second_state(second: int) -> int:
    """datetime's state of the second `second` after the epoch, as an integer, microseconds 0."""
    state = _second_states.get(second)
    if state is None:
        moment = _EPOCH + timedelta(seconds=second)
        state = int.from_bytes(bytes((moment.year >> 8, moment.year & 0xFF, moment.month, moment.day,
                                      moment.hour, moment.minute, moment.second, 0, 0, 0)), "big")
        if len(_second_states) >= _SECONDS_KEPT:
            _second_states.clear()
        _second_states[second] = state
    return state


def timestamp_of_state(state: int, ns: int) -> Timestamp:
    """The Timestamp of datetime's state `state` (as `second_state` gives it, plus the
    microseconds) and its exact `ns`."""
    ts: Timestamp = Timestamp(state.to_bytes(10, "big"), UTC)  # type: ignore[arg-type, call-arg]
    ts.ns = ns
    return ts


def timestamp_ns(ns: int) -> Timestamp:
    """The Timestamp `ns` nanoseconds after the epoch; an error out of CEL's range."""
    if not MIN_TIMESTAMP_NS <= ns <= MAX_TIMESTAMP_NS:
        raise EvaluationError("timestamp out of range")
    second, nanos = divmod(ns, NS)
    return timestamp_of_state(second_state(second) | nanos // 1000, ns)


def duration_ns(ns: int) -> Duration:
    """The Duration of `ns` nanoseconds; an error out of CEL's range."""
    if not -MAX_DURATION_NS <= ns <= MAX_DURATION_NS:
        raise EvaluationError("duration out of range")
    d = Duration(microseconds=ns // 1000)
    d.ns = ns
    return d


def make_timestamp(seconds: int, nanos: int = 0) -> Timestamp:
    return timestamp_ns(seconds * NS + nanos)


def make_duration(seconds: int, nanos: int = 0) -> Duration:
    return duration_ns(seconds * NS + nanos)


def as_timestamp(value: datetime) -> Timestamp:
    """A plain datetime (such as `record.timestamp`) as a Timestamp."""
    if type(value) is Timestamp:
        return value
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        elif value.utcoffset():
            return timestamp_ns(datetime_ns(value))
    ts = Timestamp(value.year, value.month, value.day, value.hour, value.minute, value.second,
                   value.microsecond, UTC)
    ts.ns = (value - _EPOCH) // _US * 1000
    return ts


def as_duration(value: timedelta) -> Duration:
    if type(value) is Duration:
        return value
    return duration_ns(value // _US * 1000)


# --- text forms --------------------------------------------------------------------------------

_TIMESTAMP_TEXT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))\Z")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1000, "µs": 1000, "μs": 1000, "ms": 10**6, "s": NS, "m": 60 * NS,
            "h": 3600 * NS}


# The epoch second of a validated `YYYY-MM-DDTHH:MM:SS` (as written, before any UTC offset), kept
# per text: a stream's timestamps mostly share their seconds, and the common `…[.fraction]Z` form
# then parses without the pattern or a datetime.
_second_of_text: dict[str, int] = {}


def parse_timestamp(text: str) -> Timestamp:
    """The Timestamp of RFC 3339 text (cel-spec's `timestamp(string)`)."""
    second = _second_of_text.get(text[:19])
    if second is not None:
        rest = text[19:]
        if rest in ("Z", "z"):
            return timestamp_ns(second * NS)
        digits = rest[1:-1]
        if (rest[:1] == "." and rest[-1:] in ("Z", "z") and 0 < len(digits) <= 9 and digits.isascii()
                and digits.isdigit()):
            return timestamp_ns(second * NS + int(digits) * 10 ** (9 - len(digits)))
    return _parse_timestamp(text)


def _parse_timestamp(text: str) -> Timestamp:
    m = _TIMESTAMP_TEXT.match(text)
    if m is None:
        raise EvaluationError(f"timestamp() cannot parse {text!r} (expected RFC 3339)")
    offset = timedelta(0)
    if not m.group(8):
        hours, minutes = int(m.group(10)), int(m.group(11))
        if hours > 23 or minutes > 59:
            raise EvaluationError(f"timestamp() cannot parse {text!r}: bad offset")
        offset = timedelta(hours=hours, minutes=minutes)
        if m.group(9) == "-":
            offset = -offset
    try:
        local = datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)),
                         int(m.group(5)), int(m.group(6)), tzinfo=UTC)
    except ValueError as exc:
        raise EvaluationError(f"timestamp() cannot parse {text!r}: {exc}") from None
    frac = int((m.group(7) or "").ljust(9, "0"))
    local_ns = datetime_ns(local)
    if len(_second_of_text) >= _SECONDS_KEPT:
        _second_of_text.clear()
    _second_of_text[text[:19]] = local_ns // NS
    return timestamp_ns(local_ns - offset // _US * 1000 + frac)


def parse_duration(text: str) -> Duration:
    body = text
    sign = 1
    if body[:1] in ("+", "-"):
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    total = 0
    if body != "0":
        pos = 0
        while pos < len(body) or pos == 0:
            m = _DURATION_PART.match(body, pos)
            if m is None:
                raise EvaluationError(f"duration() cannot parse {text!r}")
            whole, _, frac = m.group(1).partition(".")
            unit = _UNIT_NS[m.group(2)]
            total += int(whole or "0") * unit
            if frac:
                total += int(frac) * unit // 10 ** len(frac)
            pos = m.end()
            if total > MAX_DURATION_NS:
                raise EvaluationError("duration out of range")
    return duration_ns(sign * total)


_SECONDS_TEXT_KEPT = 4096
_seconds_text: dict[int, str] = {}


def format_timestamp(ts: Timestamp) -> str:
    """RFC 3339 in UTC with a `Z`, the fraction of the second without trailing zeros. The text up
    to the second is kept per second (a stream's timestamps mostly share theirs): a third of the cost."""
    second, nanos = divmod(ts.ns, NS)
    text = _seconds_text.get(second)
    if text is None:
        if len(_seconds_text) >= _SECONDS_TEXT_KEPT:
            _seconds_text.clear()
        text = _seconds_text[second] = (f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d}T{ts.hour:02d}:"
                                        f"{ts.minute:02d}:{ts.second:02d}")
    if not nanos:
        return text + "Z"
    if nanos % 1_000_000 == 0:
        return f"{text}.{nanos // 1_000_000:03d}".rstrip("0") + "Z"
    return f"{text}.{nanos:09d}".rstrip("0") + "Z"


def format_duration(d: Duration) -> str:
    """Seconds with an `s`, the fraction in groups of 3 digits (the protobuf JSON form)."""
    ns = d.ns
    sign = "-" if ns < 0 else ""
    seconds, nanos = divmod(abs(ns), NS)
    if nanos == 0:
        frac = ""
    elif nanos % 1_000_000 == 0:
        frac = f".{nanos // 1_000_000:03d}"
    elif nanos % 1000 == 0:
        frac = f".{nanos // 1000:06d}"
    else:
        frac = f".{nanos:09d}"
    return f"{sign}{seconds}{frac}s"


# --- accessors ---------------------------------------------------------------------------------

_OFFSET = re.compile(r"([+-]?)([0-9]{2}):([0-9]{2})\Z")


@lru_cache(maxsize=256)
def zone(name: str) -> tzinfo:
    """A time zone argument: an IANA name (`America/New_York`, `UTC`) or an offset `[+-]HH:MM`."""
    m = _OFFSET.match(name)
    if m is not None:
        hours, minutes = int(m.group(2)), int(m.group(3))
        if hours > 23 or minutes > 59:
            raise EvaluationError(f"invalid time zone {name!r}")
        offset = timedelta(hours=hours, minutes=minutes)
        return timezone(-offset if m.group(1) == "-" else offset)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise EvaluationError(f"invalid time zone {name!r}") from None


def local_time(ts: Timestamp, tz: str | None) -> datetime:
    if tz is None:
        return ts
    try:
        return ts.astimezone(zone(tz))
    except OverflowError:
        raise EvaluationError("timestamp out of range in that time zone") from None


_TIMESTAMP_FIELDS = {
    "getFullYear": lambda t: t.year,
    "getMonth": lambda t: t.month - 1,
    "getDayOfMonth": lambda t: t.day - 1,
    "getDate": lambda t: t.day,
    "getDayOfWeek": lambda t: (t.weekday() + 1) % 7,
    "getDayOfYear": lambda t: t.timetuple().tm_yday - 1,
    "getHours": lambda t: t.hour,
    "getMinutes": lambda t: t.minute,
    "getSeconds": lambda t: t.second,
}


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // b
    return q if a >= 0 else -q


def timestamp_field(name: str, ts: Timestamp, tz: str | None) -> int:
    if name == "getMilliseconds":
        return ts.ns % NS // 1_000_000
    return int(_TIMESTAMP_FIELDS[name](local_time(ts, tz)))


def duration_field(name: str, d: Duration) -> int:
    ns = d.ns
    if name == "getHours":
        return _trunc_div(ns, 3600 * NS)
    if name == "getMinutes":
        return _trunc_div(ns, 60 * NS)
    if name == "getSeconds":
        return _trunc_div(ns, NS)
    # the milliseconds component of the protobuf Duration (its nanos carry the sign)
    return _trunc_div(ns - _trunc_div(ns, NS) * NS, 1_000_000)


TIMESTAMP_GETTERS = frozenset({*_TIMESTAMP_FIELDS, "getMilliseconds"})
DURATION_GETTERS = frozenset({"getHours", "getMinutes", "getSeconds", "getMilliseconds"})
