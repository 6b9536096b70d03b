"""Tokenizer for CEL source text, following the cel-spec lexical grammar."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import error_at

PUNCTUATION = ("==", "!=", "<=", ">=", "&&", "||", "<", ">", "+", "-", "*", "/", "%", "!", "?", ":",
               ".", ",", "(", ")", "[", "]", "{", "}")
KEYWORDS = frozenset({"true", "false", "null", "in"})
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                   "\\": "\\", "'": "'", '"': '"', "`": "`", "?": "?"}
_HEX = frozenset("0123456789abcdefABCDEF")
_DIGITS = frozenset("0123456789")
_STRING_PREFIXES = frozenset({"r", "R", "b", "B", "br", "bR", "Br", "BR"})


@dataclass(frozen=True, slots=True)
class Token:
    """One lexical token; `kind` is a literal class, 'ident', a keyword, a punctuator or 'eof'."""

    kind: str
    value: Any
    pos: int


def _is_ident_start(c: str) -> bool:
    return c == "_" or ("a" <= c <= "z") or ("A" <= c <= "Z")


def _is_ident_char(c: str) -> bool:
    return _is_ident_start(c) or c in _DIGITS


def tokenize(src: str) -> list[Token]:
    """Split `src` into tokens, ending with an 'eof' token; raise ExpressionError on bad input."""
    tokens: list[Token] = []
    i, n = 0, len(src)
    while True:
        while i < n and src[i] in " \t\n\r\f":
            i += 1
        if i < n and src.startswith("//", i):
            end = src.find("\n", i)
            i = n if end < 0 else end
            continue
        if i >= n:
            tokens.append(Token("eof", None, n))
            return tokens
        c = src[i]
        if _is_ident_start(c):
            j = i
            while j < n and _is_ident_char(src[j]):
                j += 1
            word = src[i:j]
            if word in _STRING_PREFIXES and j < n and src[j] in "'\"":
                tok, i = _string(src, j, i, raw="r" in word.lower(), is_bytes="b" in word.lower())
                tokens.append(tok)
                continue
            tokens.append(Token(word if word in KEYWORDS else "ident", word, i))
            i = j
        elif c in _DIGITS or (c == "." and i + 1 < n and src[i + 1] in _DIGITS):
            tok, i = _number(src, i)
            tokens.append(tok)
        elif c in "'\"":
            tok, i = _string(src, i, i, raw=False, is_bytes=False)
            tokens.append(tok)
        else:
            for p in PUNCTUATION:
                if src.startswith(p, i):
                    tokens.append(Token(p, p, i))
                    i += len(p)
                    break
            else:
                raise error_at(src, i, f"unexpected character {c!r}")


def _number(src: str, start: int) -> tuple[Token, int]:
    n = len(src)
    i = start
    if src.startswith("0x", i):
        j = i + 2
        while j < n and src[j] in _HEX:
            j += 1
        if j == i + 2:
            raise error_at(src, start, "invalid hexadecimal literal")
        value = int(src[i + 2:j], 16)
        return _int_suffix(src, start, j, value)
    while i < n and src[i] in _DIGITS:
        i += 1
    is_double = False
    if i + 1 < n and src[i] == "." and src[i + 1] in _DIGITS:
        is_double = True
        i += 1
        while i < n and src[i] in _DIGITS:
            i += 1
    if i < n and src[i] in "eE":
        j = i + 1
        if j < n and src[j] in "+-":
            j += 1
        if j < n and src[j] in _DIGITS:
            while j < n and src[j] in _DIGITS:
                j += 1
            is_double = True
            i = j
    if is_double:
        return Token("double", float(src[start:i]), start), i
    return _int_suffix(src, start, i, int(src[start:i]))


def _int_suffix(src: str, start: int, end: int, value: int) -> tuple[Token, int]:
    if end < len(src) and src[end] in "uU":
        if value > 0xFFFFFFFFFFFFFFFF:
            raise error_at(src, start, "invalid uint literal: out of range")
        return Token("uint", value, start), end + 1
    return Token("int", value, start), end


def _string(src: str, q: int, start: int, *, raw: bool, is_bytes: bool) -> tuple[Token, int]:
    """Scan a quoted literal whose opening quote is at `q`; `start` is where its prefix begins."""
    n = len(src)
    quote = src[q]
    triple = src.startswith(quote * 3, q)
    delim = quote * 3 if triple else quote
    i = q + len(delim)
    parts: list[str] = []
    byte_parts: list[bytes] = []

    def emit_text(text: str) -> None:
        if is_bytes:
            byte_parts.append(text.encode("utf-8"))
        else:
            parts.append(text)

    while True:
        if i >= n:
            raise error_at(src, start, "unterminated string literal")
        if src.startswith(delim, i):
            i += len(delim)
            break
        c = src[i]
        if not triple and c in "\r\n":
            raise error_at(src, start, "unterminated string literal (newline in a single-quoted string)")
        if c != "\\" or raw:
            emit_text(c)
            i += 1
            continue
        if i + 1 >= n:
            raise error_at(src, i, "unterminated escape sequence")
        e = src[i + 1]
        if e in _SIMPLE_ESCAPES:
            emit_text(_SIMPLE_ESCAPES[e])
            i += 2
        elif e in "xX":
            code = _hex_digits(src, i, i + 2, 2)
            if is_bytes:
                byte_parts.append(bytes([code]))
            else:
                parts.append(chr(code))
            i += 4
        elif e in "uU":
            if is_bytes:
                raise error_at(src, i, "\\u escapes are not allowed in bytes literals")
            width = 4 if e == "u" else 8
            code = _hex_digits(src, i, i + 2, width)
            if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
                raise error_at(src, i, "invalid unicode code point in escape")
            parts.append(chr(code))
            i += 2 + width
        elif e in "0123":
            octal = src[i + 1:i + 4]
            if len(octal) != 3 or any(ch not in "01234567" for ch in octal):
                raise error_at(src, i, "invalid octal escape")
            code = int(octal, 8)
            if is_bytes:
                byte_parts.append(bytes([code]))
            else:
                parts.append(chr(code))
            i += 4
        else:
            raise error_at(src, i, f"invalid escape sequence '\\{e}'")
    if is_bytes:
        return Token("bytes", b"".join(byte_parts), start), i
    return Token("string", "".join(parts), start), i


def _hex_digits(src: str, esc: int, at: int, width: int) -> int:
    digits = src[at:at + width]
    if len(digits) != width or any(ch not in _HEX for ch in digits):
        raise error_at(src, esc, "invalid hexadecimal escape")
    return int(digits, 16)
