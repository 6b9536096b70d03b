"""Event files (JSON Lines), judged line by line the way the consumer judges records.

Who reads them: `provisioner test --events` (a preview of the ops) and `provisioner dev produce`
(records into a topic). One record per non-blank line:

- an *envelope* is a JSON object that has a `"value"` key and no keys other than `key`, `value`,
  `headers`, `partition`, `offset`, `timestamp`. Its `value` is the record value (`null` makes a
  tombstone), `key` a string (or int, rendered in decimal) or null, `headers` an object of string
  values, `partition` and `offset` non-negative ints, `timestamp` epoch milliseconds or an RFC 3339
  string (`dev produce` leaves the offset to Kafka);
- any other line is the value itself.

A value is sent as it is written in the line (the line, or the text of the envelope's `value`), so
the bytes the consumer receives are the file's, and the verdict on them is the consumer's: each
line is decoded by the consumer's own decoder (`pipeline.process.decode_value`, with its bounds).
A line it refuses is a `decode` dead letter in the preview and a finding for `dev produce`; a bad
envelope field is a finding (`EventLineError`, naming the line). Either way the other lines go on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from provisioner.pipeline.process import decode_failure, decode_value, scan_json
from provisioner.spec.timestamps import to_epoch_ms

__all__ = ["ENVELOPE_KEYS", "EventLine", "EventLineError", "numbered_lines", "parse_line"]

ENVELOPE_KEYS: Final = frozenset({"key", "value", "headers", "partition", "offset", "timestamp"})
_MAX_TIMESTAMP_MS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


class EventLineError(ValueError):
    """A line that cannot be a record: why, and which line."""

    def __init__(self, number: int, message: str) -> None:
        super().__init__(f"line {number}: {message}")
        self.number = number
        self.message = message


@dataclass(frozen=True, slots=True)
class EventLine:
    """One record of an event file. `value` is the record value's bytes (None: a tombstone);
    `refusal` is the consumer's decode verdict on them when it refuses them."""

    number: int
    value: bytes | None
    key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    partition: int | None = None
    offset: int | None = None
    timestamp_ms: int | None = None
    refusal: str | None = None


def numbered_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) for every line of a file's content, `\\r\\n` endings included."""
    for number, line in enumerate(data.split(b"\n"), start=1):
        yield number, line.removesuffix(b"\r")


def parse_line(raw: bytes, number: int, key_field: str | None = None) -> EventLine | None:
    """The record of one line (None for a blank line); EventLineError for a bad envelope field."""
    if not raw.strip():
        return None
    line = raw.strip()
    try:
        data = decode_value(line)
    except ValueError as error:  # NotUtf8 too: the consumer's verdict on these bytes
        return EventLine(number, line, refusal=decode_failure(error))
    if not (isinstance(data, dict) and "value" in data and set(data) <= ENVELOPE_KEYS):
        return EventLine(number, line, key=_key_from_value(data, key_field, number))
    value = data["value"]
    value_text = _member_text(line.decode("utf-8"), "value")
    headers = data.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise EventLineError(number, "headers must be an object of string values")
    for name, header in headers.items():
        _utf8(name, number, "a header name")
        _utf8(header, number, f"header {name!r}")
    key = _render_key(data["key"], number, "key") if "key" in data else _key_from_value(value, key_field, number)
    return EventLine(
        number,
        None if value is None else value_text.encode("utf-8"),
        key=key,
        headers=dict(headers),
        partition=_position(data.get("partition"), number, "partition"),
        offset=_position(data.get("offset"), number, "offset"),
        timestamp_ms=_timestamp_ms(data.get("timestamp"), number),
    )


def _skip(text: str, index: int) -> int:
    """The index of the first non-whitespace character (JSON's whitespace) at or after `index`."""
    while index < len(text) and text[index] in " \t\n\r":
        index += 1
    return index


def _member_text(text: str, name: str) -> str:
    """The text of member `name` in a JSON object `text` that is known to decode (the last one, as
    the decoder keeps the last of repeated names)."""
    found = ""
    index = _skip(text, text.index("{") + 1)
    while text[index] != "}":
        member, index = scan_json(text, index)
        start = _skip(text, _skip(text, index) + 1)  # past the ':'
        _, index = scan_json(text, start)
        if member == name:
            found = text[start:index]
        index = _skip(text, index)
        if text[index] == ",":
            index = _skip(text, index + 1)
    return found


def _render_key(raw: Any, number: int, what: str) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise EventLineError(number, f"{what} must be a string, an int or null")
    return _utf8(str(raw), number, what)


def _utf8(text: str, number: int, what: str) -> str:
    """`text`, which Kafka will carry as UTF-8: a lone surrogate (a `\\ud800` escape) cannot be."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise EventLineError(number, f"{what} holds a lone surrogate, which is not UTF-8") from None
    return text


def _key_from_value(value: Any, key_field: str | None, number: int) -> str | None:
    if key_field is None or not isinstance(value, dict):
        return None
    return _render_key(value.get(key_field), number, f"field {key_field!r} (the key)")


def _position(raw: Any, number: int, what: str) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise EventLineError(number, f"{what} must be a non-negative int")
    return raw


def _timestamp_ms(raw: Any, number: int) -> int | None:
    if raw is None:
        return None
    millis: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        millis = raw
    elif isinstance(raw, str):
        try:
            millis = to_epoch_ms(raw)
        except (ValueError, OverflowError):
            millis = None
    if millis is None or not 0 <= millis <= _MAX_TIMESTAMP_MS:
        raise EventLineError(number, "timestamp must be epoch milliseconds or an RFC 3339 string, "
                                     "between 1970 and 9999")
    return millis
