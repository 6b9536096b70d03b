"""Bytes that must be UTF-8 text, refused in the project's own words.

A record value, a key or a string inside an Avro value that is not UTF-8 is a `decode` dead letter;
its message names the first byte that breaks the encoding and where it is (`value is not UTF-8
(byte 0xff at offset 1)`), the same in `provisioner test`, `deadletters` and `explain`, instead of
the interpreter's codec wording.
"""

from __future__ import annotations

__all__ = ["NotUtf8", "not_utf8", "utf8_text"]


class NotUtf8(ValueError):
    """Bytes that do not decode as UTF-8: `str()` is `not UTF-8 (byte 0xff at offset 1)`, to follow
    what they are (`value is …`, `key is …`)."""

    def __init__(self, byte: int, offset: int) -> None:
        super().__init__(f"not UTF-8 (byte 0x{byte:02x} at offset {offset})")
        self.byte = byte
        self.offset = offset


def not_utf8(error: UnicodeDecodeError, start: int = 0) -> NotUtf8:
    """The NotUtf8 of a codec error; `start` is where the decoded bytes begin in the whole that
    the offset should count from."""
    return NotUtf8(error.object[error.start], start + error.start)


def utf8_text(data: bytes) -> str:
    """`data` as text; NotUtf8 when it is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise not_utf8(error) from None
