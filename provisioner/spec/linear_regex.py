"""Regular expressions that run in linear time, for `source.schema`'s `pattern` and `patternProperties`.

Python's `re` backtracks: `^(a+)+b` on 24 characters takes most of a second and each two more
characters quadruple it, so one record could freeze a consumer. RE2 never backtracks: a search costs
time linear in the text whatever the pattern. A pattern is therefore RE2 syntax, which has
ECMA-262's literals, classes, groups, alternation and quantifiers but no look-arounds and no
back-references; a pattern RE2 cannot compile is refused when the spec is validated.

Text is searched as UTF-8 (a lone surrogate, which JSON's `\\ud800` escapes can make, is passed
through as its three bytes rather than failing the search).
"""

from __future__ import annotations

from collections.abc import Callable

import re2
from re2 import _re2

Search = Callable[[str], bool]
"""Whether a pattern matches anywhere in a text (JSON Schema `pattern` semantics)."""

__all__ = ["PatternError", "Search", "compile_search", "pattern_problem"]


class PatternError(ValueError):
    """A pattern RE2 cannot compile; the message says why."""


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern to stderr
    return options


def pattern_problem(pattern: str) -> str | None:
    """Why RE2 cannot compile `pattern`, or None when it can."""
    try:
        re2.compile(pattern.encode("utf-8", "surrogatepass"), options=_options())
    except re2.error as error:
        reason = error.args[0] if error.args else "invalid pattern"
        text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        return f"{text} (patterns use RE2 syntax: no look-arounds or back-references)"
    return None


def compile_search(pattern: str) -> Search:
    """A search function for `pattern`; PatternError when RE2 cannot compile it.

    A one-pattern `Set` of the bindings' core module: its match is about twice as cheap per call
    as the `re`-like wrapper, which also builds a match object and maps offsets back to characters.
    """
    problem = pattern_problem(pattern)
    if problem is not None:
        raise PatternError(problem)
    matcher = _re2.Set(_re2.RE2.Anchor.UNANCHORED, _options())
    matcher.Add(pattern.encode("utf-8", "surrogatepass"))
    matcher.Compile()
    match = matcher.Match

    def search(text: str) -> bool:
        return bool(match(text.encode("utf-8", "surrogatepass")))

    return search
