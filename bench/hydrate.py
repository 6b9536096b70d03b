"""Hydration throughput of the store consumer against a bare Kafka loop and naive writers.

One run, one machine, these figures (records per second):
  R0  a bare kafka-python loop that only polls and JSON-decodes every record (the ceiling);
  R1  `provisioner consume` into Redis;
  R2  `provisioner consume` into Postgres (upsert);
      both with the consumer's default Kafka client (confluent), or the one `--kafka-client` names;
      `--compare-clients` runs them with the other client too and prints its figures beside;
  Rn  naive loops writing one row per record (Redis HSET per record; Postgres INSERT ... ON CONFLICT
      and a commit per record), on a smaller sample;
and prints R1/R0 (goal >= 0.7), R2/R0 (goal >= 0.7), R2/Rn (goal >= 5) and the consumer's peak RSS
(goal < 250 MB, VmHWM of the consumer process). `--secured` also starts the secured dev broker
(SASL_SSL, SCRAM-SHA-512, ACLs) and runs R1 and R2 against it through `--kafka-config`: the
secured/plaintext ratio of steady records/s is the cost of TLS and SCRAM (goal >= 0.85). `--avro`
also runs the Avro round (bench/hydrate_avro.py: R-avro against a bare poll + fastavro loop, goal
>= 0.7, and Avro against JSON decode per record) with the dev schema registry.

Fairness: the ratios compare the same span on both sides, the steady stream. R0 is timed from the
first poll that returns records to the last record decoded; R1/R2 from the first batch the store
holds (its positions, read every 20 ms) to the last, counting only the records after that first
batch. Neither includes process start, imports, topic metadata, the group join (R0 uses `assign`,
the consumer `subscribe`s and joins a fresh group) or the first fetch. The figures from the start
(R0 from building its KafkaConsumer, R1/R2 from launching the process, so including the Python
start and a group join) are printed too, but they measure start-up as much as throughput: on
200,000 records a second of start-up is a fifth of the run. R0 uses the kafka-python consumer's
fetch settings (FETCH) and max_poll_records = the spec's batchSize; the confluent client fetches the
same amounts (provisioner/stream/confluent.py).

The events are the orders example (`provisioner.stream.generate.orders`) through a variant of
specs/vip-orders.yaml whose filter keeps placements and cancellations (most records).

It starts its own broker and embedded servers under a temporary state directory, unless
PROVISIONER_KAFKA_BOOTSTRAP, BENCH_REDIS_URL and BENCH_POSTGRES_URL are all set. On a shared
machine the figures vary by 10-20% from run to run: compare ratios from the same run.

`--order [EXPR]` also runs R1 and R2 with `spec.order: EXPR` (default timestamp(event.ts), which
parses a timestamp per record; `record.offset` costs only the order rule itself) and prints the
ratio of their steady records/s to the unordered ones of the same round (goal >= 0.85): per store,
an unordered and an ordered run back to back on fresh products, which goes first alternating by
round, with the consumer's and the server's CPU per record (steadier than records/s on a busy
machine).

Run: .venv/bin/python bench/hydrate.py [EVENTS=200000] [NAIVE=20000] [--rounds N] [--quick] [--profile] [--order [EXPR]]
                                       [--kafka-client confluent|kafka-python] [--compare-clients] [--secured]
                                       [--avro]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

from common import FETCH, PARTITIONS, POLL_EVERY, ROOT, ConsumerRun, produce_records, tree_cpu_seconds, with_servers
from common import consumer_run as timed_consumer_run
from common import median as _median

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaConsumer, TopicPartition

import psycopg
import redis
import yaml

from provisioner.pipeline.encoding import encode_value
from provisioner.pipeline.ops import Record, Upsert, render_key
from provisioner.pipeline.process import Pipeline
from provisioner.spec.loader import load_products
from provisioner.spec.models import DataProduct
from provisioner.stores.registry import open_store
from provisioner.stream import generate
from provisioner.stream.client import DEFAULT_KAFKA_CLIENT, KAFKA_CLIENTS
from provisioner.stream.settings import KafkaTarget

ORDER = "timestamp(event.ts)"  # `--order`: each order's events carry increasing times (RFC 3339 text)
BATCH = 5000  # the spec's consumer.batchSize (specs/vip-orders.yaml), the consumer's max_poll_records


def bench_spec(folder: Path, topic: str, order: str | None = None) -> Path:
    base = yaml.safe_load((ROOT / "specs" / "vip-orders.yaml").read_text())
    spec = base["spec"]
    if order is not None:
        spec["order"] = order
    base["metadata"]["name"] = f"bench-{uuid.uuid4().hex[:8]}"
    spec["source"]["topic"] = topic
    spec["filter"] = "event.type == 'OrderCancelled' || (event.type == 'OrderPlaced' && event.amount >= 0.0)"
    spec["stores"] = [
        {"name": "cache", "redis": {"keyPrefix": f"{base['metadata']['name']}:", "ttl": "24h"}},
        {"name": "db", "postgres": {"table": base["metadata"]["name"].replace("-", "_"),
                                    "columns": {"total": "numeric", "qty": "integer", "placed_at": "timestamptz"}}},
    ]
    spec.pop("tests", None)
    path = folder / f"{base['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(base, sort_keys=False))
    return path


def produce(bootstrap: KafkaTarget, topic: str, count: int) -> None:
    produce_records(bootstrap, topic, ((key.encode(), json.dumps(value).encode())
                                       for key, value in generate.orders(count, seed=1)))


def bare_loop(bootstrap: str, topic: str, count: int, decode: Any = json.loads) -> tuple[float, float]:
    """R0: poll and json-decode (or `decode`) every record, nothing else: (records/s from the start,
    steady records/s).

    Steady: from the first poll that returned records to the last record decoded.
    """
    started = time.perf_counter()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=BATCH, **FETCH)
    parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    seen = 0
    first: float | None = None
    loads = decode
    while seen < count:
        polled = consumer.poll(timeout_ms=1000)
        if polled and first is None:
            first = time.perf_counter()
        for records in polled.values():
            for record in records:
                loads(record.value)
            seen += len(records)
    finished = time.perf_counter()
    consumer.close()
    assert first is not None
    return count / (finished - started), count / (finished - first)


def consumer_run(spec: Path, store: str, bootstrap: str, url: str, count: int, product: DataProduct,
                 folder: Path, replicas: int = 1, kafka_client: str | None = None,
                 kafka_config: Path | None = None) -> tuple[float, float, float]:
    """(records/s from process start, steady records/s (after the first applied batch), peak RSS in MB
    of one consumer process). `replicas` consumer processes share the group, as `consumer.replicas` pods do."""
    run = timed_consumer_run(spec, store, bootstrap, url, count, product, folder, replicas, kafka_client=kafka_client,
                             kafka_config=kafka_config)
    return run.from_start, run.steady, run.peak_rss_mb


PROFILED = ("gc", "kafka poll + decode", "pipeline", "preparation", "waiting for the store write", "other")


def profile_run(spec: Path, store: str, bootstrap: str, url: str, count: int, product: DataProduct,
                folder: Path, kafka_client: str, label: str = "") -> None:
    """Run one consumer in a child process with its steps timed, and print where its main thread's
    time goes (shares of wall-clock from the first applied batch; GC counted apart from the step it
    interrupted) and the process's CPU per record."""
    out = folder / f"profile-{store}.json"
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--profile-child", str(spec), store,
                    bootstrap, url, str(count), str(out), kafka_client], cwd=str(ROOT), check=True)
    result = json.loads(out.read_text())
    wall, records, cpu = result["wall"], result["records"], result["cpu"]
    shares = "  ".join(f"{name} {100 * result['steps'][name] / wall:.0f}%" for name in PROFILED)
    print(f"profile {store + label:<13} {records / wall:>9,.0f} records/s  {shares}", flush=True)
    print(f"                      process CPU {cpu / wall:.2f} cores, {1e6 * cpu / records:.1f} us per record;"
          f" writer thread {100 * result['writer_cpu'] / wall:.0f}% of a core; {result['collections']} GC runs"
          f" ({result['full_collections']} full)", flush=True)


def profile_stores(order: str | None, topic: str, bootstrap: str, urls: tuple[str, str], count: int,
                   folder: Path, kafka_client: str) -> None:
    """`profile_run` for each store; with `order`, with and without it: where the order rule's time goes."""
    for order_ in (None, order) if order else (None,):
        for store, url in zip(("cache", "db"), urls, strict=True):
            spec = bench_spec(folder, topic, order=order_)
            product = load_products([spec])[0].product
            profile_run(spec, store, bootstrap, url, count, product, folder, kafka_client,
                        label="" if order_ is None else " (order)")


def profile_child(spec_path: str, store_name: str, bootstrap: str, url: str, count: int, out: str,
                  kafka_client: str) -> None:
    """The consumer of `profile_run`, in this process: its steps wrapped with timers."""
    import gc
    import threading

    from provisioner.runtime import consumer as consumer_module

    product = load_products([Path(spec_path)])[0].product
    store_spec = product.store(store_name)
    store = open_store(product, store_spec, url)
    main = threading.main_thread()
    steps = dict.fromkeys(PROFILED, 0.0)
    gc_state = {"since": 0.0, "total": 0.0, "runs": 0, "full": 0, "main": 0.0}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            gc_state["since"] = now
            return
        spent = now - gc_state["since"]
        gc_state["total"] += spent
        gc_state["runs"] += 1
        gc_state["full"] += info.get("generation") == 2
        if threading.current_thread() is main:
            gc_state["main"] += spent

    gc.callbacks.append(on_gc)

    def timed(name: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started, gc_before = time.perf_counter(), gc_state["main"]
            try:
                return function(*args, **kwargs)
            finally:
                spent = time.perf_counter() - started - (gc_state["main"] - gc_before)
                steps[name] += spent
        return wrapper

    writer_cpu = [0.0]

    class Profiled(consumer_module.StoreConsumer):
        def _new_consumer(self) -> Any:
            kafka = super()._new_consumer()
            kafka.poll = timed("kafka poll + decode", kafka.poll)
            return kafka

        def _write(self, *args: Any) -> Any:
            started = time.thread_time()
            try:
                return super()._write(*args)
            finally:
                writer_cpu[0] += time.thread_time() - started

    consumer_module.transform = timed("pipeline", consumer_module.transform)  # type: ignore[attr-defined]
    store.prepare = timed("preparation", store.prepare)  # type: ignore[method-assign]
    Profiled._settle = timed("waiting for the store write", Profiled._settle)  # type: ignore[method-assign]
    consumer = Profiled(product, store_spec, store, bootstrap, kafka_client=kafka_client)
    reader = open_store(product, store_spec, url)
    marks: dict[str, Any] = {}

    def watch() -> None:
        while True:
            time.sleep(POLL_EVERY)
            try:
                done = sum(reader.read_positions().values())
            except Exception:
                done = 0
            if done and "first" not in marks:
                # Reset the books at the first applied batch: the steady stream only.
                marks["first"] = (time.perf_counter(), time.process_time(), dict(steps), gc_state["main"],
                                  writer_cpu[0], gc_state["runs"], gc_state["full"], done)
            if done >= count:
                marks["last"] = (time.perf_counter(), time.process_time(), dict(steps), gc_state["main"],
                                 writer_cpu[0], gc_state["runs"], gc_state["full"], done)
                consumer.stop()
                return

    threading.Thread(target=watch, daemon=True).start()
    consumer.run()
    reader.close()
    first, last = marks["first"], marks["last"]
    wall = last[0] - first[0]
    spent = {name: last[2][name] - first[2][name] for name in PROFILED}
    spent["gc"] = last[3] - first[3]
    spent["other"] = max(0.0, wall - sum(spent.values()))
    Path(out).write_text(json.dumps({
        "wall": wall, "cpu": last[1] - first[1], "steps": spent, "writer_cpu": last[4] - first[4],
        "collections": last[5] - first[5], "full_collections": last[6] - first[6], "records": last[7] - first[7],
    }))


def redis_cpu(url: str) -> float:
    """CPU seconds the Redis server has used so far (user + system): what the store's scripts cost."""
    client = redis.Redis.from_url(url)
    try:
        info = client.info("cpu")
    finally:
        client.close()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def postgres_cpu(url: str) -> float:
    """CPU seconds the Postgres server (the postmaster, its live backends and those that exited) has
    used so far: read from /proc, so only for a server on this machine (0.0 otherwise)."""
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT current_setting('data_directory')").fetchone()
    try:
        pid = int((Path(row[0]) / "postmaster.pid").read_text().split()[0]) if row else 0
    except (OSError, ValueError, IndexError):
        return 0.0
    return tree_cpu_seconds(pid)


def order_round(order: str, round_: int, topic: str, bootstrap: str, urls: tuple[str, str], count: int,
                folder: Path, client: str) -> tuple[float, float]:
    """`--order`: per store, one run without `order` and one with it, back to back on fresh products
    (the order alternating by round, so neither side always runs first, on the emptier store or the
    quieter machine); prints steady records/s and the CPU per record of the consumer (steady span)
    and of the store's server (whole run). Returns ordered/unordered steady records/s per store."""
    ratios: list[float] = []
    for store, url, server_cpu in (("cache", urls[0], redis_cpu), ("db", urls[1], postgres_cpu)):
        runs: dict[bool, tuple[ConsumerRun, float]] = {}
        for with_order in (True, False) if round_ % 2 else (False, True):
            spec = bench_spec(folder, topic, order=order if with_order else None)
            product = load_products([spec])[0].product
            cpu = server_cpu(url)
            run = timed_consumer_run(spec, store, bootstrap, url, count, product, folder, kafka_client=client)
            runs[with_order] = (run, server_cpu(url) - cpu)
        (plain, plain_server), (tied, tied_server) = runs[False], runs[True]
        ratios.append(tied.steady / plain.steady)
        print(f"{store:<5} order/none {tied.steady:>9,.0f} / {plain.steady:,.0f} records/s steady "
              f"({tied.steady / plain.steady:.2f}); consumer CPU "
              f"{1e6 * tied.steady_cpu_seconds / tied.steady_records:.1f} / "
              f"{1e6 * plain.steady_cpu_seconds / plain.steady_records:.1f} us per record; server CPU "
              f"{1e6 * tied_server / count:.1f} / {1e6 * plain_server / count:.1f} us per record", flush=True)
    return ratios[0], ratios[1]


def sample(bootstrap: str, topic: str, count: int) -> list[Record]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **FETCH)
    parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    out: list[Record] = []
    while len(out) < count:
        for records in consumer.poll(timeout_ms=1000).values():
            out.extend(Record(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value) for r in records)
    consumer.close()
    return out[:count]


def naive_redis(product: DataProduct, url: str, records: list[Record]) -> float:
    """One HSET (and EXPIRE) round trip per record, after the same pipeline."""
    pipeline = Pipeline(product)
    client = redis.Redis.from_url(url)
    prefix = f"naive-{uuid.uuid4().hex[:6]}:"
    started = time.perf_counter()
    for record in records:
        op = pipeline.process(record)
        if isinstance(op, Upsert):
            key = prefix + render_key(op.key)
            client.hset(key, mapping={k: v for k, v in ((k, encode_value(v)) for k, v in op.row.items())
                                      if v is not None})
        elif op.kind == "delete":
            client.delete(prefix + render_key(op.key))  # type: ignore[union-attr]
    rate = len(records) / (time.perf_counter() - started)
    client.close()
    return rate


def naive_postgres(product: DataProduct, url: str, records: list[Record]) -> float:
    """INSERT ... ON CONFLICT DO UPDATE and a commit per record, after the same pipeline."""
    pipeline = Pipeline(product)
    table = f"naive_{uuid.uuid4().hex[:6]}"
    names = list(product.fields)
    with psycopg.connect(url) as connection:
        connection.execute(f'CREATE TABLE "{table}" ({", ".join(f"{n} text" for n in names)}, PRIMARY KEY (order_id))')
        connection.commit()
        insert = (f'INSERT INTO "{table}" ({", ".join(names)}) VALUES ({", ".join("%s" for _ in names)}) '
                  f'ON CONFLICT (order_id) DO UPDATE SET {", ".join(f"{n} = EXCLUDED.{n}" for n in names[1:])}')
        delete = f'DELETE FROM "{table}" WHERE order_id = %s'
        started = time.perf_counter()
        for record in records:
            op = pipeline.process(record)
            if isinstance(op, Upsert):
                connection.execute(insert, [encode_value(op.row.get(n)) for n in names])
            elif op.kind == "delete":
                connection.execute(delete, [render_key(op.key)])  # type: ignore[union-attr]
            connection.commit()
        return len(records) / (time.perf_counter() - started)


def secured(args: argparse.Namespace, count: int, redis_url: str, postgres_url: str, folder: Path,
            plaintext: tuple[float, float], client: str) -> None:
    """R1 and R2 against the secured dev broker, the same events, beside the plaintext figures."""
    from provisioner.local import securebroker

    state = folder / "secured-state"
    broker = securebroker.up(state)
    try:
        admin = broker.admin()
        topic = f"bench.orders.secured.{uuid.uuid4().hex[:8]}"
        produce(admin, topic, count)
        figures = []
        for store, url in (("cache", redis_url), ("db", postgres_url)):
            rates = []
            for _ in range(args.rounds):
                spec = bench_spec(folder, topic)
                product = load_products([spec])[0].product
                rates.append(consumer_run(spec, store, admin.bootstrap, url, count, product, folder,
                                          kafka_client=client, kafka_config=broker.admin_properties)[1])
            figures.append(_median(rates))
        print(f"R1, R2 secured (TLS + SCRAM)    {figures[0]:>10,.0f} / {figures[1]:,.0f} records/s steady", flush=True)
        print(f"secured/plaintext: R1 {figures[0] / plaintext[0]:.2f}, R2 {figures[1] / plaintext[1]:.2f}"
              "  (goal >= 0.85)", flush=True)
    finally:
        securebroker.down(state, purge=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("events", nargs="?", type=int, default=200_000, help="events produced (200000)")
    parser.add_argument("naive", nargs="?", type=int, default=20_000, help="records of the naive loops (20000)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternate R0, R1, R2 this many times and print medians (default 1)")
    parser.add_argument("--quick", action="store_true", help="only R0, R1 and R2: no replicas, no naive loops")
    parser.add_argument("--kafka-client", choices=KAFKA_CLIENTS, default=DEFAULT_KAFKA_CLIENT,
                        help=f"the consumer's Kafka client for R1, R2 and the profile (default {DEFAULT_KAFKA_CLIENT})")
    parser.add_argument("--compare-clients", action="store_true",
                        help="also run R1 and R2 with the other Kafka client and print its figures")
    parser.add_argument("--secured", action="store_true",
                        help="also run R1 and R2 against the secured dev broker (TLS + SCRAM) and print the ratio")
    parser.add_argument("--order", nargs="?", const=ORDER, default=None, metavar="EXPR",
                        help=f"also run R1 and R2 with `order: EXPR` (default {ORDER}) and print "
                             "ordered/unordered (goal >= 0.85)")
    parser.add_argument("--avro", action="store_true",
                        help="also run the Avro round (R-avro against a bare poll + fastavro loop; dev registry)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one consumer run per store (GC, decode, pipeline, preparation, I/O wait); "
                             "with --order, one with and one without it")
    return parser.parse_args(argv)


def main() -> None:
    if sys.argv[1:2] == ["--profile-child"]:
        spec_path, store_name, bootstrap, url, count, out, kafka_client = sys.argv[2:9]
        profile_child(spec_path, store_name, bootstrap, url, int(count), out, kafka_client)
        return
    args = parse_args(sys.argv[1:])
    count = args.events
    naive_count = args.naive
    client = args.kafka_client
    other = next(c for c in KAFKA_CLIENTS if c != client)

    def body(bootstrap: str, redis_url: str, postgres_url: str, folder: Path) -> None:
        topic = f"bench.orders.{uuid.uuid4().hex[:8]}"
        spec = bench_spec(folder, topic)
        product = load_products([spec])[0].product
        t = time.perf_counter()
        produce(bootstrap, topic, count)
        print(f"produced {count} events in {time.perf_counter() - t:.1f}s", flush=True)
        r0s: list[tuple[float, float]] = []
        r1s: list[tuple[float, float, float]] = []
        r2s: list[tuple[float, float, float]] = []
        others: list[tuple[float, float]] = []  # steady R1, R2 with the other client (--compare-clients)
        ordered: list[tuple[float, float]] = []  # R1, R2 with `order` / without, per round (--order)
        for round_ in range(args.rounds):
            if args.rounds > 1:
                print(f"-- round {round_ + 1}/{args.rounds}", flush=True)
            r0_start, r0 = bare_loop(bootstrap, topic, count)
            r0s.append((r0_start, r0))
            print(f"R0 bare poll + json.loads       {r0:>10,.0f} records/s steady  ({r0_start:,.0f}/s from the start)",
                  flush=True)
            # A fresh product per round, so each consumer run starts from the beginning.
            spec_n = spec if round_ == 0 else bench_spec(folder, topic)
            product_n = product if round_ == 0 else load_products([spec_n])[0].product
            r1_start, r1, rss1 = consumer_run(spec_n, "cache", bootstrap, redis_url, count, product_n, folder,
                                              kafka_client=client)
            r1s.append((r1_start, r1, rss1))
            print(f"R1 consume -> Redis             {r1:>10,.0f} records/s steady  ({r1_start:,.0f}/s from process"
                  f" start, peak RSS {rss1:.0f} MB; {client})", flush=True)
            r2_start, r2, rss2 = consumer_run(spec_n, "db", bootstrap, postgres_url, count, product_n, folder,
                                              kafka_client=client)
            r2s.append((r2_start, r2, rss2))
            print(f"R2 consume -> Postgres          {r2:>10,.0f} records/s steady  ({r2_start:,.0f}/s from process"
                  f" start, peak RSS {rss2:.0f} MB; {client})", flush=True)
            if args.order:
                ordered.append(order_round(args.order, round_, topic, bootstrap, (redis_url, postgres_url), count,
                                           folder, client))
            if args.compare_clients:
                spec_o = bench_spec(folder, topic)
                product_o = load_products([spec_o])[0].product
                o1 = consumer_run(spec_o, "cache", bootstrap, redis_url, count, product_o, folder, kafka_client=other)
                o2 = consumer_run(spec_o, "db", bootstrap, postgres_url, count, product_o, folder, kafka_client=other)
                others.append((o1[1], o2[1]))
                print(f"R1, R2 with {other:<19} {o1[1]:>10,.0f} / {o2[1]:,.0f} records/s steady", flush=True)
        r0 = _median([x[1] for x in r0s])
        r0_start = _median([x[0] for x in r0s])
        r1 = _median([x[1] for x in r1s])
        r1_start = _median([x[0] for x in r1s])
        r2 = _median([x[1] for x in r2s])
        r2_start = _median([x[0] for x in r2s])
        rss = max(x[2] for x in r1s + r2s)
        r1_ratio = _median([b[1] / a[1] for a, b in zip(r0s, r1s, strict=True)])
        r2_ratio = _median([b[1] / a[1] for a, b in zip(r0s, r2s, strict=True)])
        if not args.quick:
            # The same work split over two consumer processes of one group (consumer.replicas: 2), each
            # fencing only its own partitions; a fresh product, so both start from the beginning.
            spec2 = bench_spec(folder, topic)
            product2 = load_products([spec2])[0].product
            r1x2 = consumer_run(spec2, "cache", bootstrap, redis_url, count, product2, folder, replicas=2,
                                kafka_client=client)[1]
            r2x2 = consumer_run(spec2, "db", bootstrap, postgres_url, count, product2, folder, replicas=2,
                                kafka_client=client)[1]
            print(f"R1x2, R2x2: two replicas        {r1x2:>10,.0f} / {r2x2:,.0f} records/s steady", flush=True)
            records = sample(bootstrap, topic, naive_count)
            rn_redis = naive_redis(product, redis_url, records)
            print(f"Rn naive Redis HSET per record  {rn_redis:>10,.0f} records/s  ({naive_count} records)", flush=True)
            rn_pg = naive_postgres(product, postgres_url, records)
            print(f"Rn naive Postgres commit/record {rn_pg:>10,.0f} records/s  ({naive_count} records)", flush=True)
        if ordered:
            print(f"ordered/unordered (median): Redis {_median([o[0] for o in ordered]):.2f}, Postgres "
                  f"{_median([o[1] for o in ordered]):.2f}  (goal >= 0.85)", flush=True)
        if args.secured:
            secured(args, count, redis_url, postgres_url, folder, (r1, r2), client)
        if args.avro:
            from hydrate_avro import avro_round

            avro_round(bootstrap, redis_url, folder, count, bare_loop, bench_spec,
                       lambda p: load_products([p])[0].product,
                       lambda *a, **k: consumer_run(*a, kafka_client=client, **k),
                       f"bench.orders.avro.{uuid.uuid4().hex[:8]}")
        if args.profile:
            profile_stores(args.order, topic, bootstrap, (redis_url, postgres_url), count, folder, client)
        print()
        medians = f" (medians of {args.rounds} rounds)" if args.rounds > 1 else ""
        print(f"R0 = {r0:,.0f} records/s, R1 = {r1:,.0f}, R2 = {r2:,.0f}{medians}")
        print(f"R1/R0 = {r1_ratio:.2f}  (goal >= 0.7; steady; from the start {r1_start / r0_start:.2f})")
        print(f"R2/R0 = {r2_ratio:.2f}  (goal >= 0.7; steady; from the start {r2_start / r0_start:.2f})")
        if others:
            o1_ratio = _median([o[0] / a[1] for a, o in zip(r0s, others, strict=True)])
            o2_ratio = _median([o[1] / a[1] for a, o in zip(r0s, others, strict=True)])
            print(f"with {other}: R1/R0 = {o1_ratio:.2f}, R2/R0 = {o2_ratio:.2f}")
        if not args.quick:
            print(f"R2/Rn = {r2 / rn_pg:.1f}  (goal >= 5; Postgres naive)   R1/Rn = {r1 / rn_redis:.1f} (Redis naive)")
        print(f"peak RSS of the consumer = {rss:.0f} MB  (goal < 250 MB)")
        if not args.quick:
            print(f"with two replicas: R1x2/R0 = {r1x2 / r0:.2f}, R2x2/R0 = {r2x2 / r0:.2f}")

    with_servers(body)


if __name__ == "__main__":
    main()
