"""Templates rendered from learned traces: jinja2 runs only for answers not seen before, and what
comes out is what rendering the text gives, whatever the template asks of its values."""

from __future__ import annotations

from typing import Any
from unittest import mock

import jinja2
import pytest

from provisioner.kube import shapes

TEMPLATES = {
    "_m.j2": "{% macro meta(name, labels) -%}\nmetadata: {name: {{ name|tojson }}, labels: {{ labels|tojson }}}\n"
             "{%- endmacro %}",
    "branches.j2": '{% import "_m.j2" as m -%}\nkind: Thing\n{{ m.meta(store.name, labels) }}\n'
                   "replicas: {{ replicas }}\n{%- if store.kafka %}\nkafka: {{ store.kafka.file|tojson }}\n{%- endif %}\n"
                   "reader: {{ {reader: 'true'}|tojson }}\n",
    "test.j2": "a: {{ (v if v is none else 'set')|tojson }}\n",
    "compare.j2": "a: {{ ('redis' if kind == 'redis' else 'other')|tojson }}\n",
    "length.j2": "a: {{ items|length }}\n",
    "strict.j2": "a: {{ store.missing|tojson }}\n",
}


def environment() -> jinja2.Environment:
    environment = jinja2.Environment(loader=jinja2.DictLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                                     autoescape=False, keep_trailing_newline=True)  # YAML: no HTML escaping
    environment.filters["tojson"] = shapes.tojson
    return environment


def outcome(call: Any) -> Any:
    try:
        return call()
    except Exception as error:  # the same refusal either way
        return type(error), str(error)


def check(template: jinja2.Template, context: dict[str, Any]) -> Any:
    """`render_objects`, asserting it gives what parsing the rendered text gives."""
    fast = outcome(lambda: shapes.render_objects(template, context))
    assert fast == outcome(lambda: shapes._parse(template.render(context)))
    return fast


def context(name: str = "a", replicas: Any = 1, kafka: Any = None, **store: Any) -> dict[str, Any]:
    return {"store": {"name": name, "kafka": kafka, **store}, "labels": {"z": "1", "a": name}, "replicas": replicas,
            "reader": f"reads/{name}"}


def test_jinja_runs_only_for_answers_not_seen_before() -> None:
    template = environment().get_template("branches.j2")
    renders = mock.Mock(wraps=shapes._render_shape)
    with mock.patch.object(shapes, "_render_shape", renders):
        first = check(template, context("a"))
        assert first == [{"kind": "Thing", "metadata": {"name": "a", "labels": {"a": "a", "z": "1"}}, "replicas": 1,
                          "reader": {"reads/a": "true"}}]
        learned = renders.call_count
        check(template, context("b", extra="not asked"))  # other values, the same answers
        assert renders.call_count == learned
        check(template, context("c", replicas=3))  # another unquoted text: another shape
        check(template, context("d", kafka={"file": "/etc/kafka/client.properties"}))  # another branch
        assert renders.call_count > learned
        learned = renders.call_count
        for name in "efg":  # each answer seen: no jinja2
            check(template, context(name, replicas=3))
            check(template, context(name, kafka={"file": f"/{name}"}))
        assert renders.call_count == learned


@pytest.mark.parametrize("changed", [
    {"store": {"name": "a", "kafka": {"file": 1.5}}},  # a float: YAML reads some JSON floats otherwise
    {"store": {"name": "a", "kafka": ["file"]}},  # no longer a dict: jinja2 would not find the key
    {"store": {"name": "a", "kafka": {}}},  # the key gone: StrictUndefined refuses it
    {"store": {"name": ("a", "b"), "kafka": None}},  # a tuple: a list in JSON
    {"labels": {1: "x"}},  # a key JSON turns into a string
    {"replicas": "2\nkind: Other"},  # unquoted text that changes the shape
])
def test_values_the_trace_did_not_see_render_as_the_text_does(changed: dict[str, Any]) -> None:
    template = environment().get_template("branches.j2")
    check(template, context("a", kafka={"file": "x"}))
    check(template, {**context("a", kafka={"file": "x"}), **changed})


@pytest.mark.parametrize("name", ["test.j2", "compare.j2", "length.j2", "strict.j2"])
def test_what_a_trace_cannot_record_renders_through_jinja(name: str) -> None:
    template = environment().get_template(name)
    for values in ({"v": None, "kind": "redis", "items": [1], "store": {}},
                   {"v": 0, "kind": "postgres", "items": [], "store": {"missing": "here"}}):
        check(template, values)
