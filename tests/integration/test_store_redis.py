"""The Redis store against a real Redis server: layouts, TTL, fencing, positions, reset, outages."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
import redis

from provisioner.pipeline.ops import Change, Delete, Upsert
from provisioner.spec.models import DataProduct
from provisioner.stores.base import PositionConflict, StoreError
from provisioner.stores.redis import POSITIONS_KEY_PREFIX, RedisStore
from provisioner.stores.registry import open_store
from tests.integration.racing import race_round

pytestmark = pytest.mark.integration


def make_store(url: str, name: str, **redis_spec: Any) -> RedisStore:
    product = DataProduct.model_validate({
        "apiVersion": "provisioner.dev/v1alpha1",
        "kind": "DataProduct",
        "metadata": {"name": name},
        "spec": {
            "source": {"topic": "orders.v1"},
            "fields": {"id": "event.id", "customer": "event.customer", "total": "event.total",
                       "tags": "event.tags"},
            "key": "id",
            "stores": [{"name": "cache", "redis": redis_spec}],
        },
    })
    store = open_store(product, product.store("cache"), url)
    assert isinstance(store, RedisStore)
    try:
        store.ensure_schema()
    except BaseException:
        store.close()
        raise
    return store


def upsert(offset: int, key: str, partition: int = 0, **row: Any) -> Change:
    return Change(partition, offset, 1_700_000_000_000, Upsert((key,), {"id": key, **row}))


def delete(offset: int, key: str, partition: int = 0) -> Change:
    return Change(partition, offset, 1_700_000_000_000, Delete((key,)))


def apply(store: RedisStore, changes: list[Change], start: dict[int, int | None], end: dict[int, int]) -> None:
    prepared, rejected = store.prepare(changes)
    assert rejected == []
    store.apply(prepared, start, end)


@pytest.fixture
def client(redis_server):
    connection = redis.Redis.from_url(redis_server.url)
    yield connection
    connection.close()


def test_hash_upsert_replaces_the_whole_hash_and_delete_removes_it(redis_server, client):
    store = make_store(redis_server.url, "r-hash")
    apply(store, [upsert(0, "o1", customer="c1", total=12.5, tags=["a", "b"]),
                  upsert(1, "o2", customer="c2", total=3)], {0: None}, {0: 2})
    assert client.hgetall("r-hash:o1") == {b"id": b"o1", b"customer": b"c1", b"total": b"12.5",
                                           b"tags": b'["a","b"]'}
    # customer and tags become null: they disappear, they are not kept from the old hash.
    apply(store, [upsert(2, "o1", total=True), delete(3, "o2")], {0: 2}, {0: 4})
    assert client.hgetall("r-hash:o1") == {b"id": b"o1", b"total": b"true"}
    assert not client.exists("r-hash:o2")
    assert client.ttl("r-hash:o1") == -1
    store.close()


def test_a_row_of_nulls_leaves_no_key(redis_server, client):
    store = make_store(redis_server.url, "r-nulls")
    client.hset("r-nulls:x", "old", "1")
    store.apply(store.prepare([Change(0, 0, 0, Upsert(("x",), {}))])[0], {0: None}, {0: 1})
    assert not client.exists("r-nulls:x")
    store.close()


def test_json_structure_sets_a_compact_object_with_nulls(redis_server, client):
    store = make_store(redis_server.url, "r-json", structure="json", keyPrefix="j:")
    apply(store, [upsert(0, "o1", customer="c1", total=1.5, tags={"vip": True})], {0: None}, {0: 1})
    assert client.get("j:o1") == b'{"id":"o1","customer":"c1","total":1.5,"tags":{"vip":true}}'
    assert json.loads(client.get("j:o1")) == {"id": "o1", "customer": "c1", "total": 1.5, "tags": {"vip": True}}
    apply(store, [upsert(1, "o1", customer="ü")], {0: 1}, {0: 2})
    assert json.loads(client.get("j:o1")) == {"id": "o1", "customer": "ü", "total": None, "tags": None}
    apply(store, [delete(2, "o1")], {0: 2}, {0: 3})
    assert not client.exists("j:o1")
    store.close()


@pytest.mark.parametrize("structure", ["hash", "json"])
def test_ttl_is_reapplied_on_every_upsert(redis_server, client, structure):
    store = make_store(redis_server.url, f"r-ttl-{structure}", structure=structure, ttl="1h")
    key = f"r-ttl-{structure}:o1"
    apply(store, [upsert(0, "o1", customer="c1")], {0: None}, {0: 1})
    assert 3590 <= client.ttl(key) <= 3600
    client.persist(key)
    assert client.ttl(key) == -1
    apply(store, [upsert(1, "o1", customer="c2")], {0: 1}, {0: 2})
    assert 3590 <= client.ttl(key) <= 3600
    store.close()


def test_ops_on_one_key_in_a_batch_end_as_if_applied_in_order(redis_server, client):
    store = make_store(redis_server.url, "r-order")
    changes = [upsert(0, "a", customer="1"), delete(1, "a"), upsert(2, "b", customer="1"),
               upsert(3, "b", customer="2"), upsert(4, "c", customer="1"), delete(5, "c"),
               upsert(6, "a", total=9)]
    prepared, _ = store.prepare(changes)
    assert len(prepared) == 3
    store.apply(prepared, {0: None}, {0: 7})
    assert client.hgetall("r-order:a") == {b"id": b"a", b"total": b"9"}
    assert client.hgetall("r-order:b") == {b"id": b"b", b"customer": b"2"}
    assert not client.exists("r-order:c")
    store.close()


def test_positions_read_back_and_never_collide_with_data(redis_server, client):
    # An empty prefix scans the whole database: use one of its own, empty, so other tests' keys
    # do not crowd the scan.
    url = redis_server.url.rsplit("/", 1)[0] + "/9"
    redis.Redis.from_url(url).flushdb()
    store = make_store(url, "r-positions", keyPrefix="")
    assert store.read_positions() == {}
    apply(store, [upsert(7, "p0"), upsert(3, "p2", partition=2)], {0: None, 2: None}, {0: 8, 2: 4})
    assert store.read_positions() == {0: 8, 2: 4}
    assert store.positions_key.startswith(POSITIONS_KEY_PREFIX)
    # One key per partition, so replicas owning different partitions never fence each other out.
    assert redis.Redis.from_url(url).get(store.partition_key(2)) == b"4"
    assert store.partition_key(0).startswith(b"\xff")
    # With an empty prefix every key matches the scan: positions are still not data.
    rows = store.inspect(1000)
    assert all(not row["_key"].startswith("\ufffd") for row in rows)
    assert {"p0", "p2"} <= {row["_key"] for row in rows}
    apply(store, [], {0: 8}, {0: 10})
    assert store.read_positions() == {0: 10, 2: 4}
    store.close()


def test_a_stale_start_is_a_conflict_and_writes_nothing(redis_server, client):
    first = make_store(redis_server.url, "r-fence")
    zombie = make_store(redis_server.url, "r-fence")
    zombie_batch, _ = zombie.prepare([upsert(0, "old", customer="zombie")])
    apply(first, [upsert(0, "new", customer="live")], {0: None}, {0: 1})
    with pytest.raises(PositionConflict):
        zombie.apply(zombie_batch, {0: None}, {0: 1})
    assert not client.exists("r-fence:old")
    apply(first, [upsert(1, "new", customer="live2")], {0: 1}, {0: 2})
    with pytest.raises(PositionConflict):
        zombie.apply(zombie_batch, {0: 1}, {0: 2})
    assert not client.exists("r-fence:old")
    assert first.read_positions() == zombie.read_positions() == {0: 2}
    # The zombie's connection is still usable after a conflict.
    zombie.apply(zombie_batch, {0: 2}, {0: 3})
    assert client.hget("r-fence:old", "customer") == b"zombie"
    first.close()
    zombie.close()


def test_a_partition_only_in_start_is_checked_too(redis_server):
    store = make_store(redis_server.url, "r-fence-extra")
    apply(store, [], {0: None, 1: None}, {0: 1, 1: 1})
    with pytest.raises(PositionConflict):
        store.apply([], {0: 1, 1: 5}, {0: 2})
    assert store.read_positions() == {0: 1, 1: 1}
    store.close()


def test_values_that_are_not_utf8_are_rejected_before_io(redis_server):
    store = make_store(redis_server.url, "r-reject")
    prepared, rejected = store.prepare([upsert(0, "ok"), upsert(1, "bad", customer="\ud800"),
                                        upsert(2, "\udfff")])
    assert len(prepared) == 1
    assert [r.change.offset for r in rejected] == [1, 2]
    assert all(r.dead_letter.stage == "store" for r in rejected)
    assert "customer" in rejected[0].dead_letter.message
    json_store = make_store(redis_server.url, "r-reject-json", structure="json")
    prepared, rejected = json_store.prepare([upsert(0, "nan", total=float("nan"))])
    assert prepared == []
    assert "NaN" in rejected[0].dead_letter.message
    store.close()
    json_store.close()


def test_hostile_prefix_is_matched_literally(redis_server, client):
    prefix = "h*[a]?\\:"
    store = make_store(redis_server.url, "r-hostile", keyPrefix=prefix)
    client.set("hXaY\\:other", "not ours")
    client.set("h*[a]?other", "not ours either")
    apply(store, [upsert(0, "k1", customer="c"), upsert(1, "k2")], {0: None}, {0: 2})
    assert client.hget(prefix + "k1", "customer") == b"c"
    assert sorted(row["_key"] for row in store.inspect(10)) == [prefix + "k1", prefix + "k2"]
    assert store.count() == 2
    store.reset()
    assert client.get("hXaY\\:other") == b"not ours"
    assert client.get("h*[a]?other") == b"not ours either"
    assert not client.exists(prefix + "k1")
    store.close()


def test_inspect_decodes_hashes_and_json(redis_server):
    hashes = make_store(redis_server.url, "r-inspect-h")
    documents = make_store(redis_server.url, "r-inspect-j", structure="json")
    for store in (hashes, documents):
        apply(store, [upsert(0, "b", total=2), upsert(1, "a", total=1)], {0: None}, {0: 2})
    assert hashes.inspect(10) == [{"_key": "r-inspect-h:a", "id": "a", "total": "1"},
                                  {"_key": "r-inspect-h:b", "id": "b", "total": "2"}]
    [row] = documents.inspect(1)
    assert row in ({"_key": "r-inspect-j:a", "id": "a", "customer": None, "total": 1, "tags": None},
                   {"_key": "r-inspect-j:b", "id": "b", "customer": None, "total": 2, "tags": None})
    hashes.close()
    documents.close()


def test_reset_deletes_keys_and_positions_only_under_the_prefix(redis_server, client):
    store = make_store(redis_server.url, "r-reset")
    neighbour = make_store(redis_server.url, "r-reset-2")
    apply(store, [upsert(i, f"k{i}") for i in range(1200)], {0: None}, {0: 1200})
    apply(neighbour, [upsert(0, "k0")], {0: None}, {0: 1})
    assert store.count() == 1200
    store.reset()
    assert store.count() == 0
    assert store.read_positions() == {}
    assert neighbour.count() == 1
    assert neighbour.read_positions() == {0: 1}
    apply(store, [upsert(0, "k0")], {0: None}, {0: 1})
    assert store.count() == 1
    store.close()
    neighbour.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_server_down_is_a_store_error_without_the_password():
    url = f"redis://:s3cretpassw0rd@127.0.0.1:{_closed_port()}/0"
    store = _unconnected(url)
    for call in (store.ensure_schema, store.read_positions, lambda: store.apply([], {0: None}, {0: 1}),
                 lambda: store.inspect(5), store.count, store.reset):
        with pytest.raises(StoreError) as caught:
            call()
        assert "s3cretpassw0rd" not in str(caught.value)
        assert "***" in str(caught.value)


def _unconnected(url: str) -> RedisStore:
    product = DataProduct.model_validate({
        "apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct", "metadata": {"name": "r-down"},
        "spec": {"source": {"topic": "t"}, "fields": {"id": "event.id"}, "key": "id",
                 "stores": [{"name": "cache", "redis": {}}]},
    })
    return RedisStore(product, product.store("cache"), url, timeout=2)


def test_reconnects_after_the_server_comes_back(redis_server):
    store = make_store(redis_server.url, "r-restart")
    apply(store, [upsert(0, "k0")], {0: None}, {0: 1})
    redis_server.stop()
    try:
        with pytest.raises(StoreError):
            apply(store, [upsert(1, "k1")], {0: 1}, {0: 2})
    finally:
        redis_server.start()
    positions = store.read_positions()
    apply(store, [upsert(1, "k1")], {0: positions.get(0)}, {0: 2})
    assert store.read_positions() == {0: 2}
    store.close()


def test_racing_consumers_one_wins_each_round(redis_server, client):
    stores = [make_store(redis_server.url, "r-race") for _ in range(6)]
    for round_ in range(5):
        outcomes = race_round(stores, round_, upsert)
        winners = [o for o in outcomes if o != "conflict"]
        assert len(winners) == 1, outcomes
        assert client.exists(f"r-race:{winners[0]}")
        assert stores[0].count() == round_ + 1
    for store in stores:
        store.close()
