"""The shared plan: what a set of products needs, whatever places it."""

from __future__ import annotations

from pathlib import Path

from provisioner.plan import plan
from provisioner.spec.loader import load_products, load_text
from provisioner.spec.models import DataProduct

SPECS = Path(__file__).resolve().parents[2] / "specs"

TWO_STORES = """
apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata: {name: orders-view, namespace: sales}
spec:
  source: {topic: orders.v1}
  fields: {order_id: event.order_id}
  key: order_id
  errors: {mode: %s}
  stores:
    - {name: cache, redis: {}}
    - {name: db, postgres: {connection: {url: "postgresql://u@db/x"}}}
"""


def _products(text: str) -> list[DataProduct]:
    specs, findings = load_text(text)
    assert not findings
    return [s.product for s in specs]


def test_one_consumer_per_store_in_spec_order() -> None:
    planned = plan(_products(TWO_STORES % "deadLetter"))
    assert [c.label for c in planned.consumers] == ["orders-view/cache", "orders-view/db"]
    assert [c.consumer_group for c in planned.consumers] == [
        "provisioner.sales.orders-view.cache", "provisioner.sales.orders-view.db"]
    assert all(c.topic == "orders.v1" and c.namespace == "sales" for c in planned.consumers)


def test_only_stores_without_connection_are_managed() -> None:
    planned = plan(_products(TWO_STORES % "deadLetter"))
    assert [c.store.name for c in planned.managed] == ["cache"]
    assert planned.managed_kinds == frozenset({"redis"})


def test_dead_letter_topic_is_needed_only_when_dead_letters_are_sent() -> None:
    assert plan(_products(TWO_STORES % "deadLetter")).topics == ("orders-view.dlq", "orders.v1")
    assert plan(_products(TWO_STORES % "stop")).topics == ("orders.v1",)
    assert plan(_products(TWO_STORES % "skip")).topics == ("orders.v1",)


def test_example_specs() -> None:
    products = [s.product for s in load_products([SPECS])]
    planned = plan(products)
    assert len(planned.consumers) == sum(len(p.spec.stores) for p in products)
    assert set(planned.topics) >= {p.spec.source.topic for p in products}
    assert planned.managed_kinds == frozenset({"redis", "postgres"})
