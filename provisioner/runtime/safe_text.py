"""Show bytes and text from a topic safely: whatever a producer wrote, it must not break a terminal.

Who calls it: `provisioner deadletters` and `provisioner explain`, for values, keys, headers and
messages. Control characters (an ANSI escape starts with ESC), format characters (bidirectional
overrides) and lone surrogates are escaped, never printed; bytes that are not UTF-8 are shown as
`<binary 1.2 KB: 89504e47…>`; long values are cut before any work is done on them, so a 1 MB value
costs as little as a short one.
"""

from __future__ import annotations

import unicodedata
from typing import Final

__all__ = ["DEFAULT_LIMIT", "human_size", "preview_bytes", "safe_text"]

DEFAULT_LIMIT: Final = 200
_HEX_BYTES: Final = 8
# Characters printed as they are without a look-up: printable ASCII.
_PLAIN: Final = frozenset(chr(c) for c in range(0x20, 0x7F))


def human_size(size: int) -> str:
    """`512 B`, `1.2 KB`, `1.0 MB` (powers of 1024)."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def _escape(char: str) -> str:
    if char == "\n":
        return "\\n"
    if char == "\t":
        return "\\t"
    if char == "\r":
        return "\\r"
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _shown(char: str) -> str:
    if char in _PLAIN:
        return char
    # Cc: control (ESC, NUL, DEL, C1), Cf: format (bidi overrides, zero-width), Cs: lone surrogate,
    # Co/Cn: private use and unassigned, Zl/Zp: line and paragraph separators.
    if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
        return _escape(char)
    return char


def safe_text(text: str, limit: int = DEFAULT_LIMIT) -> str:
    """`text` with every character that could act on a terminal escaped, cut to `limit` characters
    (`… (N more characters)` says what was left out)."""
    cut = text[:limit]
    shown = "".join(map(_shown, cut))
    if len(text) > limit:
        shown += f"… ({len(text) - limit} more characters)"
    return shown


def preview_bytes(value: bytes | None, limit: int = DEFAULT_LIMIT) -> str:
    """A record value or key for a person: `<null>` for none, UTF-8 text made safe and cut to
    `limit` characters (the size said when cut), or `<binary SIZE: first bytes in hex…>`."""
    if value is None:
        return "<null>"
    size = len(value)
    # Decode only what can be shown (4 bytes a character at most), then drop a character cut in half.
    head = value[: limit * 4 + 4]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        if size > len(head) and error.start >= len(head) - 3 and error.reason == "unexpected end of data":
            text = head[: error.start].decode("utf-8")
        else:
            return f"<binary {human_size(size)}: {value[:_HEX_BYTES].hex()}{'…' if size > _HEX_BYTES else ''}>"
    if len(text) <= limit and size == len(head):
        return safe_text(text, limit)
    return safe_text(text[:limit], limit) + f"… ({human_size(size)} in all)"
