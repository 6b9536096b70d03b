"""A template's objects without parsing YAML at every render: each shape is parsed once.

Every value enters a template through `tojson` (see `provisioner.kube.render`), so a rendered
template is a fixed YAML text (its shape) with JSON values set into it. `render_objects` renders
the template with each `tojson` replaced by a numbered placeholder, parses that text once per
distinct shape, and then sets each value (a fresh copy, as JSON would give it) where its
placeholder is. Parsing the YAML was three quarters of the time the operator spent rendering a
product; the objects are the same as parsing the rendered text, which is what happens whenever
a value could read differently as YAML than as JSON (a float) or a placeholder is not a whole
scalar.

Called by `provisioner.kube.render`.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import jinja2
import yaml
from jinja2.filters import do_tojson

__all__ = ["render_objects", "tojson"]

_MARK = "\ue000"  # a private-use character: no template text starts a scalar with it
_SHAPES_MAX = 512  # shapes kept (they differ by template, branch and the few values not quoted)
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_recording = threading.local()  # the values of the render in progress on this thread
_shapes: dict[str, list[Any]] = {}


@jinja2.pass_eval_context
def tojson(eval_ctx: Any, value: Any, indent: int | None = None) -> str:
    """jinja2's `tojson`, or while `render_objects` records, a placeholder for `value`."""
    values: list[Any] | None = getattr(_recording, "values", None)
    if values is None or indent is not None:
        return do_tojson(eval_ctx, value, indent)
    values.append(value)
    return json.dumps(f"{_MARK}{len(values) - 1}")  # no autoescape: no Markup needed


def _parse(text: str) -> list[Any]:
    return [doc for doc in yaml.load_all(text, Loader=_LOADER) if doc]


def render_objects(template: jinja2.Template, context: dict[str, Any]) -> list[Any]:
    """The non-empty YAML documents `template` renders with `context`, as objects."""
    values: list[Any] = []
    _recording.values = values
    try:
        shape_text = template.render(context)
    finally:
        _recording.values = None
    if any(map(_has_float, values)):  # `1e-05` is a float in JSON but a string in YAML 1.1
        return _parse(template.render(context))
    shape = _shapes.get(shape_text)
    if shape is None:
        shape = _parse(shape_text)
        if len(_shapes) >= _SHAPES_MAX:
            _shapes.clear()
        _shapes[shape_text] = shape
    filled = _Filler([json.loads(json.dumps(v, sort_keys=True)) for v in values])
    objects = [filled.fill(doc) for doc in shape]
    if filled.unused or not filled.complete:  # a placeholder inside a longer scalar: parse the real text
        return _parse(template.render(context))
    return objects


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(map(_has_float, value.values()))
    if isinstance(value, (list, tuple)):
        return any(map(_has_float, value))
    return False


class _Filler:
    """Copies a shape, each placeholder replaced by its value (each used once: no sharing)."""

    def __init__(self, values: list[Any]) -> None:
        self.values = values
        self.unused = set(range(len(values)))
        self.complete = True  # every placeholder was a whole scalar, each seen once

    def fill(self, node: Any) -> Any:
        if isinstance(node, str):
            if node[:1] == _MARK and node[1:].isdigit():
                index = int(node[1:])
                if index not in self.unused:
                    self.complete = False
                    return node
                self.unused.discard(index)
                return self.values[index]
            return node
        if isinstance(node, dict):
            return {self.fill(k): self.fill(v) for k, v in node.items()}
        if isinstance(node, list):
            return [self.fill(item) for item in node]
        return node
