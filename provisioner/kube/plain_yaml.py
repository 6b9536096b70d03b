"""`yaml.dump` of JSON-shaped data (the spec in a product's ConfigMap) in a fraction of the time, same text.

PyYAML's dump spends most of its time before libyaml writes a character: its representer walks
the data through a chain of Python calls per value (alias bookkeeping, a representer looked up by
type), and the emitter asks the resolver, in Python, how each scalar would read back, twice per
scalar. `dump` writes the text itself when every string is one libyaml writes plain on one line
(most specs' names, topics and field paths; the resolver asked once per string); else, for dicts,
lists, strings, integers, booleans and None, it builds the same node graph libyaml is given
(SafeRepresenter's tags, values and block style) and remembers the resolver's answers (a pure
function of the scalar's text). A float goes through the representer's own code; any other type,
or a dict or list appearing twice (which PyYAML would write as an alias), makes it call
`yaml.dump` itself.

Called by `provisioner.kube.render`.
"""

from __future__ import annotations

import io
import re
from typing import Any, ClassVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["dump"]

_BASE: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: 5x faster, the operator renders each product
_TAG = "tag:yaml.org,2002:"
_STR, _INT, _BOOL, _NULL, _MAP, _SEQ = (_TAG + name for name in ("str", "int", "bool", "null", "map", "seq"))
_RESOLVED_MAX = 16384  # scalars remembered (a product's names are its own: forgotten in bulk)
_KEY_MAX = 100  # libyaml writes keys over 128 characters as complex keys
_SIMPLE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")  # no indicator, space, quote or break: plain if a string
_RESOLVER: Any = yaml.resolver.Resolver()  # the safe dumper's: what a plain scalar reads back as
_written_plain: dict[str, bool] = {}  # whether libyaml writes a string plain


class _Dumper(_BASE):  # type: ignore[misc]
    """The safe dumper, its scalar tags remembered: a spec's keys and values repeat across products."""

    _resolved: ClassVar[dict[tuple[str, tuple[bool, bool]], str]] = {}  # shared by every dump

    def resolve(self, kind: type[Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is not ScalarNode:
            return str(super().resolve(kind, value, implicit))
        key = (value, implicit)
        tag = self._resolved.get(key)
        if tag is None:
            if len(self._resolved) >= _RESOLVED_MAX:
                self._resolved.clear()
            tag = self._resolved[key] = str(super().resolve(kind, value, implicit))
        return tag


class _NotBuilt(Exception):  # not an error: the next way writes such data
    """Data `_Text` would not write as PyYAML does (a string it quotes), or `_Nodes` (an alias, a set)."""


def dump(document: Any) -> str:
    """`yaml.dump(document, Dumper=CSafeDumper, sort_keys=False, width=120, allow_unicode=True)`."""
    try:
        return _Text().document(document)
    except _NotBuilt:
        pass
    stream = io.StringIO()
    dumper = _Dumper(stream, default_flow_style=False, width=120, allow_unicode=True, sort_keys=False)
    try:
        node = _Nodes(dumper).node(document)
    except _NotBuilt:
        return str(yaml.dump(document, Dumper=_BASE, sort_keys=False, width=120, allow_unicode=True))
    dumper.open()
    dumper.serialize(node)
    dumper.close()
    return stream.getvalue()


class _Text:
    """The text libyaml writes for a block mapping of dicts, lists, integers, booleans, None and
    strings it writes plain (no quotes): those made of letters, digits and `_./-` that read back as
    strings. Without a space such a string is never folded at the width; anything else is _NotBuilt."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.seen: set[int] = set()

    def document(self, document: Any) -> str:
        if type(document) is not dict or not document:
            raise _NotBuilt
        self.mapping(document, 0, "")
        return "".join(self.lines)

    def mapping(self, mapping: dict[Any, Any], indent: int, first: str) -> None:
        self.meet(mapping)
        pad = " " * indent
        for index, (key, value) in enumerate(mapping.items()):
            if type(key) is not str or len(key) > _KEY_MAX:
                raise _NotBuilt  # libyaml writes a long key as `? key`
            line = f"{first if index == 0 else pad}{_plain_str(key)}:"
            if value and type(value) is dict:
                self.lines.append(line + "\n")
                self.mapping(value, indent + 2, " " * (indent + 2))
            elif value and type(value) is list:
                self.lines.append(line + "\n")
                self.sequence(value, indent, pad)  # a mapping's sequence is not indented
            else:
                self.lines.append(f"{line} {self.scalar(value)}\n")

    def sequence(self, items: list[Any], indent: int, first: str) -> None:
        self.meet(items)
        pad = " " * indent
        for index, item in enumerate(items):
            line = f"{first if index == 0 else pad}- "
            if item and type(item) is dict:
                self.mapping(item, indent + 2, line)
            elif item and type(item) is list:
                self.sequence(item, indent + 2, line)
            else:
                self.lines.append(f"{line}{self.scalar(item)}\n")

    def scalar(self, value: Any) -> str:
        kind = type(value)
        if kind is str:
            return _plain_str(value)
        if kind is bool:
            return "true" if value else "false"
        if kind is int:
            return str(value)
        if value is None:
            return "null"
        if kind is dict or kind is list:  # empty: flow style
            self.meet(value)
            return "{}" if kind is dict else "[]"
        raise _NotBuilt

    def meet(self, container: Any) -> None:
        if id(container) in self.seen:
            raise _NotBuilt  # PyYAML writes an anchor and an alias
        self.seen.add(id(container))


def _plain_str(value: str) -> str:
    """`value`, if libyaml writes it without quotes and on one line; else _NotBuilt."""
    plain = _written_plain.get(value)
    if plain is None:
        tag = _RESOLVER.resolve(ScalarNode, value, (True, False))
        plain = bool(_SIMPLE.fullmatch(value)) and tag == _STR
        if len(_written_plain) >= _RESOLVED_MAX:
            _written_plain.clear()
        _written_plain[value] = plain
    if not plain:
        raise _NotBuilt
    return value


class _Nodes:
    """SafeRepresenter's nodes for JSON-shaped data (`default_flow_style=False`: block style)."""

    def __init__(self, dumper: Any) -> None:
        self.dumper = dumper
        self.seen: set[int] = set()  # ids of the dicts and lists met: a second meeting is an alias

    def node(self, value: Any) -> Node:
        kind = type(value)
        if kind is str:
            return ScalarNode(_STR, value)
        if kind is dict or kind is list:
            if id(value) in self.seen:
                raise _NotBuilt
            self.seen.add(id(value))
            if kind is dict:
                return MappingNode(_MAP, [(self.node(k), self.node(v)) for k, v in value.items()], flow_style=False)
            return SequenceNode(_SEQ, [self.node(item) for item in value], flow_style=False)
        if kind is bool:
            return ScalarNode(_BOOL, "true" if value else "false")
        if kind is int:
            return ScalarNode(_INT, str(value))
        if value is None:
            return ScalarNode(_NULL, "null")
        if kind is float:
            return self.dumper.represent_data(value)  # type: ignore[no-any-return]
        raise _NotBuilt
