"""Text that must be one JSON value, refused in the project's own words.

A record value (or key, or `jsonschema` payload) that is UTF-8 but not JSON is a `decode` dead
letter. Its message says what the parser expected, what it found and at which byte
(`value is not JSON (expected a value at offset 0, found 'h')`), as `formats.utf8` does for bytes
that are not UTF-8, instead of the interpreter's parser wording (`Expecting value: line 1 column 1
(char 0)`), which counts characters rather than bytes and reads as a Python error. What is found is
written with `ascii()`, so a control byte in a record never reaches a terminal raw.
"""

from __future__ import annotations

import json
from typing import Final

__all__ = ["NotJson", "not_json"]

# The parser's messages (CPython's `json`, C and Python scanners alike) in ours.
_WORDS: Final = {
    "Expecting value": "expected a value",
    "Expecting property name enclosed in double quotes": "expected a property name in double quotes",
    "Expecting ':' delimiter": "expected ':'",
    "Expecting ',' delimiter": "expected ',' or a closing bracket",
    "Unterminated string starting at": "a string that is never closed, opened",
    "Invalid control character at": "a control character not escaped in a string",
    "Invalid \\escape": "an invalid escape in a string",
    "Invalid \\uXXXX escape": "an invalid \\u escape in a string",
    "Extra data": "more data after the value",
    "Illegal trailing comma before end of object": "a comma before the end of an object",
    "Illegal trailing comma before end of array": "a comma before the end of an array",
}
# Messages whose position is the start of a span, where what follows says nothing useful.
_NO_FOUND: Final = frozenset({"Unterminated string starting at"})
# Messages about an escape: what is found is the escape (from its backslash), not one character.
_ESCAPES: Final = frozenset({"Invalid \\escape", "Invalid \\uXXXX escape"})


class NotJson(ValueError):
    """UTF-8 text that is not one JSON value: `str()` is `not JSON (…)`, to follow what it is."""

    def __init__(self, detail: str, offset: int | None = None) -> None:
        super().__init__(f"not JSON ({detail})")
        self.offset = offset


def not_json(error: json.JSONDecodeError) -> NotJson:
    """The NotJson of the parser's error; its offset counted in bytes of the UTF-8 text."""
    text, position = error.doc, error.pos
    found = f"{text[position]!a}" if position < len(text) else "the end"
    if error.msg in _ESCAPES:  # the position is the backslash's, or just after it
        if text[position - 1:position] == "\\" and text[position:position + 1] != "\\":
            position -= 1
        found = f"{text[position:position + (6 if text[position + 1:position + 2] == 'u' else 2)]!a}"
    offset = len(text[:position].encode("utf-8", "surrogatepass"))
    detail = f"{_WORDS.get(error.msg, error.msg[:1].lower() + error.msg[1:])} at offset {offset}"
    return NotJson(detail if error.msg in _NO_FOUND else f"{detail}, found {found}", offset)
