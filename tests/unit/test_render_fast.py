"""Rendering through learned traces, compiled shapes and plain YAML gives what the plain way gives
(each template rendered by jinja2 with its own `tojson` and its text parsed, the consumers' spec
written by `yaml.dump`): the same objects, key order, text and Secrets to create, for every
example spec and for generated products and options, in whatever order products are rendered
(the shapes and traces one product leaves are reused for the next)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from unittest import mock

import jinja2
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from provisioner.kube import plain_yaml, shapes
from provisioner.kube.reconcile import parse_product
from provisioner.kube.render import RenderOptions, render
from provisioner.kube.traces import Traces
from provisioner.spec.findings import SpecError
from provisioner.spec.loader import load_products
from provisioner.spec.models import DataProduct

ROOT = Path(__file__).parents[2]
SPECS = sorted((ROOT / "specs").rglob("*.yaml"))
KEY = b"k" * 32
OWNER = {"apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct", "name": "x", "uid": "u-1",
         "controller": True, "blockOwnerDeletion": True}
OPTIONS: list[dict[str, Any]] = [
    {},
    {"with_secrets": True, "credentials_key": KEY, "owner": OWNER, "namespace": "team-a"},
    {"with_secrets": True, "credentials_key": KEY, "owner": OWNER, "kafka_secret": "kafka-client",
     "kafka_secret_version": "42", "kafka_secret_usable": False},
    {"with_secrets": True, "leave_derived": True, "kafka_secret": "kafka-client", "kafka_secret_version": "7"},
    {"kafka_bootstrap": "a:1,b,c:70000", "image": "registry/provisioner:1", "storage_size": "5Gi",
     "operator_namespace": "ops", "redis_image": "redis:8", "postgres_image": "postgres:18"},
]


@contextlib.contextmanager
def the_plain_way() -> Iterator[None]:
    def objects(template: jinja2.Template, context: dict[str, Any]) -> list[Any]:
        return shapes._parse(template.render(context))  # tojson outside a recording: jinja2's own

    def dump(document: Any) -> str:
        return str(yaml.dump(document, Dumper=yaml.CSafeDumper, sort_keys=False, width=120, allow_unicode=True))

    with mock.patch.object(shapes, "render_objects", objects), mock.patch.object(plain_yaml, "dump", dump):
        yield


def rendered(products: list[DataProduct], options: RenderOptions) -> list[Any]:
    """Each product's text, objects with their key order, and Secrets to create; or the refusal."""
    try:
        return [(r.yaml(), json.dumps(r.objects), r.secrets_to_create) for r in render(products, options)]
    except ValueError as error:
        return [type(error), str(error)]


def both_ways(products: list[DataProduct], options: RenderOptions) -> None:
    fast = rendered(products, options)
    with the_plain_way():
        plain = rendered(products, options)
    assert fast == plain


def examples() -> list[DataProduct]:
    return [spec.product for spec in load_products(SPECS)]


@pytest.mark.parametrize("overrides", OPTIONS, ids=["plain", "operator", "kafka-waits", "derived", "platform"])
def test_every_example_renders_as_the_plain_way_does(overrides: dict[str, Any]) -> None:
    options = RenderOptions(**{"kafka_bootstrap": "kafka.platform:9092,kafka-2.platform:9093", **overrides})
    products = examples()
    both_ways(products, options)
    for product in reversed(products):  # each alone, from what the others left
        both_ways([product], options)


def test_threads_rendering_at_once_get_what_the_plain_way_gives() -> None:
    """The operator renders from several workers: what one learns while another renders is kept whole."""
    jobs = [([product], RenderOptions(**{"kafka_bootstrap": "kafka:9092", **overrides}))
            for product in examples() for overrides in OPTIONS]
    with the_plain_way():
        expected = [rendered(*job) for job in jobs]
    with ThreadPoolExecutor(4) as pool, mock.patch.object(shapes, "_traces", Traces()):  # all learn at once
        for _ in range(3):
            assert list(pool.map(lambda job: rendered(*job), jobs)) == expected


names = st.from_regex(r"[a-z]([a-z0-9-]{0,38}[a-z0-9])?", fullmatch=True)
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)
connections = st.one_of(
    st.none(),
    st.builds(lambda name: {"secretRef": {"name": name, "key": "url"}}, names),
    st.sampled_from(["redis://cache.shop:6380/0", "postgresql://u:p@db.shop/orders", "redis://h/0?x=${NOPE}",
                     "postgresql://u@db.shop/o?sslmode=verify-full&sslrootcert=ca.pem"]).map(lambda u: {"url": u}),
)


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    stores = []
    for name in draw(st.lists(st.sampled_from(["cache", "db", "search", "x"]), min_size=1, max_size=3, unique=True)):
        kind = draw(st.sampled_from(["redis", "postgres"]))
        connection = draw(connections)
        if connection and "url" in connection and not connection["url"].startswith(kind[:4]):
            connection = None
        stores.append({"name": name, kind: {"connection": connection} if connection else {}})
    consumer: dict[str, Any] = {"replicas": draw(st.integers(0, 4))}
    consumer.update(draw(st.sampled_from([{}, {"autoscale": "external"}, {"autoscale": {"maxReplicas": 6}}])))
    source: dict[str, Any] = {"topic": draw(st.sampled_from(["orders.v1", "t"]))}
    if draw(st.booleans()):
        source["credentials"] = {"secretRef": {"name": draw(names)}}
    return {
        "apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct",
        "metadata": {"name": draw(names), "namespace": draw(names),
                     "labels": draw(st.dictionaries(st.sampled_from(["team", "tier"]), names, max_size=2))},
        "spec": {"description": draw(texts), "source": source,
                 "fields": {"order_id": "event.order_id", "note": draw(st.sampled_from(["event.note", "'a: b'"]))},
                 "key": "order_id", "stores": stores, "consumer": consumer},
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(st.lists(bodies(), min_size=1, max_size=3), st.sampled_from(OPTIONS), st.booleans())
def test_generated_products_render_as_the_plain_way_does(
        documents: list[dict[str, Any]], overrides: dict[str, Any], environ: bool) -> None:
    products = []
    for document in documents:
        try:
            products.append(parse_product(document))
        except SpecError:
            assume(False)
    options = RenderOptions(**{"kafka_bootstrap": "kafka:9092", "environ": {"NOPE": "1"} if environ else None,
                               **overrides})
    both_ways(products, options)


# Strings libyaml may write plain, quoted, folded or as another type's look-alike.
strings = texts | st.text("aZ09_./- :#'\n", max_size=8) | st.sampled_from(
    ["true", "No", "null", "~", "1.0", "0x1f", "1_000", "12:30", "2001-12-14", ".inf", "-a", "a-", "_", "=", "<<",
     "x" * 130, "a.b/c-d_" * 20])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | strings,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(strings, inner, max_size=4), max_leaves=30)


# Specs' usual strings (names, topics, field paths), which plain_yaml writes itself, now and then one it cannot.
words = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,12}", fullmatch=True).filter(lambda w: len(w) > 3) | st.sampled_from(
    ["true", "1.0", "2001-12-14", "12:30", "a b", "", "x" * 101, "a.b/c-d_" * 20, "1", "-1", "y", "n", "0o7", "e"])
word_values = st.recursive(
    st.none() | st.booleans() | st.integers() | words,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(words, inner, max_size=4), max_leaves=40)


@settings(max_examples=200, deadline=None)
@given(json_values | st.dictionaries(strings, json_values, min_size=1, max_size=5))
def test_plain_yaml_writes_what_yaml_dump_writes(document: Any) -> None:
    expected = yaml.dump(document, Dumper=yaml.CSafeDumper, sort_keys=False, width=120, allow_unicode=True)
    assert plain_yaml.dump(document) == expected


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(words, word_values, min_size=1, max_size=6))
def test_plain_yaml_writes_a_specs_usual_text_as_yaml_dump_does(document: dict[str, Any]) -> None:
    expected = yaml.dump(document, Dumper=yaml.CSafeDumper, sort_keys=False, width=120, allow_unicode=True)
    assert plain_yaml.dump(document) == expected


@pytest.mark.parametrize("document", [
    {"first": ["a", "b"], "second": "x"},  # built here
    {"set": {1, 2}, "tuple": ("a",)},  # types only yaml.dump's representer knows
], ids=["plain", "other-types"])
def test_what_plain_yaml_cannot_build_yaml_dump_writes(document: dict[str, Any]) -> None:
    shared = ["a", "b"]
    document = {**document, "again": shared, "and again": shared}  # written as an anchor and an alias
    expected = yaml.dump(document, Dumper=yaml.CSafeDumper, sort_keys=False, width=120, allow_unicode=True)
    assert "&id001" in expected and plain_yaml.dump(document) == expected
