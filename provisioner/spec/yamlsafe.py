"""Bounded YAML reading: `safe_load` semantics plus limits, and the position of every node.

Specs come from users and from Git, so a file must never exhaust memory or the stack: documents
are limited in bytes, nesting depth, alias count and expanded size (a "billion laughs" file fails
fast). The composed node tree also gives each value's line and column, which is how every error
names `file:line:column`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_ALIASES = 100
MAX_EXPANDED_NODES = 100_000

Path = tuple[str | int, ...]


class YamlLimitError(Exception):
    """The document breaks a limit or is not YAML; `line`/`column` are 1-based."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class Position:
    """Where a value (and, for mapping entries, its key) starts; 1-based."""

    line: int
    column: int
    key_line: int
    key_column: int
    quoted: bool


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts depth and aliases while composing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise YamlLimitError(f"more than {MAX_ALIASES} aliases", mark.line + 1, mark.column + 1)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise YamlLimitError(f"nested deeper than {MAX_DEPTH} levels", mark.line + 1, mark.column + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


# Timestamps stay strings: the model parses them itself (`startFrom`), and a datetime object would
# only turn a clear "not a timestamp" into a confusing type error.
_BoundedLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document: its Python value and the position of every path in it."""

    index: int
    data: Any
    positions: dict[Path, Position]
    start_line: int
    duplicate_keys: list[tuple[Path, Position]]

    def locate(self, path: Path, *, at_key: bool = False) -> tuple[int, int]:
        """Line and column of `path`, or of its nearest ancestor that has a position."""
        for end in range(len(path), -1, -1):
            position = self.positions.get(path[:end])
            if position is not None:
                if at_key and end == len(path):
                    return position.key_line, position.key_column
                return position.line, position.column
        return self.start_line, 1


def _expanded_size(node: Node, sizes: dict[int, int], active: set[int]) -> int:
    known = sizes.get(id(node))
    if known is not None:
        return known
    if id(node) in active:
        mark = node.start_mark
        raise YamlLimitError("recursive alias", mark.line + 1, mark.column + 1)
    active.add(id(node))
    total = 1
    if isinstance(node, SequenceNode):
        for item in node.value:
            total += _expanded_size(item, sizes, active)
    elif isinstance(node, MappingNode):
        for key, value in node.value:
            total += _expanded_size(key, sizes, active) + _expanded_size(value, sizes, active)
    active.discard(id(node))
    if total > MAX_EXPANDED_NODES:
        mark = node.start_mark
        raise YamlLimitError(
            f"expands to more than {MAX_EXPANDED_NODES} values (aliases)", mark.line + 1, mark.column + 1
        )
    sizes[id(node)] = total
    return total


def _collect(
    node: Node,
    path: Path,
    key_mark: tuple[int, int],
    positions: dict[Path, Position],
    duplicates: list[tuple[Path, Position]],
) -> None:
    mark = node.start_mark
    quoted = isinstance(node, ScalarNode) and node.style in ("'", '"')
    positions[path] = Position(mark.line + 1, mark.column + 1, key_mark[0], key_mark[1], quoted)
    if isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            _collect(item, (*path, index), (item.start_mark.line + 1, item.start_mark.column + 1),
                     positions, duplicates)
    elif isinstance(node, MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                continue
            key = str(key_node.value)
            here = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in seen:
                duplicates.append(((*path, key), Position(*here, *here, quoted=False)))
            seen.add(key)
            _collect(value_node, (*path, key), here, positions, duplicates)


# What PyYAML's constructors raise for a scalar their tag cannot read (`!!bool x` is a KeyError,
# `!!timestamp x` an AttributeError): input errors, not bugs.
_UNREADABLE = (ValueError, TypeError, OverflowError, LookupError, AttributeError)


def _unreadable(node: Node) -> tuple[str, int, int]:
    """The first scalar its tag cannot construct, and where it is (1-based)."""
    probe = yaml.SafeLoader("")
    pending = [node]
    while pending:
        current = pending.pop()
        if isinstance(current, ScalarNode):
            try:
                probe.construct_object(current)
            except (*_UNREADABLE, yaml.YAMLError):
                tag = current.tag.replace("tag:yaml.org,2002:", "!!")
                text = current.value if len(current.value) <= 40 else current.value[:37] + "..."
                return f"{text!r} cannot be read as {tag}", current.start_mark.line + 1, current.start_mark.column + 1
        elif isinstance(current, SequenceNode):
            pending.extend(reversed(current.value))
        elif isinstance(current, MappingNode):
            pending.extend(reversed([part for pair in current.value for part in pair]))
    return "a value cannot be read as its tag says", node.start_mark.line + 1, node.start_mark.column + 1


def read_documents(text: str) -> Iterator[Document]:
    """Yield each non-empty document of `text`; raises YamlLimitError on bad or hostile input."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise YamlLimitError(f"file is larger than {MAX_FILE_BYTES // 1024} KiB")
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text)
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            _expanded_size(node, {}, set())
            positions: dict[Path, Position] = {}
            duplicates: list[tuple[Path, Position]] = []
            _collect(node, (), (node.start_mark.line + 1, 1), positions, duplicates)
            try:
                data = loader.construct_document(node)
            except _UNREADABLE:  # a tagged scalar its tag cannot read (`!!int x`, `!!bool owner`)
                message, line, column = _unreadable(node)
                raise YamlLimitError(f"invalid YAML: {message}", line, column) from None
            yield Document(index, data, positions, node.start_mark.line + 1, duplicates)
            index += 1
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = error.problem or error.context or "invalid YAML"
        raise YamlLimitError(f"invalid YAML: {problem}", line, column) from None
    except yaml.YAMLError as error:
        raise YamlLimitError(f"invalid YAML: {error}") from None
    except RecursionError:
        raise YamlLimitError(f"nested deeper than {MAX_DEPTH} levels") from None
    finally:
        if loader is not None:
            loader.dispose()
