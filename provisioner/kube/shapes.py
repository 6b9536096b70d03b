"""A template's objects without parsing YAML, or running jinja2, at every render.

Every value enters a template through `tojson` (see `provisioner.kube.render`), so a rendered
template is a fixed YAML text (its shape) with JSON values set into it. The template rendered
with each `tojson` replaced by a numbered placeholder gives that shape; it is parsed once per
distinct shape into a builder (`provisioner.kube.builders`), which builds the objects with each
value (a fresh copy, as JSON would give it) where its placeholder is. Which shape a context gets,
and which of its values go where, is learned per template (`provisioner.kube.traces`), so that a
product whose templates ask what an earlier one's asked is rendered without jinja2.

Parsing the YAML was three quarters of the time the operator spent rendering a product, then
copying the parsed shape and the values through JSON, then jinja2. The objects are the same as
parsing the rendered text, which is what happens whenever a value could read differently as YAML
than as JSON (a float) or a placeholder is not a whole scalar.

Called by `provisioner.kube.render`.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import jinja2
import yaml
from jinja2.filters import do_tojson

from provisioner.kube.builders import Builder, compile_shape
from provisioner.kube.traces import Traces

__all__ = ["render_objects", "tojson"]

_MARK = "\ue000"  # a private-use character: no template text starts a scalar with it
_OPEN = json.dumps(_MARK)[:-1]  # a JSON string's start, the mark escaped: `"\\ue000`
_SHAPES_MAX = 512  # shapes kept (they differ by template, branch and the few values not quoted)
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_recording = threading.local()  # the values of the render in progress on this thread
_shapes: dict[str, Builder | None] = {}  # shape text -> its builder (None: parse the text)
_traces = Traces()  # which shape each template renders for which answers (`provisioner.kube.traces`)


@jinja2.pass_eval_context
def tojson(eval_ctx: Any, value: Any, indent: int | None = None) -> str:
    """jinja2's `tojson`, or while `render_objects` records, a placeholder for `value`."""
    values: list[Any] | None = getattr(_recording, "values", None)
    if values is None or indent is not None:
        return do_tojson(eval_ctx, value, indent)
    values.append(value)
    return f'{_OPEN}{len(values) - 1}"'  # json.dumps of the placeholder; no autoescape: no Markup needed


def _parse(text: str) -> list[Any]:
    return [doc for doc in yaml.load_all(text, Loader=_LOADER) if doc]


def render_objects(template: jinja2.Template, context: dict[str, Any]) -> list[Any]:
    """The non-empty YAML documents `template` renders with `context`, as objects."""
    found = _traces.find(template, context)
    if found is None and _traces.learn(template, context, _render_shape):
        found = _traces.find(template, context)
    if found is not None:
        leaf, values = found
        builder = _builder(leaf.shape_text, str(template.name))
        if builder is not None and builder.slots == len(values):
            try:
                return builder.build([_plain(value) for value in values])
            except _NotPlain:
                pass
    return _render_objects(template, context)


def _render_shape(template: jinja2.Template, context: dict[str, Any]) -> tuple[str, list[Any]]:
    """The template's shape text and the values `tojson` was given, in placeholder order."""
    values: list[Any] = []
    _recording.values = values
    try:
        return template.render(context), values
    finally:
        _recording.values = None


def _render_objects(template: jinja2.Template, context: dict[str, Any]) -> list[Any]:
    """`render_objects` through jinja2: the shape rendered, else the text parsed."""
    shape_text, values = _render_shape(template, context)
    builder = _builder(shape_text, str(template.name))
    if builder is None or builder.slots != len(values):  # a placeholder inside a longer scalar
        return _parse(template.render(context))
    try:
        copies = [_plain(value) for value in values]
    except _NotPlain:
        if any(map(_has_float, values)):  # `1e-05` is a float in JSON but a string in YAML 1.1
            return _parse(template.render(context))
        copies = [json.loads(json.dumps(value, sort_keys=True)) for value in values]
    return builder.build(copies)


def _builder(shape_text: str, name: str) -> Builder | None:
    """The shape's builder, compiled the first time the shape is seen."""
    try:
        return _shapes[shape_text]
    except KeyError:
        pass
    builder = compile_shape(_parse(shape_text), _MARK, name)
    if len(_shapes) >= _SHAPES_MAX:
        _shapes.clear()
    _shapes[shape_text] = builder
    return builder


_SCALARS = frozenset({str, int, bool, type(None)})  # as JSON gives them back


class _NotPlain(Exception):
    """A value JSON would change or YAML could read differently: the general path copies it."""


def _plain(value: Any) -> Any:
    """A copy of `value` as `json.loads(json.dumps(value, sort_keys=True))` gives it, for the plain
    values rendering passes (strings, integers, booleans, None, string-keyed dicts, lists, tuples)
    at a fraction of the cost; _NotPlain for anything else (a float, a subclass, another key)."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        try:
            keys = sorted(value)
        except TypeError:  # keys of different types
            raise _NotPlain from None
        copy = {}
        for key in keys:
            if type(key) is not str:
                raise _NotPlain
            item = value[key]
            copy[key] = item if type(item) in _SCALARS else _plain(item)  # inlined: most values are strings
        return copy
    if kind is list or kind is tuple:
        return [item if type(item) in _SCALARS else _plain(item) for item in value]
    raise _NotPlain


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(map(_has_float, value.values()))
    if isinstance(value, (list, tuple)):
        return any(map(_has_float, value))
    return False
