"""Rendering through parsed shapes gives the objects parsing each rendered text would, key order
included, for every example under every option that changes what is rendered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import pytest

from provisioner.kube import shapes
from provisioner.kube.render import RenderOptions, render, to_yaml
from provisioner.spec.loader import load_products

ROOT = Path(__file__).parents[2]
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
OWNER = {"apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct", "name": "x", "uid": "u-1",
         "controller": True, "blockOwnerDeletion": True}
OPTIONS = [
    {},
    {"with_secrets": True, "credentials_key": b"k" * 32, "owner": OWNER, "namespace": "team-a"},
    {"with_secrets": True, "credentials_key": b"k" * 32, "kafka_secret": "kafka-client",
     "kafka_secret_version": "42", "kafka_secret_usable": False},
]


@pytest.mark.parametrize("overrides", OPTIONS, ids=["plain", "operator", "kafka-secret"])
def test_shapes_give_what_parsing_the_text_gives(overrides: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[str] = []
    fast = shapes.render_objects

    def both(template: jinja2.Template, context: dict[str, Any]) -> list[Any]:
        objects = fast(template, context)
        parsed = shapes._parse(template.render(context))  # the text as jinja2's own tojson writes it
        assert objects == parsed and to_yaml(objects) == to_yaml(parsed)
        compared.append(str(template.name))
        return objects

    monkeypatch.setattr(shapes, "render_objects", both)
    products = [spec.product for spec in load_products(SPECS)]
    options = RenderOptions(**{"kafka_bootstrap": "kafka.platform:9092,kafka-2.platform:9093", **overrides})
    twice = [render(products, options) for _ in range(2)]  # the second from the shapes already parsed
    assert [r.yaml() for r in twice[0]] == [r.yaml() for r in twice[1]]
    assert {"configmap.yaml.j2", "consumer-deployment.yaml.j2", "consumer-networkpolicy.yaml.j2"} <= set(compared)


def test_objects_never_share_a_value() -> None:
    """Each object is a fresh copy: the operator edits rendered objects (replicas, Secret data)."""
    template = jinja2.Environment(autoescape=False).from_string(
        "a: {{ v|tojson }}\nb: {{ v|tojson }}\n")
    template.environment.filters["tojson"] = shapes.tojson
    [first] = shapes.render_objects(template, {"v": {"k": [1]}})
    [second] = shapes.render_objects(template, {"v": {"k": [1]}})
    assert first == second == {"a": {"k": [1]}, "b": {"k": [1]}}
    first["a"]["k"].append(2)
    assert first["b"] == second["a"] == {"k": [1]}


def test_a_placeholder_inside_a_longer_scalar_falls_back_to_the_text() -> None:
    environment = jinja2.Environment(autoescape=False)
    environment.filters["tojson"] = shapes.tojson
    template = environment.from_string("a: x{{ v|tojson }}\nb: {{ f|tojson }}\n")
    assert shapes.render_objects(template, {"v": "y", "f": 1}) == [{"a": 'x"y"', "b": 1}]
    # A float: `1e-05` reads as a string in YAML 1.1; the text decides, as before.
    template = environment.from_string("b: {{ f|tojson }}\n")
    assert shapes.render_objects(template, {"f": 1e-05}) == [{"b": "1e-05"}]
