"""`spec.order` in Postgres upsert mode: the horizon of a group's delete markers (an order value at
least that of each of its markers) lets an upsert at or above it skip the marker probe. It must
hold whoever writes the markers (an older consumer), for markers written before it existed, and
after a reset; an upsert below it is still checked against its key's marker."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from provisioner.pipeline.ops import Change, Delete, Upsert
from provisioner.pipeline.ordering import ORDER_MIN
from provisioner.spec.models import DataProduct
from provisioner.stores.base import Stale
from tests.integration import harness as h
from tests.integration.test_order_stores import NOW_MS, Batches, opened, product_for

pytestmark = pytest.mark.integration

FAR_FUTURE = "2100-01-01T00:00:00Z"


def horizon(url: str, schema: str, group: str) -> int | None:
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute(f'SELECT "order" FROM {schema}._provisioner_order_horizon WHERE consumer = %s',
                                 (group,)).fetchone()
    return None if row is None else int(row[0])


def rows(url: str, schema: str, product: DataProduct) -> dict[str, int]:
    return {row["id"]: int(row["version"]) for row in h.postgres_rows(url, schema, product.table(product.spec.stores[0]))}


def test_a_marker_written_by_any_writer_raises_the_horizon(postgres_server: Any) -> None:
    url = postgres_server.url
    product = product_for("hz-writer", {"postgres": {"schema": "hz_writer", "columns": {"version": "bigint"}}})
    group = product.consumer_group(product.spec.stores[0])
    store = opened(product, url)
    batches = Batches(store)
    try:
        # No marker yet: the horizon is the lowest order value, so no upsert probes.
        assert batches.apply(("u", "a", 100)) == Stale()
        assert horizon(url, "hz_writer", group) == ORDER_MIN
        # A marker written by another writer (an older consumer of the group) raises it too.
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute('INSERT INTO hz_writer._provisioner_order_markers (consumer, key, "order", expires) '
                               "VALUES (%s, 'x', 50, %s)", (group, FAR_FUTURE))
        assert horizon(url, "hz_writer", group) == 50
        # Below it, the key's marker keeps the late upsert out; at it (a tie) the upsert applies.
        assert batches.apply(("u", "x", 40)) == Stale(upserts=1)
        assert batches.apply(("u", "x", 50)) == Stale()
        # The store's own deletes raise it (after the batch's upserts, which compare with the old one).
        assert batches.apply(("u", "b", 60), ("d", "a", 200)) == Stale()
        assert horizon(url, "hz_writer", group) == 200
        assert batches.apply(("u", "a", 150), ("u", "c", 150)) == Stale(upserts=1)
        assert rows(url, "hz_writer", product) == {"x": 50, "b": 60, "c": 150}
        # A delete of a key without a row, below the horizon: its key's newer marker makes it stale.
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute('INSERT INTO hz_writer._provisioner_order_markers (consumer, key, "order", expires) '
                               "VALUES (%s, 'y', 180, %s)", (group, FAR_FUTURE))
        assert batches.apply(("d", "y", 170)) == Stale(deletes=1)
        # No horizon row (unknown): every op is checked against its marker.
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("DELETE FROM hz_writer._provisioner_order_horizon WHERE consumer = %s", (group,))
        assert batches.apply(("d", "y", 175), ("u", "d", 1)) == Stale(deletes=1)
        assert batches.apply(("u", "y", 179)) == Stale(upserts=1)
        assert rows(url, "hz_writer", product) == {"x": 50, "b": 60, "c": 150, "d": 1}
    finally:
        store.close()


def test_markers_written_before_the_horizon_existed_are_counted(postgres_server: Any) -> None:
    """A schema whose markers table was made before the horizon (its text compared by the cluster's
    locale, no trigger): opening an ordered store seeds every group's horizon from its markers."""
    url = postgres_server.url
    product = product_for("hz-upgrade", {"postgres": {"schema": "hz_upgrade", "columns": {"version": "bigint"}}})
    group = product.consumer_group(product.spec.stores[0])
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DROP SCHEMA IF EXISTS hz_upgrade CASCADE")
        connection.execute("CREATE SCHEMA hz_upgrade")
        connection.execute('CREATE TABLE hz_upgrade._provisioner_order_markers (consumer text NOT NULL, key text '
                           'NOT NULL, "order" numeric NOT NULL, expires timestamptz, PRIMARY KEY (consumer, key))')
        connection.execute('INSERT INTO hz_upgrade._provisioner_order_markers VALUES (%s, \'x\', 70, %s), '
                           "('another-group', 'y', 90, %s)", (group, FAR_FUTURE, FAR_FUTURE))
    store = opened(product, url)  # a reset, then the schema: the group's own markers are forgotten
    try:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute('INSERT INTO hz_upgrade._provisioner_order_markers VALUES (%s, \'x\', 70, %s)',
                               (group, FAR_FUTURE))
        assert horizon(url, "hz_upgrade", group) == 70
        assert horizon(url, "hz_upgrade", "another-group") == 90
        batches = Batches(store)
        assert batches.apply(("u", "x", 69), ("u", "z", 1)) == Stale(upserts=1)
        assert rows(url, "hz_upgrade", product) == {"z": 1}
    finally:
        store.close()


def test_a_reset_starts_the_groups_horizon_afresh(postgres_server: Any) -> None:
    url = postgres_server.url
    product = product_for("hz-reset", {"postgres": {"schema": "hz_reset", "columns": {"version": "bigint"}}})
    group = product.consumer_group(product.spec.stores[0])
    store = opened(product, url)
    try:
        Batches(store).apply(("d", "x", 500))
        assert horizon(url, "hz_reset", group) == 500
        store.reset()
        store.ensure_schema()
        assert horizon(url, "hz_reset", group) == ORDER_MIN
        assert Batches(store).apply(("u", "x", 1)) == Stale()
        assert rows(url, "hz_reset", product) == {"x": 1}
    finally:
        store.close()


@pytest.mark.parametrize(("name", "key", "columns"), [
    ("hz_int", "id", {"id": "integer", "version": "bigint"}),
    ("hz_pair", ["id", "region"], {"version": "bigint"}),
])
def test_keys_that_are_not_one_text_column_probe_their_markers(
    postgres_server: Any, name: str, key: Any, columns: dict[str, str]
) -> None:
    """A key that is not a single text column is copied into the batch as its key text; its
    markers are found by that text, below the horizon and across batches."""
    url = postgres_server.url
    product = DataProduct.model_validate({
        "apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct", "metadata": {"name": name.replace("_", "-")},
        "spec": {"source": {"topic": "t"}, "key": key, "order": "int(event.version)", "orderRetention": "1d",
                 "fields": {"id": "event.id", "region": "'eu'", "version": "event.version"},
                 "stores": [{"name": "s", "postgres": {"schema": name, "columns": columns}}]},
    })
    store = opened(product, url)
    parts = (lambda n: (n,)) if key == "id" else (lambda n: (n, "eu"))
    offset = 0

    def apply(*ops: tuple[str, int, int]) -> Stale | None:
        nonlocal offset
        changes = [Change(0, offset + i, NOW_MS, Upsert(parts(n), {"id": n, "region": "eu", "version": v}, v)
                          if kind == "u" else Delete(parts(n), v)) for i, (kind, n, v) in enumerate(ops)]
        prepared, rejected = store.prepare(changes)
        assert rejected == []
        offset += len(ops)
        return store.apply(prepared, {0: (offset - len(ops)) or None}, {0: offset})

    try:
        assert apply(("u", 1, 5), ("u", 2, 5)) == Stale()
        assert apply(("d", 1, 8), ("u", 2, 9)) == Stale()
        # 1's marker (8) keeps an older upsert out; 3 (no marker) below the horizon still applies.
        assert apply(("u", 1, 7), ("u", 3, 1), ("d", 2, 6)) == Stale(upserts=1, deletes=1)
        assert apply(("u", 1, 8)) == Stale()
        found = {int(row["id"]): int(row["version"]) for row in h.postgres_rows(url, name, product.table(product.spec.stores[0]))}
        assert found == {1: 8, 2: 9, 3: 1}
    finally:
        store.close()
