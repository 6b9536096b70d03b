"""A parsed template shape compiled into a function that builds its objects afresh.

`provisioner.kube.shapes` parses each distinct shape (a rendered template's YAML with numbered
placeholders where its values go) once. Copying that parsed shape node by node for every render,
to set the values into it, cost more than rendering the template: a shape has a few hundred
nodes and a dozen values. `compile_shape` turns the shape into one Python expression instead,
`lambda v: [{"kind": "Service", "metadata": {"name": v[0], ...}, ...}]`, which the interpreter
builds as fast as it builds a literal: fresh dicts and lists each call (callers edit the objects
they get), keys in the shape's order, each placeholder replaced by its value.

The expression is made of `repr`s of the shape's own strings, integers, booleans and None, which
read back as themselves, and `v[i]`; any other scalar the YAML may hold (a float, a date) is
passed in as a constant `k[j]` and shared, as copying the shape shared it.

Called by `provisioner.kube.shapes`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Builder", "compile_shape"]

_LITERAL = (str, int, bool, type(None))  # their repr is a Python literal of the same value


@dataclass(frozen=True, slots=True)
class Builder:
    """Builds a shape's objects from its values, in placeholder order (`slots` of them)."""

    build: Callable[[list[Any]], list[Any]]
    slots: int
    source: str  # the expression, for reading when debugging


def compile_shape(shape: list[Any], mark: str, name: str) -> Builder | None:
    """The builder of `shape`, whose placeholders are `mark` + a number; None unless each of
    0..n-1 is a whole scalar exactly once (else only the rendered text tells the objects: a value
    set inside a longer scalar is missing from the shape, its placeholder's number with it)."""
    writer = _Writer(mark)
    source = "[" + ", ".join(writer.expression(doc) for doc in shape) + "]"
    slots = len(writer.seen)
    if writer.broken or writer.seen != set(range(slots)):
        return None
    try:
        code = compile(f"lambda v: {source}", f"<shape of {name}>", "eval")
    except (RecursionError, MemoryError):  # nested deeper than the compiler goes: the text is parsed
        return None
    build = eval(code, {"__builtins__": {}, "k": tuple(writer.constants)})  # noqa: S307 (source is reprs and v[i])
    return Builder(build, slots, source)


class _Writer:
    """Writes the expression of a shape's nodes, noting the placeholders it meets."""

    def __init__(self, mark: str) -> None:
        self.mark = mark
        self.seen: set[int] = set()
        self.broken = False  # a placeholder seen twice
        self.constants: list[Any] = []

    def expression(self, node: Any) -> str:
        if isinstance(node, dict):
            return "{" + ", ".join(f"{self.expression(k)}: {self.expression(v)}" for k, v in node.items()) + "}"
        if isinstance(node, list):
            return "[" + ", ".join(self.expression(item) for item in node) + "]"
        if isinstance(node, str) and node.startswith(self.mark):
            return self._placeholder(node)
        if type(node) in _LITERAL:
            return repr(node)
        self.constants.append(node)
        return f"k[{len(self.constants) - 1}]"

    def _placeholder(self, node: str) -> str:
        index = node[len(self.mark):]
        if not (index.isdigit() and index.isascii()):  # the mark starting a string of the template's own
            return repr(node)
        if int(index) in self.seen:
            self.broken = True
            return repr(node)
        self.seen.add(int(index))
        return f"v[{int(index)}]"
