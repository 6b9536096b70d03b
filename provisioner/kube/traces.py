"""Which shape a template renders for a context, and where its values come from, without jinja2.

A template's shape (see `provisioner.kube.shapes`) depends on its context only through what the
template learns of it: the truth of the values its `{% if %}`s test and the text of the values it
writes unquoted (`{{ replicas }}`); a value it passes through `tojson` only fills a placeholder.
`learn` renders the template once with each context value wrapped in a `_Traced` that records
those questions and their answers in order, and where each `tojson` value came from (a path of
keys into the context, or a literal holding such paths). A later context asked the same questions
in the same order gets the same answers, so the template would render the same shape with values
from the same paths: `find` asks them on the plain context (no template, no proxies) along a tree
of the answers seen so far, and answers with that shape and paths, or None (a question answered
differently, a key missing: `learn` it).

Only what a `_Traced` can record may reach it: anything else it is asked (a comparison, a length,
an item, a call, an attribute that is not a key of a dict) raises `_Untraceable`, and that render
is not learned. jinja2 tests (`is none`) and filters that look at a value's type would answer
for the proxy instead of the value, so a template (or one it imports) using any test, or a filter
but `tojson` and `indent`, is never traced. Trees are kept per template and set of context keys:
a name missing from the context is one of jinja2's globals, which a trace does not see.

Called by `provisioner.kube.shapes`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2 import nodes

__all__ = ["Leaf", "Traces"]

_FILTERS = frozenset({"tojson", "indent"})  # tojson records a value; indent of a macro's text
_LEAVES_MAX = 256  # shapes remembered per template and context keys (they differ by branch)
_Path = tuple[str, ...]
_Question = tuple[str, _Path]  # ("bool" | "str", path)


class _Untraceable(Exception):  # not an error: the render goes through jinja2
    """A template asked a traced value something its answer tree cannot record."""


@dataclass(frozen=True, slots=True)
class Leaf:
    """A shape and, per placeholder in order, where its value is (a path, or a literal holding paths)."""

    shape_text: str
    sources: tuple[Any, ...]


@dataclass(slots=True)
class _Node:
    """A question the template asks next, and the node each answer leads to."""

    question: _Question
    answers: dict[Any, _Node | Leaf] = field(default_factory=dict)


class _Traced:
    """A context value seen by a template under trace: what the template learns is recorded."""

    __slots__ = ("_path", "_questions", "_value")

    def __init__(self, value: Any, path: _Path, questions: list[tuple[_Question, Any]]) -> None:
        object.__setattr__(self, "_value", value)
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_questions", questions)

    def __getattribute__(self, name: str) -> Any:
        if name == "__class__":
            return _Traced
        value, path, questions = _parts(self)
        # jinja2 reads `a.b` as getattr, then as an item: a dict's key unless a dict attribute has that name.
        if type(value) is not dict or name not in value or hasattr(dict, name):
            raise _Untraceable(f"{'.'.join(path)}.{name}")
        return _Traced(value[name], (*path, name), questions)

    def __bool__(self) -> bool:
        return bool(_ask(self, "bool"))

    def __str__(self) -> str:
        return str(_ask(self, "str"))

    __hash__ = object.__hash__  # a dict literal's key (`{reader_label: "true"}`); its source is a path


def _parts(traced: _Traced) -> tuple[Any, _Path, list[tuple[_Question, Any]]]:
    get = object.__getattribute__
    return get(traced, "_value"), get(traced, "_path"), get(traced, "_questions")


def _ask(traced: _Traced, kind: str) -> Any:
    value, path, questions = _parts(traced)
    answer = _ANSWERS[kind](value)
    questions.append(((kind, path), answer))
    return answer


def _refuse(traced: _Traced, *_: Any) -> Any:
    raise _Untraceable(".".join(_parts(traced)[1]))


# What a template could ask a value that the answer tree does not record: refused, so the render
# is not learned (object's defaults would answer silently: `==` by identity, repr by address).
for _name in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__len__", "__iter__", "__contains__",
              "__getitem__", "__call__", "__repr__", "__format__", "__int__", "__float__", "__index__", "__neg__",
              "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__mod__", "__rmod__",
              "__truediv__", "__rtruediv__", "__floordiv__", "__rfloordiv__", "__pow__", "__rpow__", "__reduce__",
              "__reduce_ex__"):
    setattr(_Traced, _name, _refuse)

_ANSWERS: dict[str, Callable[[Any], Any]] = {"bool": bool, "str": str}


def _resolve(context: dict[str, Any], path: _Path) -> Any:
    """The value at `path`; KeyError when it is not there as the trace found it (a dict's key)."""
    value: Any = context
    for name in path:
        if type(value) is not dict:
            raise KeyError(name)
        value = value[name]
    return value


def _value(source: Any, context: dict[str, Any]) -> Any:
    """The value a placeholder gets: the one at its path, or the literal with its paths' values."""
    if type(source) is tuple:
        return _resolve(context, source)
    if type(source) is dict:
        return {_value(k, context): _value(v, context) for k, v in source.items()}
    if type(source) is list:
        return [_value(item, context) for item in source]
    return source


def _source(value: Any) -> Any:
    """Where a value passed to `tojson` under trace comes from (paths for traced values)."""
    if type(value) is _Traced:
        return _parts(value)[1]
    if type(value) is dict:
        return {_key_source(k): _source(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return [_source(item) for item in value]  # a tuple literal reads as a list in JSON
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    raise _Untraceable(type(value).__name__)


def _key_source(key: Any) -> Any:
    if type(key) is _Traced or isinstance(key, (str, int, float, bool, type(None))):
        return _source(key)
    raise _Untraceable(type(key).__name__)  # a tuple would read as a path


class Traces:
    """The answer trees of the templates rendered, per template and set of context keys."""

    def __init__(self) -> None:
        # Keyed by the template itself: a template reloaded from changed text is a new object.
        self._roots: dict[tuple[jinja2.Template, tuple[str, ...]], _Node | Leaf] = {}
        self._leaves: dict[tuple[jinja2.Template, tuple[str, ...]], int] = {}
        self._traceable: dict[jinja2.Template, bool] = {}
        self._lock = threading.Lock()

    def find(self, template: jinja2.Template, context: dict[str, Any]) -> tuple[Leaf, list[Any]] | None:
        """The shape `template` renders with `context` and its values (not copied), if learned."""
        node = self._roots.get((template, tuple(context)))
        try:
            while type(node) is _Node:
                kind, path = node.question
                node = node.answers.get(_ANSWERS[kind](_resolve(context, path)))
            if node is None:
                return None
            assert type(node) is Leaf
            return node, [_value(source, context) for source in node.sources]
        except KeyError:
            return None

    def learn(self, template: jinja2.Template, context: dict[str, Any],
              render: Callable[[jinja2.Template, dict[str, Any]], tuple[str, list[Any]]]) -> bool:
        """Trace `render(template, context)` (a shape and its `tojson` values) and keep its answers;
        False when the template cannot be traced."""
        if template.name is None or not self._is_traceable(template):
            return False
        questions: list[tuple[_Question, Any]] = []
        traced = {key: _Traced(value, (key,), questions) for key, value in context.items()}
        try:
            shape_text, values = render(template, traced)
            leaf = Leaf(shape_text, tuple(_source(value) for value in values))
        except Exception:  # _Untraceable, or what rendering through jinja2 will raise again
            return False
        with self._lock:
            self._add((template, tuple(context)), questions, leaf)
        return True

    def _add(self, key: tuple[jinja2.Template, tuple[str, ...]], questions: list[tuple[_Question, Any]],
             leaf: Leaf) -> None:
        if self._leaves.get(key, 0) >= _LEAVES_MAX:
            self._roots.pop(key, None)
            self._leaves[key] = 0
        slot: dict[Any, _Node | Leaf] = self._roots
        at: Any = key
        for question, answer in questions:
            node = slot.get(at)
            if node is None:
                node = slot[at] = _Node(question)
            if type(node) is not _Node or node.question != question:
                return  # the template asked differently for the same answers: not a function of them
            slot, at = node.answers, answer
        if at not in slot:
            slot[at] = leaf
            self._leaves[key] = self._leaves.get(key, 0) + 1

    def _is_traceable(self, template: jinja2.Template) -> bool:
        known = self._traceable.get(template)
        if known is None:
            known = self._traceable[template] = _only_traceable(template.environment, str(template.name), set())
        return known


def _only_traceable(environment: jinja2.Environment, name: str, seen: set[str]) -> bool:
    """Whether template `name` and those it imports use no test and no filter but `_FILTERS`."""
    if name in seen:
        return True
    seen.add(name)
    if environment.loader is None:
        return False
    source, _, _ = environment.loader.get_source(environment, name)
    tree = environment.parse(source)
    if any(True for _ in tree.find_all(nodes.Test)):
        return False
    if any(f.name not in _FILTERS for f in tree.find_all(nodes.Filter)):
        return False
    for node in tree.find_all((nodes.Import, nodes.FromImport, nodes.Include, nodes.Extends)):
        target = getattr(node, "template", None)
        if not isinstance(target, nodes.Const) or not _only_traceable(environment, target.value, seen):
            return False
    return True
