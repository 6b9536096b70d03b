"""Exceptions raised by the expression engine: compile-time and evaluation-time failures."""

from __future__ import annotations


class ExpressionError(Exception):
    """An expression that cannot be compiled: syntax, unknown names, static type errors, limits."""

    def __init__(self, message: str, column: int = 1, line: int = 1) -> None:
        super().__init__(f"{message} (line {line}, column {column})" if line > 1 else
                         f"{message} (column {column})")
        self.message = message
        self.column = column
        self.line = line


class EvaluationError(Exception):
    """A CEL runtime error (no such key, no matching overload, overflow, division by zero...)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def position(source: str, offset: int) -> tuple[int, int]:
    """Return the 1-based (line, column) of a character offset in `source`."""
    offset = max(0, min(offset, len(source)))
    line = source.count("\n", 0, offset) + 1
    start = source.rfind("\n", 0, offset) + 1
    return line, offset - start + 1


def error_at(source: str, offset: int, message: str) -> ExpressionError:
    """Build an ExpressionError pointing at `offset` within `source`."""
    line, column = position(source, offset)
    return ExpressionError(message, column, line)
