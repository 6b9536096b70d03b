"""Abstract syntax tree of a parsed CEL expression; `pos` is the source offset for error columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True, eq=False)
class Node:
    """Base class; `ty` is the static type assigned by the checker ('dyn' when unknown)."""

    pos: int
    ty: str = field(default="dyn", init=False)


@dataclass(slots=True, eq=False)
class Literal(Node):
    """A constant; `value` uses the runtime value model (UInt for uint, bytes, None for null...)."""

    value: Any


@dataclass(slots=True, eq=False)
class Ident(Node):
    """A variable reference: `event`, `record` or a comprehension variable."""

    name: str


@dataclass(slots=True, eq=False)
class Select(Node):
    """Field selection `operand.field`, or `operand.?field` (optional: an optional result)."""

    operand: Node
    field: str
    optional: bool = False


@dataclass(slots=True, eq=False)
class Has(Node):
    """The `has(operand.field)` presence test."""

    operand: Node
    field: str


@dataclass(slots=True, eq=False)
class Index(Node):
    """Indexing `operand[index]`, or `operand[?index]` (optional: an optional result)."""

    operand: Node
    index: Node
    optional: bool = False


@dataclass(slots=True, eq=False)
class Call(Node):
    """A function call `name(args)` or method call `target.name(args)`."""

    name: str
    target: Node | None
    args: list[Node]


@dataclass(slots=True, eq=False)
class ListExpr(Node):
    """A list literal; the items at `optional` positions (`[?x]`) are included only when present."""

    items: list[Node]
    optional: frozenset[int] = frozenset()


@dataclass(slots=True, eq=False)
class MapExpr(Node):
    """A map literal; the entries at `optional` positions (`{?k: v}`) only when `v` is present."""

    entries: list[tuple[Node, Node]]
    optional: frozenset[int] = frozenset()


@dataclass(slots=True, eq=False)
class Unary(Node):
    """`!x` or `-x`."""

    op: str
    operand: Node


@dataclass(slots=True, eq=False)
class Binary(Node):
    """An arithmetic, comparison or `in` operation."""

    op: str
    left: Node
    right: Node


@dataclass(slots=True, eq=False)
class Logical(Node):
    """An n-ary `&&` or `||` chain (flattened so long chains do not nest deeply)."""

    op: str
    terms: list[Node]


@dataclass(slots=True, eq=False)
class Conditional(Node):
    """`cond ? then : otherwise`."""

    cond: Node
    then: Node
    otherwise: Node


@dataclass(slots=True, eq=False)
class Comprehension(Node):
    """A macro over a list or map: all, exists, exists_one, map (with optional filter), filter,
    their two-variable forms (`var2` set: index/key and value) and transformList, transformMap,
    transformMapEntry, sortBy; also optMap/optFlatMap over an optional value."""

    kind: str
    range: Node
    var: str
    predicate: Node | None
    transform: Node | None
    var2: str | None = None


@dataclass(slots=True, eq=False)
class Bind(Node):
    """`cel.bind(var, init, body)`: `body` evaluated with `var` bound to the value of `init`."""

    var: str
    init: Node
    body: Node


def children(node: Node) -> list[Node]:
    """The direct sub-expressions of `node`."""
    if isinstance(node, Select | Has):
        return [node.operand]
    if isinstance(node, Index):
        return [node.operand, node.index]
    if isinstance(node, Call):
        return ([node.target] if node.target is not None else []) + list(node.args)
    if isinstance(node, ListExpr):
        return list(node.items)
    if isinstance(node, MapExpr):
        return [part for entry in node.entries for part in entry]
    if isinstance(node, Unary):
        return [node.operand]
    if isinstance(node, Binary):
        return [node.left, node.right]
    if isinstance(node, Logical):
        return list(node.terms)
    if isinstance(node, Conditional):
        return [node.cond, node.then, node.otherwise]
    if isinstance(node, Comprehension):
        return [n for n in (node.range, node.predicate, node.transform) if n is not None]
    if isinstance(node, Bind):
        return [node.init, node.body]
    return []
