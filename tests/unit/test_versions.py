"""Version naming and the start decision of a rebuild: pure, no store."""

from __future__ import annotations

from typing import Any

import pytest

from provisioner.runtime.rebuild import decide_start, with_overrides
from provisioner.spec.fingerprint import compare, fingerprint
from provisioner.spec.models import DataProduct
from provisioner.stores.versions import (
    SHADOW_KEY_PREFIX,
    ReplayRequest,
    Shadow,
    VersionRecord,
    product_json,
    shadow_for,
    shadow_table_name,
    version_id,
)


def product(**changes: Any) -> DataProduct:
    spec: dict[str, Any] = {
        "source": {"topic": "orders"},
        "filter": "event.type == 'OrderPlaced'",
        "fields": {"id": "event.id", "total": "event.total"},
        "key": "id",
        "stores": [{"name": "db", "postgres": {"table": "orders"}},
                   {"name": "cache", "redis": {"keyPrefix": "orders:"}}],
    }
    spec.update(changes)
    return DataProduct.model_validate({"apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct",
                                       "metadata": {"name": "orders", "namespace": "shop"}, "spec": spec})


def record_of(p: DataProduct, store: str, **extra: Any) -> VersionRecord:
    return VersionRecord(fingerprint(p, p.store(store)), product_json(p), store, **extra)


def test_shadow_table_names_fit_postgres_and_are_deterministic() -> None:
    assert shadow_table_name("orders", "0123abcd") == "orders__v0123abcd"
    long = "t" * 63
    name = shadow_table_name(long, "0123abcdg12")
    assert len(name) <= 63 and name.endswith("__v0123abcdg12")
    assert name == shadow_table_name(long, "0123abcdg12")
    assert shadow_table_name("a" * 60 + "x", "v") != shadow_table_name("a" * 60 + "y", "v")


def test_a_shadow_has_its_own_group_and_a_target_beside_the_live_one() -> None:
    p = product()
    db_spec, db = shadow_for(p, p.store("db"), "0123abcd")
    assert db.target == "orders__v0123abcd" and p.table(db_spec) == db.target
    assert p.consumer_group(db_spec) == db.group == "provisioner.shop.orders.db.v0123abcd"
    cache_spec, cache = shadow_for(p, p.store("cache"), "0123abcd")
    assert p.key_prefix(cache_spec) == cache.target
    assert cache.target.startswith(SHADOW_KEY_PREFIX) and not cache.target.startswith("orders:")
    assert Shadow.from_json(cache.to_json()) == cache


def test_no_key_prefix_may_start_where_shadows_live() -> None:
    with pytest.raises(ValueError, match="U\\+FFFF"):
        product(stores=[{"name": "cache", "redis": {"keyPrefix": "\uffffx"}}])


def test_versions_of_a_replay_are_new_generations() -> None:
    assert version_id("0123456789abcdef") == "01234567"
    assert version_id("0123456789abcdef", 2) == "01234567g2"


def test_start_decisions() -> None:
    p = product()
    store = p.store("db")
    assert decide_start(p, store, None).shadow is None  # new (or older than versions): record, no rebuild
    assert decide_start(p, store, record_of(p, "db")).shadow is None  # unchanged
    in_place = product(consumer={"batchSize": 10})
    assert [c.kind for c in compare(p, in_place) if c.store == "db"] == ["in place"]
    assert decide_start(in_place, in_place.store("db"), record_of(p, "db")).shadow is None
    changed = product(filter="true")
    plan = decide_start(changed, changed.store("db"), record_of(p, "db"))
    assert plan.shadow is not None and plan.generation == 0
    assert plan.shadow.version == fingerprint(changed, changed.store("db"))[:8]
    replay = decide_start(p, store, record_of(p, "db", generation=1, replay=ReplayRequest("latest", None)))
    assert replay.shadow is not None and replay.generation == 2 and replay.shadow.version.endswith("g2")
    assert replay.shadow_product is not None and replay.shadow_product.spec.source.start_from == "latest"


def test_the_recorded_spec_reads_back() -> None:
    p = product()
    assert record_of(p, "cache").product() == (p, p.store("cache"))
    assert VersionRecord("x", {"not": "a product"}, "db").product() is None


def test_until_is_content() -> None:
    p = product()
    bounded = with_overrides(p, until="2026-01-31T00:00:00Z")
    assert bounded.spec.source.until == "2026-01-31T00:00:00Z"
    assert fingerprint(bounded, bounded.store("db")) != fingerprint(p, p.store("db"))
    assert [c.kind for c in compare(p, bounded)] == ["rebuild", "rebuild"]
    with pytest.raises(ValueError, match="RFC 3339"):
        product(source={"topic": "orders", "until": "yesterday"})
