"""A reader for the subset of the protobuf text format used by cel-spec's simple test files.

A message is a dict from field name to the list of its values (every field may repeat); a
scalar is a `bytes` (quoted strings, decoded by the caller), an int, a float or a bare identifier
(`str`, enum constants and `true`/`false`).  Any/extension names such as
`[type.googleapis.com/google.protobuf.Duration]` are kept as field names, brackets included.
"""

from __future__ import annotations

import re
from typing import Any

Message = dict[str, list[Any]]

_TOKEN = re.compile(
    r"""\s+|\#[^\n]*
    |(?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
    |(?P<ext>\[[A-Za-z_][\w./]*\])
    |(?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)[fFuU]?)
    |(?P<ident>-?[A-Za-z_][A-Za-z0-9_.]*)
    |(?P<punct>[{}<>:,;\[\]])""",
    re.VERBOSE | re.DOTALL,
)
_SIMPLE = {"n": b"\n", "t": b"\t", "r": b"\r", "a": b"\a", "b": b"\b", "f": b"\f", "v": b"\v",
           "\\": b"\\", "'": b"'", '"': b'"', "?": b"?"}


class TextProtoError(ValueError):
    """Malformed input."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise TextProtoError(f"unexpected text at offset {pos}: {text[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind is not None:
            out.append((kind, m.group(kind)))
    return out


def unescape(quoted: str) -> bytes:
    """The bytes of one quoted text-format string (C escapes, octal, hex and \\u)."""
    body = quoted[1:-1]
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            j = body.find("\\", i)
            j = len(body) if j < 0 else j
            out += body[i:j].encode("utf-8")
            i = j
            continue
        e = body[i + 1]
        if e in _SIMPLE:
            out += _SIMPLE[e]
            i += 2
        elif e in "01234567":
            m = re.match(r"[0-7]{1,3}", body[i + 1:])
            assert m is not None
            out.append(int(m.group(), 8) & 0xFF)
            i += 1 + len(m.group())
        elif e in "xX":
            m = re.match(r"[0-9a-fA-F]{1,2}", body[i + 2:])
            if m is None:
                raise TextProtoError(f"bad \\x escape in {quoted!r}")
            out.append(int(m.group(), 16))
            i += 2 + len(m.group())
        elif e in "uU":
            width = 4 if e == "u" else 8
            out += chr(int(body[i + 2:i + 2 + width], 16)).encode("utf-8", "surrogatepass")
            i += 2 + width
        else:
            raise TextProtoError(f"bad escape \\{e} in {quoted!r}")
    return bytes(out)


def _scalar(kind: str, text: str) -> Any:
    if kind == "number":
        t = text.rstrip("fFuU") if not text.lower().startswith(("0x", "-0x", "+0x")) else text
        if t.lower().startswith(("0x", "-0x", "+0x")):
            return int(t, 16)
        if any(ch in t for ch in ".eE"):
            return float(t)
        return int(t)
    if kind == "ident":
        low = text.lower()
        if low in ("inf", "infinity", "-inf", "-infinity", "nan", "-nan"):
            return float(low)
        return text
    raise TextProtoError(f"unexpected {text!r}")


class _Reader:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise TextProtoError("unexpected end of input")
        self.i += 1
        return tok

    def message(self, close: str | None) -> Message:
        msg: Message = {}
        while True:
            tok = self.peek()
            if tok is None:
                if close is not None:
                    raise TextProtoError("unterminated message")
                return msg
            if tok == ("punct", close):
                self.i += 1
                return msg
            if tok[1] in (",", ";"):
                self.i += 1
                continue
            kind, name = self.take()
            if kind not in ("ident", "ext"):
                raise TextProtoError(f"expected a field name, found {name!r}")
            colon = self.peek() == ("punct", ":")
            if colon:
                self.i += 1
            msg.setdefault(name, []).extend(self.values())

    def values(self) -> list[Any]:
        kind, text = self.take()
        if kind == "punct" and text in "{<":
            return [self.message("}" if text == "{" else ">")]
        if kind == "punct" and text == "[":
            items: list[Any] = []
            while self.peek() != ("punct", "]"):
                items.extend(self.values())
                if self.peek() == ("punct", ","):
                    self.i += 1
            self.i += 1
            return items
        if kind == "string":
            data = unescape(text)
            while self.peek() is not None and self.peek()[0] == "string":  # type: ignore[index]
                data += unescape(self.take()[1])
            return [data]
        return [_scalar(kind, text)]


def parse(text: str) -> Message:
    """Parse a whole text-format message."""
    return _Reader(text).message(None)
