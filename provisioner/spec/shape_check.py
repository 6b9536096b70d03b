"""Expressions checked against the shape of `event` a schema gives (`event_shape.Shape`).

Two findings, both of expressions that cannot do what their author meant on any record the schema
allows: a field the schema's record does not have (`event.amout` where it has `amount`), and a
comparison of a field with a literal of another type (`event.amount == '100'` where `amount` is a
double), which CEL answers with an error (`no such overload`) or, for `==`, with a silent `false`.
`has(event.x)` is a question, not a use, and is never a finding. Comprehension variables take the
shape of the list's items, `cel.bind` variables the shape of their value.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from provisioner.expr import ExpressionError, ast
from provisioner.expr.parser import parse
from provisioner.spec.event_shape import Shape

__all__ = ["ShapeFinding", "check_against_shape", "fields_used"]

_COMPARISONS: Final = frozenset({"==", "!=", "<", "<=", ">", ">="})
_NUMBERS: Final = frozenset({"int", "uint", "double", "number"})
_SCALARS: Final = frozenset({"bool", "string", "bytes", "timestamp", "duration", *_NUMBERS})
_LISTED: Final = 12
"""A record with at most this many fields lists them when a misspelling has no close match."""


@dataclass(frozen=True, slots=True)
class ShapeFinding:
    """A problem at offset `pos` of the expression's source."""

    pos: int
    message: str


def check_against_shape(source: str, event: Shape) -> list[ShapeFinding]:
    """The findings of expression `source` against `event`'s shape (none if it does not parse:
    the expression checker reports that)."""
    try:
        node = parse(source)
    except (ExpressionError, RecursionError):
        return []
    walker = _Walker(event)
    try:
        walker.visit(node, {"event": event})
    except RecursionError:
        return []
    return walker.findings


def fields_used(source: str) -> set[tuple[str, ...]]:
    """The `event` field paths an expression reads (`event.customer.id` -> ('customer', 'id'))."""
    try:
        node = parse(source)
    except (ExpressionError, RecursionError):
        return set()
    used: set[tuple[str, ...]] = set()
    for path in _paths(node):
        used.add(path)
    return used


def _paths(node: ast.Node) -> Iterator[tuple[str, ...]]:
    chain = _chain(node)
    if chain is not None:
        yield chain
        return
    for child in _children(node):
        yield from _paths(child)


def _chain(node: ast.Node) -> tuple[str, ...] | None:
    parts: list[str] = []
    while isinstance(node, ast.Select):
        parts.append(node.field)
        node = node.operand
    if isinstance(node, ast.Ident) and node.name == "event" and parts:
        return tuple(reversed(parts))
    return None


def _children(node: ast.Node) -> list[ast.Node]:
    match node:
        case ast.Select(operand=operand) | ast.Has(operand=operand) | ast.Unary(operand=operand):
            return [operand]
        case ast.Index(operand=operand, index=index):
            return [operand, index]
        case ast.Call(target=target, args=args):
            return ([target] if target is not None else []) + list(args)
        case ast.ListExpr(items=items):
            return list(items)
        case ast.MapExpr(entries=entries):
            return [part for entry in entries for part in entry]
        case ast.Binary(left=left, right=right):
            return [left, right]
        case ast.Logical(terms=terms):
            return list(terms)
        case ast.Conditional(cond=cond, then=then, otherwise=otherwise):
            return [cond, then, otherwise]
        case ast.Comprehension(range=range_, predicate=predicate, transform=transform):
            return [range_, *(n for n in (predicate, transform) if n is not None)]
        case ast.Bind(init=init, body=body):
            return [init, body]
    return []


class _Walker:
    def __init__(self, event: Shape) -> None:
        self.event = event
        self.findings: list[ShapeFinding] = []

    def visit(self, node: ast.Node, scope: Mapping[str, Shape]) -> Shape | None:
        """Checks `node` and returns the shape of its value when the schema tells it."""
        match node:
            case ast.Ident(name=name):
                return scope.get(name)
            case ast.Has(operand=operand):
                self.visit(operand, scope)
                return None
            case ast.Select(operand=operand, field=name, optional=optional):
                return self._field(node, self.visit(operand, scope), name, optional)
            case ast.Index(operand=operand, index=ast.Literal(value=str() as name), optional=optional):
                return self._field(node, self.visit(operand, scope), name, optional)
            case ast.Index(operand=operand, index=index):
                container = self.visit(operand, scope)
                self.visit(index, scope)
                return container.items if container is not None and container.kind == "list" else None
            case ast.Binary(op=op, left=left, right=right) if op in _COMPARISONS:
                self._compare(node, self.visit(left, scope), left, self.visit(right, scope), right)
                return Shape("bool")
            case ast.Comprehension(range=range_, var=var, predicate=predicate, transform=transform):
                container = self.visit(range_, scope)
                element = None
                if container is not None and container.kind == "list":
                    element = container.items
                elif container is not None and container.kind == "map":
                    element = Shape("string")
                inner = {**scope, var: element} if element is not None else _without(scope, var)
                for part in (predicate, transform):
                    if part is not None:
                        self.visit(part, inner)
                return None
            case ast.Bind(var=var, init=init, body=body):
                value = self.visit(init, scope)
                return self.visit(body, {**scope, var: value} if value is not None else _without(scope, var))
        for child in _children(node):
            self.visit(child, scope)
        return None

    def _field(self, node: ast.Node, container: Shape | None, name: str, optional: bool) -> Shape | None:
        if container is None:
            return None
        if container.has_no(name) and not optional:
            known = sorted(container.fields)
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
            hint = (f" (did you mean {close[0]!r}?)" if close else
                    f" (it has {', '.join(known)})" if 0 < len(known) <= _LISTED else "")
            self.findings.append(ShapeFinding(
                node.pos, f"{_describe(node)}: {_where(container)} has no field {name!r}{hint}"))
            return None
        return container.field(name)

    def _compare(self, node: ast.Node, left: Shape | None, left_node: ast.Node, right: Shape | None,
                 right_node: ast.Node) -> None:
        for shape, literal, named in ((left, right_node, left_node), (right, left_node, right_node)):
            if shape is None or not isinstance(literal, ast.Literal):
                continue
            theirs = _literal_kind(literal.value)
            if theirs is None or shape.kind not in _SCALARS:
                continue
            if theirs == "null":
                continue  # comparing with null is how a nullable field is tested
            if _compatible(shape.kind, theirs):
                continue
            op = node.op if isinstance(node, ast.Binary) else "?"
            self.findings.append(ShapeFinding(
                named.pos, f"{_describe(named)} is {_article(shape.kind)} in {_where(shape)}, compared ({op}) "
                          f"with {_article(theirs)}"))


def _literal_kind(value: object) -> str | None:
    if value is None:
        return "null"
    for kind, python in (("bool", bool), ("int", int), ("double", float), ("string", str), ("bytes", bytes)):
        if isinstance(value, python):
            return kind
    return None


def _compatible(field_kind: str, literal_kind: str) -> bool:
    if field_kind in _NUMBERS and literal_kind in _NUMBERS:
        return True  # CEL compares numbers across int, uint and double
    return field_kind == literal_kind


def _article(kind: str) -> str:
    word = {"number": "number", "double": "double", "int": "int", "uint": "uint"}.get(kind, kind)
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _describe(node: ast.Node) -> str:
    """How the expression wrote a selection (`event.customer.tier`, `l.sku`), for messages."""
    parts: list[str] = []
    while True:
        if isinstance(node, ast.Select):
            parts.append(node.field)
            node = node.operand
        elif isinstance(node, ast.Index) and isinstance(node.index, ast.Literal) and isinstance(node.index.value, str):
            parts.append(node.index.value)
            node = node.operand
        else:
            break
    if isinstance(node, ast.Ident):
        return ".".join([node.name, *reversed(parts)])
    return "the value" if not parts else "(...)." + ".".join(reversed(parts))


def _where(shape: Shape) -> str:
    return shape.origin or "the schema"


def _without(scope: Mapping[str, Shape], name: str) -> dict[str, Shape]:
    return {key: value for key, value in scope.items() if key != name}
