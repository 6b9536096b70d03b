"""The bounds every decoded event keeps, whatever its format, so that every later stage (schema,
CEL, the stores' encoders) stays far from the interpreter's recursion limit and a batch of hostile
records cannot take a consumer's memory."""

from __future__ import annotations

from typing import Any, Final

__all__ = ["MAX_DEPTH", "MAX_VALUES", "MAX_VALUE_BYTES", "TOO_MANY_VALUES", "bounds_failure"]

MAX_VALUE_BYTES: Final = 8 * 1024 * 1024
"""A record value longer than this is a dead letter (stage `decode`) before it is decoded."""

MAX_DEPTH: Final = 128
"""Lists and maps nested deeper than this are a dead letter (stage `decode`)."""
MAX_VALUES: Final = 100_000
"""Values (lists, maps and their items) one decoded record may hold: a 1 MB value of empty
arrays would otherwise take over 20 MB of memory, and a batch of them a consumer's whole limit."""
TOO_MANY_VALUES: Final = f"more than {MAX_VALUES} values (arrays, objects and their items)"


def bounds_failure(event: Any) -> str | None:
    """Why `event` breaks a decode bound, or None. Iterative: it must work on any depth."""
    if type(event) is not dict and type(event) is not list:
        return None
    values = 1
    stack: list[tuple[Any, int]] = [(event, 1)]
    pop = stack.pop
    push = stack.append
    while stack:
        node, depth = pop()
        if depth > MAX_DEPTH:
            return f"arrays and objects are nested more than {MAX_DEPTH} levels deep"
        values += len(node)
        if values > MAX_VALUES:
            return TOO_MANY_VALUES
        for item in node.values() if type(node) is dict else node:
            kind = type(item)
            if kind is dict or kind is list:
                push((item, depth + 1))
    return None
