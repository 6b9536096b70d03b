"""CEL expressions compiled to Python closures, with the reference implementation's semantics.

`compile_expression(source)` parses, checks and compiles an expression once; the resulting
`Program` is then evaluated per record as `program.evaluate(event, record)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import ast
from .checker import check
from .compiler import Compiler
from .errors import EvaluationError, ExpressionError
from .parser import MAX_DEPTH, MAX_SOURCE_LENGTH, parse
from .runtime import MAX_SIZE, UInt

__all__ = [
    "MAX_DEPTH",
    "MAX_SIZE",
    "MAX_SOURCE_LENGTH",
    "EvaluationError",
    "ExpressionError",
    "Program",
    "UInt",
    "compile_expression",
]


class Program:
    """A compiled expression.  `evaluate(event, record)` is the closure itself, for speed.

    `record` must be a dict with the keys `key`, `headers`, `topic`, `partition`, `offset` and
    `timestamp` (a tz-aware datetime), or at least those in `record_fields` (the fields whose
    values the expression reads); it may be None when `uses_record` is False.
    """

    __slots__ = ("evaluate", "record_fields", "result_type", "source", "uses_record")

    source: str
    uses_record: bool
    record_fields: frozenset[str]
    result_type: str
    evaluate: Any

    def __init__(self, source: str, evaluate: Any, result_type: str, record_fields: frozenset[str]) -> None:
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "evaluate", evaluate)
        object.__setattr__(self, "result_type", result_type)
        object.__setattr__(self, "record_fields", record_fields)
        object.__setattr__(self, "uses_record", bool(record_fields))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Program is immutable")

    def __call__(self, event: Any, record: Any = None) -> Any:
        return self.evaluate(event, record)

    def __repr__(self) -> str:
        return f"Program({self.source!r}, result_type={self.result_type!r})"


def compile_expression(source: str, *, expect_bool: bool = False,
                       variables: Mapping[str, str] | None = None) -> Program:
    """Parse, check and compile `source`; raise ExpressionError if it is rejected.

    With `expect_bool`, expressions whose static type is known and is not bool are rejected.
    `variables` replaces the data product environment (`event`, `record`) by the declared names
    and their static types ('int', 'string', 'list', 'dyn'...); the program is then evaluated as
    `program.evaluate(activation, None)` with a dict of their values.
    """
    if not isinstance(source, str):
        raise ExpressionError("expression must be a string", 1)
    try:
        node = parse(source)
        result_type, record_fields = check(source, node, variables)
        if expect_bool and result_type not in ("bool", "dyn"):
            raise ExpressionError(f"expression must evaluate to bool, but its type is {result_type}", 1)
        fn: Any
        if variables is None and _is_record_timestamp(node):
            fn = _record_timestamp  # the datetime as given: the hot projection `x: record.timestamp`
        else:
            fn = Compiler(variables).compile(node)
    except RecursionError:
        raise ExpressionError("expression nested too deeply", 1) from None
    return Program(source, fn, result_type, record_fields)


def _is_record_timestamp(node: ast.Node) -> bool:
    return (isinstance(node, ast.Select) and not node.optional and node.field == "timestamp"
            and isinstance(node.operand, ast.Ident) and node.operand.name == "record")


def _record_timestamp(event: Any, record: Any) -> Any:
    return record["timestamp"]
