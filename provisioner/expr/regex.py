"""Translation of the RE2 patterns accepted by `matches` into equivalent Python `re` patterns.

Only a conservative subset is accepted, where Python's engine provably agrees with RE2 and cannot
backtrack exponentially: literals, `.`, anchors, classes, `\\d`, `\\s`, groups, alternation and
quantifiers that are not nested inside another quantified group.
"""

from __future__ import annotations

import re

_WHITESPACE = "\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
_ESCAPES = {"d": "\\d", "D": "\\D", "s": f"[{_WHITESPACE}]", "S": f"[^{_WHITESPACE}]",
            "n": "\\n", "t": "\\t", "r": "\\r", "f": "\\f", "v": "\\x0b"}
_CLASS_ESCAPES = {"d": "\\d", "s": _WHITESPACE, "n": "\\n", "t": "\\t", "r": "\\r", "f": "\\f",
                  "v": "\\x0b"}
_REPEAT = re.compile(r"\{([0-9]{1,3})(,([0-9]{0,3}))?\}")
MAX_REPEAT = 100


class RegexError(ValueError):
    """A pattern outside the supported RE2 subset."""


def translate(pattern: str) -> re.Pattern[str]:
    """Compile an RE2 `pattern` to a Python regex with identical matching, or raise RegexError."""
    out: list[str] = []
    # Each open group records: output index, whether it contains a quantifier or alternation.
    groups: list[list[int | bool]] = []
    last_atom: tuple[int, bool] | None = None  # (output index, atom contains quantifier/alternation)
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise RegexError("trailing backslash")
            e = pattern[i + 1]
            if e in _ESCAPES:
                atom = _ESCAPES[e]
            elif e.isascii() and not e.isalnum():
                atom = re.escape(e)
            else:
                raise RegexError(f"escape '\\{e}' is not supported")
            last_atom = (len(out), False)
            out.append(atom)
            i += 2
        elif c == "[":
            atom, i = _char_class(pattern, i)
            last_atom = (len(out), False)
            out.append(atom)
        elif c == "(":
            if pattern.startswith("(?:", i):
                i += 3
                out.append("(?:")
            elif pattern.startswith("(?", i):
                raise RegexError("flags and special groups are not supported")
            else:
                i += 1
                out.append("(")
            groups.append([len(out) - 1, False])
            last_atom = None
        elif c == ")":
            if not groups:
                raise RegexError("unbalanced ')'")
            start, complex_ = groups.pop()
            if complex_ and groups:
                groups[-1][1] = True
            out.append(")")
            last_atom = (int(start), bool(complex_))
            i += 1
        elif c == "|":
            if groups:
                groups[-1][1] = True
            out.append("|")
            last_atom = None
            i += 1
        elif c in "*+?{":
            if c == "{":
                m = _REPEAT.match(pattern, i)
                if m is None:
                    raise RegexError("invalid repetition")
                low = int(m.group(1))
                high = m.group(3)
                if int(low) > MAX_REPEAT or (high and int(high) > MAX_REPEAT) or (high and int(high) < low):
                    raise RegexError("invalid or too large repetition")
                quant = m.group(0)
                i = m.end()
            else:
                quant = c
                i += 1
            if last_atom is None:
                raise RegexError("repetition without an operand")
            if last_atom[1]:
                raise RegexError("a repeated group may not contain repetition or alternation")
            if i < n and pattern[i] == "?":
                quant += "?"
                i += 1
            if i < n and pattern[i] in "*+?{":
                raise RegexError("repetition of a repetition is not supported")
            out.append(quant)
            if groups:
                groups[-1][1] = True
            last_atom = None
        elif c == "$":
            out.append("\\Z")
            last_atom = None
            i += 1
        elif c == "^":
            out.append("^")
            last_atom = None
            i += 1
        elif c == ".":
            out.append(".")
            last_atom = (len(out) - 1, False)
            i += 1
        else:
            last_atom = (len(out), False)
            out.append(re.escape(c))
            i += 1
    if groups:
        raise RegexError("unbalanced '('")
    try:
        return re.compile("".join(out))
    except re.error as exc:
        raise RegexError(str(exc)) from None


def _char_class(pattern: str, start: int) -> tuple[str, int]:
    i = start + 1
    n = len(pattern)
    out = ["["]
    if i < n and pattern[i] == "^":
        out.append("^")
        i += 1
    if i < n and pattern[i] == "]":
        raise RegexError("escape a leading ']' in a character class")
    empty = True
    while True:
        if i >= n:
            raise RegexError("unclosed character class")
        c = pattern[i]
        if c == "]":
            break
        if c == "[" or pattern.startswith(("&&", "--", "~~", "||"), i):
            raise RegexError("nested classes and class set operations are not supported")
        if c == "\\":
            if i + 1 >= n:
                raise RegexError("trailing backslash")
            e = pattern[i + 1]
            if e in _CLASS_ESCAPES:
                out.append(_CLASS_ESCAPES[e])
            elif e.isascii() and not e.isalnum():
                out.append("\\" + e)
            else:
                raise RegexError(f"escape '\\{e}' is not supported in a class")
            i += 2
        elif c == "-" and not empty and i + 1 < n and pattern[i + 1] != "]":
            prev = out[-1]
            nxt = pattern[i + 1]
            if len(prev) != 1 or nxt in "\\[" or ord(nxt) < ord(prev):
                raise RegexError("invalid class range")
            out.append("-")
            out.append(re.escape(nxt) if not nxt.isalnum() else nxt)
            i += 2
            empty = False
            continue
        else:
            out.append(re.escape(c) if not c.isalnum() else c)
            i += 1
        empty = False
    if empty:
        raise RegexError("empty character class")
    out.append("]")
    return "".join(out), i + 1
