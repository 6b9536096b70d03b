"""The Postgres store against a real server: modes, conversions, fencing, schema evolution, outages."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from provisioner.pipeline.ops import Change, Delete, Upsert
from provisioner.spec.models import DataProduct
from provisioner.spec.names import quote_identifier
from provisioner.stores.base import PositionConflict, StoreError, StoreSchemaError
from provisioner.stores.postgres import PostgresStore
from provisioner.stores.registry import open_store
from tests.integration.racing import race_round

pytestmark = pytest.mark.integration

TS = 1_706_702_400_000  # 2024-01-31T12:00:00Z


def make_product(name: str, fields: dict[str, str] | None = None, key: Any = "id",
                 **postgres: Any) -> DataProduct:
    return DataProduct.model_validate({
        "apiVersion": "provisioner.dev/v1alpha1",
        "kind": "DataProduct",
        "metadata": {"name": name},
        "spec": {
            "source": {"topic": "orders.v1"},
            "fields": fields or {"id": "event.id", "customer": "event.customer", "total": "event.total"},
            "key": key,
            "stores": [{"name": "db", "postgres": postgres}],
        },
    })


def make_store(url: str, name: str, fields: dict[str, str] | None = None, key: Any = "id",
               **postgres: Any) -> PostgresStore:
    product = make_product(name, fields, key, **postgres)
    store = open_store(product, product.store("db"), url)
    assert isinstance(store, PostgresStore)
    try:
        store.ensure_schema()
    except BaseException:
        store.close()
        raise
    return store


def upsert(offset: int, key: Any, partition: int = 0, **row: Any) -> Change:
    return Change(partition, offset, TS + offset, Upsert((key,), {"id": key, **row}))


def delete(offset: int, key: Any, partition: int = 0) -> Change:
    return Change(partition, offset, TS + offset, Delete((key,)))


def apply(store: PostgresStore, changes: list[Change], start: dict[int, int | None],
          end: dict[int, int]) -> None:
    prepared, rejected = store.prepare(changes)
    assert rejected == []
    store.apply(prepared, start, end)


@pytest.fixture
def sql(postgres_server):
    with psycopg.connect(postgres_server.url, autocommit=True) as connection:
        yield lambda query, *params: connection.execute(query, params).fetchall()


def test_upsert_mode_inserts_updates_and_deletes(postgres_server, sql):
    store = make_store(postgres_server.url, "pg-upsert", columns={"total": "numeric"})
    apply(store, [upsert(0, "o1", customer="c1", total=12.5), upsert(1, "o2", customer="c2", total="3.10")],
          {0: None}, {0: 2})
    assert sql("SELECT id, customer, total FROM pg_upsert ORDER BY id") == [
        ("o1", "c1", Decimal("12.5")), ("o2", "c2", Decimal("3.10"))]
    apply(store, [upsert(2, "o1", total=1), delete(3, "o2"), delete(4, "never-there")], {0: 2}, {0: 5})
    assert sql("SELECT id, customer, total FROM pg_upsert ORDER BY id") == [("o1", None, Decimal("1"))]
    assert store.read_positions() == {0: 5}
    assert store.count() == 1
    store.close()


def test_ops_on_one_key_in_a_batch_end_as_if_applied_in_order(postgres_server, sql):
    store = make_store(postgres_server.url, "pg-order")
    changes = [upsert(0, "a", customer="1"), delete(1, "a"), upsert(2, "b", customer="1"),
               upsert(3, "b", customer="2"), upsert(4, "c", customer="1"), delete(5, "c"),
               upsert(6, "a", customer="3")]
    prepared, _ = store.prepare(changes)
    assert len(prepared) == 3
    store.apply(prepared, {0: None}, {0: 7})
    assert sql("SELECT id, customer FROM pg_order ORDER BY id") == [("a", "3"), ("b", "2")]
    store.close()


def test_equal_keys_in_different_spellings_coalesce(postgres_server, sql):
    store = make_store(postgres_server.url, "pg-keyspell", fields={"id": "event.id", "at": "event.at"},
                       key=["id", "at"], columns={"id": "numeric", "at": "timestamptz"})
    changes = [Change(0, 0, TS, Upsert(("1.0", "2026-01-01T01:00:00+01:00"),
                                       {"id": "1.0", "at": "2026-01-01T01:00:00+01:00"})),
               Change(0, 1, TS, Upsert((1, "2026-01-01T00:00:00Z"), {"id": 1, "at": "2026-01-01T00:00:00Z"}))]
    prepared, _ = store.prepare(changes)
    assert len(prepared) == 1
    store.apply(prepared, {0: None}, {0: 2})
    assert sql("SELECT count(*) FROM pg_keyspell") == [(1,)]
    store.close()


def test_a_key_only_table_ignores_repeated_upserts(postgres_server, sql):
    store = make_store(postgres_server.url, "pg-keyonly", fields={"id": "event.id"})
    apply(store, [upsert(0, "a")], {0: None}, {0: 1})
    apply(store, [upsert(1, "a"), upsert(2, "b")], {0: 1}, {0: 3})
    assert sql("SELECT id FROM pg_keyonly ORDER BY id") == [("a",), ("b",)]
    store.close()


def test_append_mode_keeps_every_change(postgres_server, sql):
    store = make_store(postgres_server.url, "pg-append", mode="append", columns={"total": "double precision"})
    apply(store, [upsert(10, "o1", customer="c1", total=1.5), upsert(11, "o1", customer="c2"),
                  delete(12, "o1"), upsert(5, "o9", partition=3)], {0: None, 3: None}, {0: 13, 3: 6})
    rows = sql("SELECT id, customer, total, _op, _partition, _offset, _timestamp FROM pg_append "
               "ORDER BY _partition, _offset")
    stamp = datetime(2024, 1, 31, 12, 0, tzinfo=UTC)
    assert [row[:6] for row in rows] == [
        ("o1", "c1", 1.5, "upsert", 0, 10), ("o1", "c2", None, "upsert", 0, 11),
        ("o1", None, None, "delete", 0, 12), ("o9", None, None, "upsert", 3, 5)]
    assert rows[0][6] - stamp == datetime(2024, 1, 31, 12, 0, 0, 10_000, tzinfo=UTC) - stamp
    assert sql("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
               "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'pg_append'::regclass AND i.indisprimary "
               "ORDER BY a.attname") == [("_offset",), ("_partition",)]
    assert store.read_positions() == {0: 13, 3: 6}
    store.close()


TYPED_FIELDS = {name: f"event.{name}" for name in
                ("id", "t", "i", "b", "d", "n", "flag", "doc", "at", "day", "u")}
TYPED_COLUMNS = {"i": "integer", "b": "bigint", "d": "double precision", "n": "numeric", "flag": "boolean",
                 "doc": "jsonb", "at": "timestamptz", "day": "date", "u": "uuid"}


def test_every_column_type_converts_and_bad_values_are_rejected(postgres_server, sql):
    store = make_store(postgres_server.url, "pg-types", fields=TYPED_FIELDS, columns=TYPED_COLUMNS)
    good = upsert(0, "good", t={"x": [1, 2]}, i="42", b=2**40, d="2.5e3", n=0.1, flag="TRUE",
                  doc={"a": [1, None, "é"]}, at="2026-01-31T12:00:00+02:00", day="2024-02-29",
                  u="123E4567-E89B-12D3-A456-426614174000")
    native = upsert(1, "native", i=7.0, b=-1, d=3, n="19.90", flag=False, doc="just text",
                    at=datetime(2026, 1, 1, tzinfo=UTC), day=datetime(2026, 1, 1, 23, tzinfo=UTC),
                    u=str(uuid.UUID(int=5)))
    bad = [upsert(2, "bad-int", i="4.5"), upsert(3, "bad-range", i=2**31), upsert(4, "bad-bool", flag=1),
           upsert(5, "bad-ts", at="2026-01-31"), upsert(6, "bad-date", day="2024-02-30"),
           upsert(7, "bad-uuid", u="nope"), upsert(8, "bad-json", doc=float("nan")),
           upsert(9, "bad-text", t="nul\x00byte"), upsert(10, "bad-double", d=True),
           upsert(11, "bad-numeric", n="1,5")]
    prepared, rejected = store.prepare([good, native, *bad])
    assert [r.change for r in rejected] == bad
    assert all(r.dead_letter.stage == "store" for r in rejected)
    assert rejected[0].dead_letter.message == "field 'i': \"4.5\" is not a valid integer"
    assert rejected[1].dead_letter.message.startswith("field 'i': ")
    store.apply(prepared, {0: None}, {0: 12})
    assert store.read_positions() == {0: 12}
    rows = {row["id"]: row for row in store.inspect(10)}
    assert set(rows) == {"good", "native"}
    assert rows["good"] == {
        "id": "good", "t": '{"x":[1,2]}', "i": 42, "b": 2**40, "d": 2500.0, "n": Decimal("0.1"), "flag": True,
        "doc": {"a": [1, None, "é"]}, "at": datetime(2026, 1, 31, 10, 0, tzinfo=UTC), "day": date(2024, 2, 29),
        "u": uuid.UUID("123e4567-e89b-12d3-a456-426614174000")}
    assert rows["native"]["i"] == 7
    assert rows["native"]["n"] == Decimal("19.90")
    assert str(rows["native"]["n"]) == "19.90"
    assert rows["native"]["doc"] == "just text"
    assert rows["native"]["day"] == date(2026, 1, 1)
    assert sql("SELECT d FROM pg_types WHERE id = 'native'") == [(3.0,)]
    store.close()


def test_positions_read_back_per_partition_and_consumer(postgres_server, sql):
    store = make_store(postgres_server.url, "pg-positions")
    other = make_store(postgres_server.url, "pg-positions-2")
    assert store.read_positions() == {}
    apply(store, [upsert(4, "a", partition=1)], {1: None, 2: None}, {1: 5, 2: 0})
    apply(other, [], {0: None}, {0: 99})
    assert store.read_positions() == {1: 5, 2: 0}
    assert other.read_positions() == {0: 99}
    assert sql('SELECT consumer, topic, "partition", next_offset FROM _provisioner_positions '
               "WHERE consumer = 'provisioner.default.pg-positions.db' ORDER BY 3") == [
        ("provisioner.default.pg-positions.db", "orders.v1", 1, 5),
        ("provisioner.default.pg-positions.db", "orders.v1", 2, 0)]
    store.close()
    other.close()


def test_a_stale_start_is_a_conflict_and_writes_nothing(postgres_server, sql):
    live = make_store(postgres_server.url, "pg-fence")
    zombie = make_store(postgres_server.url, "pg-fence")
    zombie_batch, _ = zombie.prepare([upsert(0, "zombie")])
    apply(live, [upsert(0, "live")], {0: None}, {0: 1})
    with pytest.raises(PositionConflict):
        zombie.apply(zombie_batch, {0: None}, {0: 1})
    apply(live, [upsert(1, "live2")], {0: 1}, {0: 2})
    with pytest.raises(PositionConflict):
        zombie.apply(zombie_batch, {0: 1}, {0: 2})
    with pytest.raises(PositionConflict):  # one good partition does not save a batch with a bad one
        zombie.apply(zombie_batch, {0: 2, 1: 7}, {0: 3, 1: 8})
    assert sql("SELECT id FROM pg_fence ORDER BY id") == [("live",), ("live2",)]
    assert zombie.read_positions() == {0: 2}
    zombie.apply(zombie_batch, {0: 2}, {0: 3})  # usable again after conflicts
    assert sql("SELECT count(*) FROM pg_fence") == [(3,)]
    live.close()
    zombie.close()


def test_a_zombie_blocks_on_the_live_transaction_then_fails(postgres_server, sql):
    zombie = make_store(postgres_server.url, "pg-zombie")
    apply(zombie, [], {0: None}, {0: 10})
    zombie_batch, _ = zombie.prepare([upsert(10, "zombie")])
    outcome: list[BaseException | None] = []
    with psycopg.connect(postgres_server.url) as live:
        live.execute("UPDATE _provisioner_positions SET next_offset = 20 WHERE consumer = %s",
                     ("provisioner.default.pg-zombie.db",))

        def run() -> None:
            try:
                zombie.apply(zombie_batch, {0: 10}, {0: 11})
                outcome.append(None)
            except BaseException as error:  # handed to the main thread
                outcome.append(error)

        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(0.5)
        assert outcome == []  # blocked on the positions row lock
        live.commit()
        thread.join(10)
    assert len(outcome) == 1
    assert isinstance(outcome[0], PositionConflict)
    assert sql("SELECT count(*) FROM pg_zombie") == [(0,)]
    assert zombie.read_positions() == {0: 20}
    zombie.close()


def test_a_frozen_transaction_holding_the_positions_blocks_nobody_for_long(postgres_server, sql):
    store = make_store(postgres_server.url, "pg-frozen")
    apply(store, [], {0: None}, {0: 10})
    with psycopg.connect(postgres_server.url) as frozen:
        # A consumer paused mid-transaction: it locked its positions row, then stopped talking.
        frozen.execute("UPDATE _provisioner_positions SET next_offset = next_offset WHERE consumer = %s",
                       ("provisioner.default.pg-frozen.db",))
        started = time.monotonic()
        with pytest.raises(StoreError, match="lock timeout"):
            apply(store, [upsert(10, "live")], {0: 10}, {0: 11})
        assert time.monotonic() - started < 30
        frozen.rollback()
    # Once the lock is gone the same batch commits.
    apply(store, [upsert(10, "live")], {0: 10}, {0: 11})
    assert store.read_positions() == {0: 11}
    store.close()


def test_a_zombie_paused_mid_copy_is_ended_by_the_consumer_it_blocks(postgres_server, sql, monkeypatch):
    """Paused mid-COPY, a session holds its positions' row locks and the server waits for its rows,
    processing neither statement nor idle timeout: the consumer it blocks ends it after a lock
    timeout (same consumer group, waiting on its client inside a transaction), then commits."""
    import provisioner.stores.postgres as postgres_store

    monkeypatch.setattr(postgres_store, "STUCK_SESSION_MS", 1000)
    store = make_store(postgres_server.url, "pg-midcopy")
    apply(store, [], {0: None}, {0: 10})
    consumer = "provisioner.default.pg-midcopy.db"
    zombie = psycopg.connect(postgres_server.url, application_name=f"provisioner {consumer}")
    other = psycopg.connect(postgres_server.url, application_name="someone else")
    try:
        zombie.execute("UPDATE _provisioner_positions SET next_offset = next_offset WHERE consumer = %s",
                       (consumer,))
        cursor = zombie.cursor()  # kept: dropping it would end the COPY with an error, and the locks
        copy = cursor.copy("COPY pg_midcopy FROM STDIN")
        copy.__enter__()  # then frozen: no rows, no end
        other.execute("UPDATE _provisioner_positions SET next_offset = next_offset WHERE consumer = %s "
                      "AND false", (consumer,))  # another role's style of session, idle in a transaction
        time.sleep(1.5)
        with pytest.raises(StoreError, match="lock timeout"):
            apply(store, [upsert(10, "live")], {0: 10}, {0: 11})
        deadline = time.monotonic() + 10
        while sql("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", zombie.info.backend_pid) != [(0,)]:
            assert time.monotonic() < deadline, "the zombie's session is still there"
            time.sleep(0.1)
        # Only the zombie: a session of another application is left alone.
        assert sql("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", other.info.backend_pid) == [(1,)]
        apply(store, [upsert(10, "live")], {0: 10}, {0: 11})
        assert store.read_positions() == {0: 11}
        assert sql("SELECT id FROM pg_midcopy") == [("live",)]
    finally:
        for connection in (zombie, other):
            with contextlib.suppress(psycopg.Error):
                connection.close()
        store.close()


def test_a_paused_session_is_ended_by_the_server(postgres_server):
    store = make_store(postgres_server.url, "pg-paused")
    store.read_positions()
    connection = store._connect()  # the store's own session carries the timeouts
    assert connection.execute("SHOW idle_in_transaction_session_timeout").fetchone() == ("15s",)
    assert connection.execute("SHOW lock_timeout").fetchone() == ("5s",)
    store.close()


def test_adding_a_field_adds_a_column(postgres_server, sql):
    make_store(postgres_server.url, "pg-evolve").close()
    store = make_store(postgres_server.url, "pg-evolve",
                       fields={"id": "event.id", "customer": "event.customer", "total": "event.total",
                               "qty": "event.qty"}, columns={"qty": "integer"})
    apply(store, [upsert(0, "a", qty="3")], {0: None}, {0: 1})
    assert sql("SELECT id, qty FROM pg_evolve") == [("a", 3)]
    assert sql("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
               "WHERE attrelid = 'pg_evolve'::regclass AND attname = 'qty'") == [("integer",)]
    store.close()


@pytest.mark.parametrize(
    ("change", "difference"),
    [
        ({"columns": {"total": "numeric"}}, "column 'total' is text but the spec says numeric"),
        ({"fields": {"id": "event.id", "customer": "event.customer"}}, "column 'total' is no longer a field"),
        ({"key": ["id", "customer"]}, "primary key is (id) but the spec's key is (id, customer)"),
        ({"mode": "append"}, "upsert-mode table but the spec says mode append"),
    ],
)
def test_incompatible_changes_are_refused_with_the_rebuild_command(postgres_server, change, difference):
    name = f"pg-refuse-{abs(hash(difference)) % 10**6}"
    make_store(postgres_server.url, name).close()
    store_args: dict[str, Any] = {"fields": None, "key": "id", **change}
    with pytest.raises(StoreSchemaError) as caught:
        make_store(postgres_server.url, name, **store_args)
    message = str(caught.value)
    assert f'"public"."{name.replace("-", "_")}"' in message
    assert difference in message
    assert f"provisioner replay {name} --store db" in message


def test_append_to_upsert_is_refused(postgres_server):
    make_store(postgres_server.url, "pg-mode", mode="append").close()
    with pytest.raises(StoreSchemaError, match="append-mode changelog but the spec says mode upsert"):
        make_store(postgres_server.url, "pg-mode")


def test_reset_drops_data_and_positions_and_follows_the_new_spec(postgres_server, sql):
    store = make_store(postgres_server.url, "pg-reset")
    neighbour = make_store(postgres_server.url, "pg-reset-2")
    apply(store, [upsert(0, "a"), upsert(1, "b")], {0: None}, {0: 2})
    apply(neighbour, [upsert(0, "n")], {0: None}, {0: 1})
    product = make_product("pg-reset", columns={"total": "numeric"})
    changed = open_store(product, product.store("db"), postgres_server.url)
    with pytest.raises(StoreSchemaError):
        changed.ensure_schema()  # the connection stays open: reset() uses it
    changed.reset()
    changed.ensure_schema()
    assert changed.count() == 0
    assert changed.read_positions() == {}
    assert neighbour.read_positions() == {0: 1}
    assert neighbour.count() == 1
    assert sql("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
               "WHERE attrelid = 'pg_reset'::regclass AND attname = 'total'") == [("numeric",)]
    for each in (store, neighbour, changed):
        each.close()


def test_identifiers_are_quoted_so_reserved_words_work(postgres_server, sql):
    store = make_store(postgres_server.url, "pg-reserved", schema="select", table="user",
                       fields={"from": "event.id", "order": "event.n", "group": "event.g"}, key=["from", "order"],
                       columns={"order": "integer"})
    changes = [Change(0, 0, TS, Upsert(("x", 1), {"from": "x", "order": 1, "group": "g"})),
               Change(0, 1, TS, Delete(("x", 2)))]
    prepared, _ = store.prepare(changes)
    store.apply(prepared, {0: None}, {0: 2})
    assert sql('SELECT "from", "order", "group" FROM "select"."user"') == [("x", 1, "g")]
    assert sql('SELECT count(*) FROM "select"."_provisioner_positions"') == [(1,)]
    assert store.inspect(5) == [{"from": "x", "order": 1, "group": "g"}]
    for hostile in ['x"; DROP TABLE t; --', "Upper", "a b", ""]:
        with pytest.raises(ValueError, match="not a valid SQL identifier"):
            quote_identifier(hostile)
    store.close()


def test_two_consumers_creating_the_schema_together_both_succeed(postgres_server, sql):
    products = [make_product("pg-race", schema="race") for _ in range(4)]
    stores = [open_store(p, p.store("db"), postgres_server.url) for p in products]
    errors: list[BaseException] = []

    def start(store: Any) -> None:
        try:
            store.ensure_schema()
        except BaseException as error:  # handed to the main thread
            errors.append(error)

    threads = [threading.Thread(target=start, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sql("SELECT count(*) FROM race.pg_race") == [(0,)]
    for store in stores:
        store.close()


def test_inspect_orders_by_key_and_limits(postgres_server):
    store = make_store(postgres_server.url, "pg-inspect")
    apply(store, [upsert(i, f"k{9 - i}") for i in range(10)], {0: None}, {0: 10})
    assert [row["id"] for row in store.inspect(3)] == ["k0", "k1", "k2"]
    store.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_server_down_is_a_store_error_without_the_password():
    product = make_product("pg-down")
    url = f"postgresql://writer:s3cretpassw0rd@127.0.0.1:{_closed_port()}/db"
    store = PostgresStore(product, product.store("db"), url, timeout=2)
    for call in (store.ensure_schema, store.read_positions, lambda: store.apply([], {0: None}, {0: 1}),
                 lambda: store.inspect(5), store.count, store.reset):
        with pytest.raises(StoreError) as caught:
            call()
        assert "s3cretpassw0rd" not in str(caught.value)
        assert "writer:***@" in str(caught.value)


def test_reconnects_after_the_server_comes_back(postgres_server):
    store = make_store(postgres_server.url, "pg-restart")
    apply(store, [upsert(0, "a")], {0: None}, {0: 1})
    postgres_server.stop()
    try:
        with pytest.raises(StoreError):
            apply(store, [upsert(1, "b")], {0: 1}, {0: 2})
    finally:
        postgres_server.start()
    store.ensure_schema()
    apply(store, [upsert(1, "b")], {0: store.read_positions()[0]}, {0: 2})
    assert store.count() == 2
    store.close()


def test_racing_consumers_one_wins_each_round(postgres_server, sql):
    stores = [make_store(postgres_server.url, "pg-race") for _ in range(4)]
    for round_ in range(4):
        outcomes = race_round(stores, round_, upsert)
        winners = [o for o in outcomes if o != "conflict"]
        assert len(winners) == 1, outcomes
        assert sql("SELECT count(*) FROM pg_race") == [(round_ + 1,)]
    for store in stores:
        store.close()
