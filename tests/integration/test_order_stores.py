"""`spec.order` in the stores themselves, against real Redis and Postgres: an op older than its
key's last applied one is skipped and counted, within a batch and across batches; a delete's marker
keeps a late older upsert out until it expires; append mode flags `_stale`; reset and a version
switch carry the order values along."""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg
import pytest
import redis

from provisioner.pipeline.ops import Change, Delete, Upsert
from provisioner.pipeline.ordering import order_text
from provisioner.spec.models import DataProduct
from provisioner.stores.base import Stale, Store
from provisioner.stores.redis import ORDER_FIELD, ORDER_HORIZON_PREFIX, ORDER_KEY_PREFIX, ORDER_SEED_PREFIX
from provisioner.stores.registry import open_store
from provisioner.stores.versions import open_shadow_store, open_versions, shadow_for
from tests.integration import harness as h

pytestmark = pytest.mark.integration

NOW_MS = 4_102_444_800_000  # 2100-01-01: a delete stamped then keeps its marker for the whole test
LONG_AGO_MS = 1_000_000_000_000  # 2001: a delete stamped then has a marker that expired long ago

KINDS: dict[str, dict[str, Any]] = {
    "redis-hash": {"redis": {}},
    "redis-json": {"redis": {"structure": "json", "ttl": "1h"}},
    "postgres-upsert": {"postgres": {"columns": {"version": "bigint"}}},
}


def product_for(name: str, store: dict[str, Any], order: str = "int(event.version)") -> DataProduct:
    return DataProduct.model_validate({
        "apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct", "metadata": {"name": name},
        "spec": {"source": {"topic": "t"}, "fields": {"id": "event.id", "version": "event.version"}, "key": "id",
                 "order": order, "orderRetention": "1d", "stores": [{"name": "s", **store}]},
    })


def url_of(kind: str, redis_server: Any, postgres_server: Any) -> str:
    return str(redis_server.url if kind.startswith("redis") else postgres_server.url)


def opened(product: DataProduct, url: str) -> Store:
    store = open_store(product, product.spec.stores[0], url)
    store.reset()
    store.ensure_schema()
    return store


class Batches:
    """Applies batches of (kind, key, version[, timestamp]) ops at consecutive offsets of partition 0."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.offset = 0

    def apply(self, *ops: tuple[Any, ...]) -> Stale | None:
        changes = []
        for op in ops:
            kind, key, version, *stamp = op
            made = Upsert((key,), {"id": key, "version": version}, version) if kind == "u" else Delete((key,), version)
            changes.append(Change(0, self.offset, stamp[0] if stamp else NOW_MS, made))
            self.offset += 1
        prepared, rejected = self.store.prepare(changes)
        assert rejected == []
        start = self.offset - len(ops)
        return self.store.apply(prepared, {0: start or None}, {0: self.offset})


def rows(kind: str, product: DataProduct, url: str) -> dict[str, int]:
    """key -> version of the store's rows."""
    store_spec = product.spec.stores[0]
    if kind.startswith("redis"):
        structure = store_spec.redis.structure  # type: ignore[union-attr]
        contents = h.redis_contents(url, product.key_prefix(store_spec), structure)
        return {key: int(row["version"]) for key, row in contents.items()}
    return {row["id"]: int(row["version"]) for row in h.postgres_rows(url, "public", product.table(store_spec))}


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_highest_order_wins_within_and_across_batches(kind: str, redis_server: Any, postgres_server: Any) -> None:
    url = url_of(kind, redis_server, postgres_server)
    product = product_for(f"ord-{kind}", KINDS[kind])
    store = opened(product, url)
    batches = Batches(store)
    try:
        # Within one batch: a newer then an older version of a, a tie on b (the later record wins:
        # same version, so the row holds it either way), c deleted then upserted older.
        stale = batches.apply(("u", "a", 5), ("u", "a", 3), ("u", "b", 2), ("u", "b", 2), ("u", "c", 1),
                              ("d", "c", 4), ("u", "c", 2))
        assert stale == Stale(upserts=2, deletes=0)
        assert rows(kind, product, url) == {"a": 5, "b": 2}
        # Across batches: older upserts of a and b are stale, a newer one of b applies; an older
        # delete of a is stale; a late upsert of c older than its delete stays out.
        stale = batches.apply(("u", "a", 4), ("u", "b", 7), ("d", "a", 1), ("u", "c", 3))
        assert stale == Stale(upserts=2, deletes=1)
        assert rows(kind, product, url) == {"a": 5, "b": 7}
        # Equal or newer ops apply: a tie on a, a newer delete of b, a newer upsert of c.
        stale = batches.apply(("u", "a", 5), ("d", "b", 7), ("u", "c", 5))
        assert stale == Stale()
        assert rows(kind, product, url) == {"a": 5, "c": 5}
        # After the newer upsert of c, an upsert between the delete and it is stale too.
        assert batches.apply(("u", "c", 4)) == Stale(upserts=1)
    finally:
        store.close()


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_delete_marker_lasts_order_retention_after_the_delete(
    kind: str, redis_server: Any, postgres_server: Any
) -> None:
    url = url_of(kind, redis_server, postgres_server)
    product = product_for(f"ordr-{kind}", KINDS[kind])
    store = opened(product, url)
    batches = Batches(store)
    try:
        batches.apply(("u", "x", 5), ("u", "y", 5))
        # x deleted now (marker kept a day); y deleted by a record stamped in 2001 (marker expired).
        assert batches.apply(("d", "x", 6), ("d", "y", 6, LONG_AGO_MS)) == Stale()
        assert rows(kind, product, url) == {}
        # A late older upsert: kept out of x by its marker, let into y, whose marker is gone.
        assert batches.apply(("u", "x", 2), ("u", "y", 2)) == Stale(upserts=1)
        assert rows(kind, product, url) == {"y": 2}
        # The reset of a replay forgets the markers with the data.
        store.reset()
        store.ensure_schema()
        batches.offset = 0
        assert batches.apply(("u", "x", 1)) == Stale()
        assert rows(kind, product, url) == {"x": 1}
    finally:
        store.close()


def test_redis_order_values_live_in_the_row_and_in_delete_markers(redis_server: Any) -> None:
    product = product_for("ord-ttl", {"redis": {"ttl": "1h"}})
    json_product = product_for("ord-ttlj", {"redis": {"ttl": "1h", "structure": "json"}})
    store, json_store = opened(product, redis_server.url), opened(json_product, redis_server.url)
    client = redis.Redis.from_url(redis_server.url)
    try:
        batches = Batches(store)
        batches.apply(("u", "a", 3), ("d", "b", 9))
        Batches(json_store).apply(("u", "a", 3))
        # A hash row holds its order value as a field, and expires with it; no key beside it.
        assert client.hgetall(b"ord-ttl:a") == {b"id": b"a", b"version": b"3", ORDER_FIELD.encode(): order_text(3).encode()}
        assert 0 < client.pttl(b"ord-ttl:a") <= 3_600_000
        assert not client.exists(ORDER_KEY_PREFIX + b"ord-ttl:a")
        # A delete's marker expires a day after the delete record's timestamp (PXAT), whenever the
        # store wrote it; the store's horizon holds the highest marker's order value.
        deleted = ORDER_KEY_PREFIX + b"ord-ttl:b"
        assert client.pttl(deleted) > NOW_MS + 86_400_000 - time.time() * 1000 - 600_000
        assert client.get(ORDER_HORIZON_PREFIX + b"ord-ttl:") == order_text(9).encode()
        # A JSON document is the spec's alone: its order value is a key beside it, with its TTL.
        assert json.loads(client.get(b"ord-ttlj:a") or b"") == {"id": "a", "version": 3}
        assert client.get(ORDER_KEY_PREFIX + b"ord-ttlj:a") == order_text(3).encode()
        assert 0 < client.pttl(ORDER_KEY_PREFIX + b"ord-ttlj:a") <= 3_600_000
        # Readers scanning the prefix never see markers or the horizon; `inspect` shows the spec's fields.
        assert store.count() == 1
        assert store.inspect(1) == [{"_key": "ord-ttl:a", "id": "a", "version": "3"}]
        # An upsert whose fields are all null leaves no row, as without `order`; its order value
        # still keeps older ops out.
        empty = Change(0, batches.offset, NOW_MS, Upsert(("e",), {"id": None, "version": None}, 5))
        prepared, _ = store.prepare([empty])
        assert store.apply(prepared, {0: batches.offset}, {0: batches.offset + 1}) == Stale()
        batches.offset += 1
        assert not client.exists(b"ord-ttl:e") and 0 < client.pttl(ORDER_KEY_PREFIX + b"ord-ttl:e") <= 3_600_000
        assert batches.apply(("u", "e", 4)) == Stale(upserts=1)
        assert batches.apply(("u", "e", 6)) == Stale()
        # A key of another type under the prefix is replaced, as without `order`.
        client.set(b"ord-ttl:s", b"not a hash")
        assert batches.apply(("u", "s", 1)) == Stale()
        assert client.hgetall(b"ord-ttl:s")[b"version"] == b"1"
        # `explain` compares a row with what its record gives, the order field aside.
        for opened_store in (store, json_store):
            assert opened_store.holds_row(("a",), {"id": "a", "version": 3})  # type: ignore[attr-defined]
            assert not opened_store.holds_row(("a",), {"id": "a", "version": 4})  # type: ignore[attr-defined]
    finally:
        client.close()
        store.close()
        json_store.close()


def test_redis_ops_below_the_horizon_find_the_markers_and_earlier_order_values(redis_server: Any) -> None:
    """An op at or above the store's horizon skips the marker lookup; one below it reads the
    markers. A store without a horizon (written when an upsert's order value was a key beside the
    row) reads every marker, and applied deletes raise a seed, until its consumer starts and finds
    the horizon from its marker keys and the seed: their values hold throughout."""
    product = product_for("ord-hz", KINDS["redis-hash"])
    horizon, seed = ORDER_HORIZON_PREFIX + b"ord-hz:", ORDER_SEED_PREFIX + b"ord-hz:"
    store = opened(product, redis_server.url)
    client = redis.Redis.from_url(redis_server.url)
    batches = Batches(store)
    try:
        assert client.get(horizon) == b""  # no positions yet: no markers, set at once
        batches.apply(("u", "a", 1), ("d", "b", 8), ("d", "c", 4))
        # Below the horizon (8): c's marker (4) keeps 3 out, lets 5 in; b's keeps 7 out.
        assert batches.apply(("u", "c", 3), ("u", "b", 7)) == Stale(upserts=2)
        assert batches.apply(("u", "c", 5)) == Stale()
        # Re-created, c's row holds 5 while its marker (4) lasts: the higher of the two counts.
        assert batches.apply(("u", "c", 4)) == Stale(upserts=1)
        assert batches.apply(("d", "c", 4)) == Stale(deletes=1)
        assert rows("redis-hash", product, redis_server.url) == {"a": 1, "c": 5}
        # a's order value as a key beside its row, and no horizon: every op reads its marker.
        client.delete(horizon)
        client.hdel(b"ord-hz:a", ORDER_FIELD)
        client.set(ORDER_KEY_PREFIX + b"ord-hz:a", order_text(20))
        assert batches.apply(("u", "a", 19), ("u", "x", 30), ("d", "y", 25)) == Stale(upserts=1)
        assert rows("redis-hash", product, redis_server.url) == {"a": 1, "c": 5, "x": 30}
        assert client.get(horizon) is None and client.get(seed) == order_text(25).encode()
        # A seed raised by another replica's batch (40) is not lowered by a later delete (30); the
        # consumer's start takes it over the scan's highest marker (30).
        client.set(seed, order_text(40))
        assert batches.apply(("d", "z", 30)) == Stale()
        assert client.get(seed) == order_text(40).encode()
        store.ensure_schema()
        assert client.get(horizon) == order_text(40).encode() and not client.exists(seed)
        assert batches.apply(("u", "a", 19), ("u", "y", 24)) == Stale(upserts=2)
        assert batches.apply(("u", "y", 26)) == Stale()
        client.delete(horizon)
        store.ensure_schema()
        assert client.get(horizon) == order_text(30).encode()
        # A reset forgets the horizon with the markers.
        store.reset()
        assert not client.exists(horizon)
    finally:
        client.close()
        store.close()


def test_postgres_append_mode_appends_every_op_and_flags_stale(postgres_server: Any) -> None:
    product = product_for("ord-append", {"postgres": {"mode": "append", "table": "ord_append"}})
    store = opened(product, postgres_server.url)
    batches = Batches(store)
    try:
        assert batches.apply(("u", "a", 5), ("u", "a", 3), ("d", "b", 4)) == Stale(upserts=1)
        assert batches.apply(("u", "b", 2), ("u", "a", 6), ("u", "a", 6), ("d", "a", 1)) == Stale(1, 1)
        changelog = sorted(h.postgres_rows(postgres_server.url, "public", "ord_append"), key=lambda r: r["_offset"])
        assert [(r["_op"], r["id"], int(r["_provisioner_order"]), r["_stale"]) for r in changelog] == [
            ("upsert", "a", 5, False), ("upsert", "a", 3, True), ("delete", "b", 4, False),
            ("upsert", "b", 2, True), ("upsert", "a", 6, False), ("upsert", "a", 6, False), ("delete", "a", 1, True),
        ]
    finally:
        store.close()


def test_timestamps_order_by_their_nanoseconds(redis_server: Any) -> None:
    product = product_for("ord-ts", {"redis": {}}, order="timestamp(event.at)")
    store = opened(product, redis_server.url)
    try:
        from provisioner.pipeline.ops import Record
        from provisioner.pipeline.process import Pipeline

        pipeline = Pipeline(product)
        ats = ["2026-01-01T00:00:00.000000002Z", "2026-01-01T00:00:00.000000001Z", "1969-12-31T23:59:59Z"]
        changes = []
        for offset, at in enumerate(ats):
            value = json.dumps({"id": "k", "version": offset, "at": at}).encode()
            op = pipeline.process(Record("t", 0, offset, NOW_MS, None, value))
            assert isinstance(op, Upsert)
            changes.append(Change(0, offset, NOW_MS, op))
        prepared, _ = store.prepare(changes[:1])
        store.apply(prepared, {0: None}, {0: 1})
        prepared, _ = store.prepare(changes[1:])
        assert store.apply(prepared, {0: 1}, {0: 3}) == Stale(upserts=2)
        assert rows("redis", product, redis_server.url) == {"k": 0}
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["redis-hash", "postgres-upsert"])
def test_a_switch_makes_the_shadows_order_values_live(kind: str, redis_server: Any, postgres_server: Any) -> None:
    url = url_of(kind, redis_server, postgres_server)
    product = product_for(f"ords-{kind}", KINDS[kind])
    store_spec = product.spec.stores[0]
    live = opened(product, url)
    versions = open_versions(product, store_spec, url)
    try:
        Batches(live).apply(("u", "old", 9), ("d", "gone", 9))
        versions.record(product, store_spec)
        shadow_spec, shadow = shadow_for(product, store_spec, "v2")
        versions.begin(shadow)
        built = open_shadow_store(product, shadow_spec, url)
        built.ensure_schema()
        Batches(built).apply(("u", "a", 5), ("d", "b", 5))
        built.close()
        versions.switch((product, store_spec), product, store_spec, shadow, 1)
        live.close()
        live = open_store(product, store_spec, url)
        batches = Batches(live)
        batches.offset = 2
        # The shadow's order values hold in the live store; the old version's are gone with it.
        assert batches.apply(("u", "a", 4), ("u", "b", 4), ("u", "gone", 1)) == Stale(upserts=2)
        assert rows(kind, product, url) == {"a": 5, "gone": 1}
        if kind.startswith("redis"):  # the shadow's horizon went live with its markers
            with redis.Redis.from_url(url) as client:
                assert client.get(ORDER_HORIZON_PREFIX + product.key_prefix(store_spec).encode()) == order_text(5).encode()
        if kind.startswith("postgres"):
            with psycopg.connect(url, autocommit=True) as connection:
                groups = {g for (g,) in connection.execute("SELECT DISTINCT consumer FROM _provisioner_order_markers "
                                                           "WHERE consumer LIKE %s", (f"%{product.name}%",))}
                horizons = dict(connection.execute('SELECT consumer, "order" FROM _provisioner_order_horizon '
                                                   "WHERE consumer LIKE %s", (f"%{product.name}%",)).fetchall())
            assert groups == {product.consumer_group(store_spec)}
            # The live group's horizon covers the markers it took over; the shadow's is gone.
            assert list(horizons) == [product.consumer_group(store_spec)] and horizons[product.consumer_group(store_spec)] >= 5
    finally:
        versions.close()
        live.close()


def test_postgres_keys_that_name_one_row_resolve_by_order(postgres_server: Any) -> None:
    product = product_for("ord-int", {"postgres": {"table": "ord_int", "columns": {"id": "integer"}}})
    store = opened(product, postgres_server.url)
    try:
        changes = [Change(0, 0, NOW_MS, Upsert((1,), {"id": 1, "version": 5}, 5)),
                   Change(0, 1, NOW_MS, Upsert(("01",), {"id": "01", "version": 3}, 3))]
        prepared, rejected = store.prepare(changes)
        assert rejected == []
        assert store.apply(prepared, {0: None}, {0: 2}) == Stale(upserts=1)
        assert [(r["id"], r["version"]) for r in h.postgres_rows(postgres_server.url, "public", "ord_int")] == [(1, "5")]
    finally:
        store.close()


@pytest.mark.parametrize("kind", list(KINDS))
def test_batches_larger_than_the_scripts_chunks_replace_rows_whole(
    kind: str, redis_server: Any, postgres_server: Any
) -> None:
    """Redis reads order values and deletes rows per 500 keys of a batch: over several such chunks,
    stale ops stay out, an applied upsert replaces its row whole (a field now null is gone) and an
    applied delete deletes and leaves its marker."""
    url = url_of(kind, redis_server, postgres_server)
    product = DataProduct.model_validate({
        "apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct", "metadata": {"name": f"ordc-{kind}"},
        "spec": {"source": {"topic": "t"}, "fields": {"id": "event.id", "version": "event.version",
                                                      "note": "event.note"},
                 "key": "id", "order": "int(event.version)", "orderRetention": "1d",
                 "stores": [{"name": "s", **KINDS[kind]}]},
    })
    store = opened(product, url)
    offset = 0

    def apply(*ops: tuple[str, str, int, str | None]) -> Stale | None:
        nonlocal offset
        changes = [Change(0, offset + i, NOW_MS, Upsert((key,), {"id": key, "version": version, "note": note}, version)
                          if kind_ == "u" else Delete((key,), version))
                   for i, (kind_, key, version, note) in enumerate(ops)]
        prepared, rejected = store.prepare(changes)
        assert rejected == []
        stale = store.apply(prepared, {0: offset or None}, {0: offset + len(ops)})
        offset += len(ops)
        return stale

    def contents() -> dict[str, tuple[int, str | None]]:
        store_spec = product.spec.stores[0]
        if kind.startswith("redis"):
            found = h.redis_contents(url, product.key_prefix(store_spec), store_spec.redis.structure)  # type: ignore[union-attr]
        else:
            found = {row["id"]: row for row in h.postgres_rows(url, "public", product.table(store_spec))}
        return {key: (int(row["version"]), row.get("note")) for key, row in found.items()}

    keys = [f"k{i}" for i in range(1_200)]
    try:
        assert apply(*(("u", key, 5, "first") for key in keys)) == Stale()
        # Per key, by its index mod 3: an older upsert (stale), a newer one without the note, a
        # newer delete; then keys never seen, deleted.
        ops = [("u", key, 4, "older") if i % 3 == 0 else ("u", key, 6, None) if i % 3 == 1 else ("d", key, 6, None)
               for i, key in enumerate(keys)]
        ops += [("d", f"new{i}", 3, None) for i in range(100)]
        assert apply(*ops) == Stale(upserts=400)
        expected = {key: (5, "first") if i % 3 == 0 else (6, None) for i, key in enumerate(keys) if i % 3 != 2}
        assert contents() == expected
        # Late older upserts of every deleted key stay out (their markers), newer ones get in.
        late = [("u", key, 5, "late") for i, key in enumerate(keys) if i % 3 == 2]
        late += [("u", f"new{i}", 2 if i % 2 else 3, "late") for i in range(100)]
        assert apply(*late) == Stale(upserts=400 + 50)
        assert contents() == {**expected, **{f"new{i}": (3, "late") for i in range(0, 100, 2)}}
        if kind.startswith("redis"):
            # An upsert's order value lives as long as its row, in every chunk: in the hash, or
            # beside the JSON document with its TTL.
            client = redis.Redis.from_url(url)
            try:
                ttls = [client.pttl(ORDER_KEY_PREFIX + f"ordc-{kind}:{key}".encode()) for key in ("k1", "k1198", "new98")]
            finally:
                client.close()
            if kind == "redis-hash":  # in the row; a re-created key (new98) keeps its marker, too
                assert ttls[:2] == [-2, -2] and ttls[2] > 0
            else:
                assert all(0 < ttl <= 3_600_000 for ttl in ttls)
    finally:
        store.close()


def test_postgres_marker_probes_are_planned_for_each_batch(postgres_server: Any) -> None:
    """The session prepares the statements it runs often, but never one that probes the delete
    markers: a generic plan made while the markers table was small could scan it whole for every
    row of every later batch once it is not."""
    product = product_for("ord-plan", KINDS["postgres-upsert"])
    store = opened(product, postgres_server.url)
    batches = Batches(store)
    try:
        for version in range(1, 13):
            batches.apply(("u", f"a{version}", version), ("d", f"a{version - 1}", version))
        connection = store._connect()  # type: ignore[attr-defined]
        prepared = [text for (text,) in connection.execute("SELECT statement FROM pg_prepared_statements")]
        assert any("ON CONFLICT" in text and "_provisioner_order_markers" in text for text in prepared)
        assert not any("EXISTS" in text for text in prepared)
        assert rows("postgres-upsert", product, postgres_server.url) == {"a12": 12}
    finally:
        store.close()


def test_postgres_a_new_groups_markers_are_probed_row_by_row(postgres_server: Any) -> None:
    """The markers table's statistics know nothing of a new consumer group (one marker, they
    guess): its upserts still probe each row's marker by the primary key, never read all the
    group's markers once and test each against every row of the batch (quadratic as it deletes)."""
    url = postgres_server.url
    older = opened(product_for("ord-stats-a", KINDS["postgres-upsert"]), url)
    product = product_for("ord-stats-b", KINDS["postgres-upsert"])
    fresh = opened(product, url)
    try:
        Batches(older).apply(*(("d", f"k{n}", 1) for n in range(3000)))
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("ANALYZE _provisioner_order_markers")
        batches = Batches(fresh)
        batches.apply(*(("d", f"k{n}", 1) for n in range(300)))
        prepared, _ = fresh.prepare([Change(0, 0, NOW_MS, Upsert((f"k{n}",), {"id": f"k{n}", "version": 2}, 2))
                                     for n in range(600)])
        connection = fresh._connect()  # type: ignore[attr-defined]
        sql, consumer = fresh._sql, fresh._consumer  # type: ignore[attr-defined]
        with connection.transaction(force_rollback=True), connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_hashjoin = off")
            cursor.execute("SET LOCAL enable_mergejoin = off")
            with cursor.copy(sql["copy_batch"]) as copy:
                for row in prepared:
                    copy.write_row(row)
            plan = "\n".join(line for (line,) in cursor.execute("EXPLAIN " + sql["upsert"], (consumer, consumer)))
        assert "SubPlan" in plan and "Materialize" not in plan, plan
        assert any("Index Cond" in line and "(key = b." in line for line in plan.splitlines()), plan
        assert batches.apply(("u", "k1", 0), ("u", "k2", 2)) == Stale(1, 0)
        assert rows("postgres-upsert", product, url) == {"k2": 2}
    finally:
        older.close()
        fresh.close()
