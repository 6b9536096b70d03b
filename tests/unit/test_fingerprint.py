"""Which spec changes rebuild a store and which apply in place."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from provisioner.spec.fingerprint import StoreChange, compare, fingerprint
from provisioner.spec.loader import load_text
from provisioner.spec.models import DataProduct

BASE: dict[str, Any] = {
    "apiVersion": "provisioner.dev/v1alpha1",
    "kind": "DataProduct",
    "metadata": {"name": "orders", "namespace": "sales"},
    "spec": {
        "source": {"topic": "orders.v1"},
        "filter": "event.amount >= 100.0",
        "fields": {"order_id": "event.order_id", "total": "event.amount"},
        "key": "order_id",
        "stores": [{"name": "cache", "redis": {"ttl": "1h"}},
                   {"name": "db", "postgres": {"columns": {"total": "numeric"}}}],
    },
}


def product(**changes: Any) -> DataProduct:
    document = yaml.safe_load(yaml.safe_dump(BASE))
    for dotted, value in changes.items():
        node = document
        *parents, last = dotted.split("__")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[last] = value
    specs, findings = load_text(yaml.safe_dump(document, sort_keys=False))
    assert not findings, findings
    return specs[0].product


def kinds(old: DataProduct, new: DataProduct) -> dict[str, str]:
    return {change.store: change.kind for change in compare(old, new)}


def test_the_same_spec_changes_nothing() -> None:
    assert kinds(product(), product()) == {"cache": "unchanged", "db": "unchanged"}


@pytest.mark.parametrize("changes", [
    {"spec__filter": "event.amount >= 200.0"},
    {"spec__fields": {"order_id": "event.order_id", "total": "event.amount * 2.0"}},
    {"spec__key": ["order_id", "total"]},
    {"spec__source": {"topic": "orders.v2"}},
    {"spec__source": {"topic": "orders.v1", "startFrom": "latest"}},
    {"spec__delete": "event.type == 'Cancelled'"},
])
def test_content_changes_rebuild_every_store(changes: dict[str, Any]) -> None:
    assert kinds(product(), product(**changes)) == {"cache": "rebuild", "db": "rebuild"}


def test_a_store_setting_rebuilds_only_that_store() -> None:
    stores = [{"name": "cache", "redis": {"ttl": "1h", "structure": "json"}},
              {"name": "db", "postgres": {"columns": {"total": "numeric"}}}]
    changes = compare(product(), product(spec__stores=stores))
    assert changes == [StoreChange("cache", "rebuild", ("redis.structure",)), StoreChange("db", "unchanged")]


@pytest.mark.parametrize(("changes", "setting"), [
    ({"spec__consumer": {"replicas": 3, "batchSize": 100, "batchLatency": "1s"}}, "spec.consumer"),
    ({"spec__freshness": "5m"}, "spec.freshness"),
    ({"spec__errors": {"mode": "skip"}}, "spec.errors.mode"),
])
def test_operational_settings_apply_in_place(changes: dict[str, Any], setting: str) -> None:
    for change in compare(product(), product(**changes)):
        assert change.kind == "in place"
        assert any(name.startswith(setting) for name in change.settings), change


def test_ttl_applies_in_place() -> None:
    stores = [{"name": "cache", "redis": {"ttl": "2h"}}, {"name": "db", "postgres": {"columns": {"total": "numeric"}}}]
    changes = compare(product(), product(spec__stores=stores))
    assert changes == [StoreChange("cache", "in place", ("store.redis.ttl",)), StoreChange("db", "unchanged")]


def test_field_order_is_not_a_change() -> None:
    reordered = product(spec__fields={"total": "event.amount", "order_id": "event.order_id"})
    assert kinds(product(), reordered) == {"cache": "unchanged", "db": "unchanged"}
    assert fingerprint(product(), product().store("db")) == fingerprint(reordered, reordered.store("db"))


def test_defaults_written_out_are_not_a_change() -> None:
    explicit = product(spec__source={"topic": "orders.v1", "startFrom": "earliest", "format": "json"})
    assert kinds(product(), explicit) == {"cache": "unchanged", "db": "unchanged"}


def test_added_and_removed_stores() -> None:
    only_cache = product(spec__stores=[{"name": "cache", "redis": {"ttl": "1h"}}])
    assert kinds(only_cache, product()) == {"cache": "unchanged", "db": "new"}
    assert kinds(product(), only_cache) == {"cache": "unchanged", "db": "removed"}
    assert [c.kind for c in compare(None, product())] == ["new", "new"]


def test_fingerprints_differ_per_store_and_are_stable() -> None:
    p = product()
    assert fingerprint(p, p.store("cache")) != fingerprint(p, p.store("db"))
    assert fingerprint(p, p.store("db")) == fingerprint(product(), product().store("db"))
    assert len(fingerprint(p, p.store("db"))) == 16
