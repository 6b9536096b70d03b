"""`yaml.dump` of JSON-shaped data (the spec in a product's ConfigMap) in half the time, same text.

PyYAML's dump spends most of its time before libyaml writes a character: its representer walks
the data through a chain of Python calls per value (alias bookkeeping, a representer looked up by
type), and the emitter asks the resolver, in Python, how each scalar would read back, twice per
scalar. For dicts, lists, strings, integers, booleans and None, `dump` builds the same node graph
directly (SafeRepresenter's tags, values and block style) and remembers the resolver's answers
(a pure function of the scalar's text). A float goes through the representer's own code; any
other type, or a dict or list appearing twice (which PyYAML would write as an alias), makes it
call `yaml.dump` itself.

Called by `provisioner.kube.render`.
"""

from __future__ import annotations

import io
from typing import Any, ClassVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["dump"]

_BASE: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: 5x faster, the operator renders each product
_TAG = "tag:yaml.org,2002:"
_STR, _INT, _BOOL, _NULL, _MAP, _SEQ = (_TAG + name for name in ("str", "int", "bool", "null", "map", "seq"))
_RESOLVED_MAX = 65536  # scalars whose resolved tags are remembered


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


class _Shared(Exception):  # not an error: yaml.dump writes such data
    """Data PyYAML would write differently than `_node` builds it (an alias, an unknown type)."""


def dump(document: Any) -> str:
    """`yaml.dump(document, Dumper=CSafeDumper, sort_keys=False, width=120, allow_unicode=True)`."""
    stream = io.StringIO()
    dumper = _Dumper(stream, default_flow_style=False, width=120, allow_unicode=True, sort_keys=False)
    try:
        node = _Nodes(dumper).node(document)
    except _Shared:
        return str(yaml.dump(document, Dumper=_BASE, sort_keys=False, width=120, allow_unicode=True))
    dumper.open()
    dumper.serialize(node)
    dumper.close()
    return stream.getvalue()


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
                raise _Shared
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
        raise _Shared
