"""`provisioner consume` beside Kafka Connect with the Debezium JDBC sink, into the same Postgres.

The same 200,000 order events (`provisioner.stream.generate.orders`, 3 partitions, keyed by
order_id) are produced twice: as plain JSON for provisioner, and as schema'd JSON (JsonConverter,
schemas.enable=true) for Connect, where a cancellation is a tombstone (how a Connect sink is told
to delete). Both sides materialize one row per order: upsert by key, a cancellation deletes it;
columns order_id (the key), type, amount, qty, customer_id, customer_tier, ts. provisioner does it
with a spec (fields and `delete`), Connect with the Flatten transform (customer.id -> customer_id)
and the sink's `insert.mode=upsert`, `delete.enabled=true`, `primary.key.mode=record_key`.

Three systems, run in alternating rounds (medians printed):
  provisioner    `provisioner consume`, the spec's batchSize 5000, its default Kafka client
                 (confluent-kafka; PROVISIONER_KAFKA_CLIENT=kafka-python measures the other);
  connect        a Connect standalone worker (Kafka 4.1, the dev broker's version) with the sink's
                 defaults (batch.size 500, the consumer's max.poll.records 500);
  connect-best   the fastest correct configuration found: batch.size 5000, max.poll.records 5000,
                 use.reduction.buffer (one write per key and batch), hibernate.jdbc.batch_size 5000
                 and the driver's reWriteBatchedInserts (multi-row INSERTs).
Each run writes a fresh table from the start of its topic; afterwards the whole table is compared
with the expected materialization (computed here from the events).

Figures: steady rows/s (from the first records the sink has applied to the last; provisioner's
progress is read from its positions in Postgres, Connect's from its group's committed offsets, the
worker committing every 100 ms); rows/s from launching the process (JVM or Python start, group
join, plugin scan included); rows per CPU-second (user + system time of the process tree from
/proc/<pid>/stat, over the steady span and from launch; the Postgres server's CPU over the run is
shown apart); peak RSS (VmHWM). Ratios are provisioner / connect-best (goals: steady rows/s >= 2,
rows per CPU-second >= 4).

Connect's jars come from Maven Central on first use (`mvn`, into the cache
$PROVISIONER_CACHE or ~/.cache/provisioner, beside the dev broker's): connect-runtime, connect-json,
connect-file and connect-transforms at the broker's Kafka version, and the Debezium JDBC sink's
plugin archive (io.debezium:debezium-connector-jdbc, classifier plugin, a tar.gz holding the
connector and its dependencies). Everything resolves from Maven Central only (Debezium's parent POM
names another repository): a settings.xml with a mirror of `*`.

Run: .venv/bin/python bench/peers.py [EVENTS=200000] [--rounds N=2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (
    PARTITIONS,
    ROOT,
    ConsumerRun,
    consumer_run,
    median,
    produce_records,
    tree_cpu_seconds,
    vm_hwm_kb,
    with_servers,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError
    from kafka.partitioner.default import murmur2

import psycopg
import yaml

from provisioner.files import cache_root, file_lock
from provisioner.local import devbroker
from provisioner.local.processes import free_port
from provisioner.spec.loader import load_products
from provisioner.stream import generate

KAFKA_VERSION = devbroker.KAFKA_VERSION
DEBEZIUM_VERSION = "3.6.0.Final"
CONNECT_ARTIFACTS = ("connect-runtime", "connect-json", "connect-file", "connect-transforms")
COLUMNS = ("order_id", "type", "amount", "qty", "customer_id", "customer_tier", "ts")
RUN_TIMEOUT_S = 900.0  # one run, from launch to the last record
PROGRESS_EVERY = 0.05  # how often Connect's committed offsets are read
# The JVM options of Kafka's connect-standalone.sh (kafka-run-class.sh's defaults).
CONNECT_JVM = ["-Xms256M", "-Xmx2G", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
               "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
               "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true"]


# -- fetching Kafka Connect and the sink ------------------------------------------------------

_SETTINGS = """<settings>
  <mirrors>
    <mirror><id>central-only</id><mirrorOf>*</mirrorOf><url>https://repo.maven.apache.org/maven2</url></mirror>
  </mirrors>
</settings>
"""

_WORKER_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.bench</groupId>
  <artifactId>connect-worker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencyManagement>
    <dependencies>
      <dependency>
        <groupId>org.apache.logging.log4j</groupId>
        <artifactId>log4j-bom</artifactId>
        <version>{log4j}</version>
        <type>pom</type>
        <scope>import</scope>
      </dependency>
    </dependencies>
  </dependencyManagement>
  <dependencies>
{connect}
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
    </dependency>
  </dependencies>
</project>
"""


def _mvn(arguments: list[str], scratch: Path, what: str) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise SystemExit(f"Maven (`mvn`) is needed once to fetch {what}; install it")
    settings = scratch / "settings.xml"
    settings.write_text(_SETTINGS)
    command = [mvn, "-B", "-q", "-s", str(settings), f"-Dmaven.repo.local={cache_root() / 'maven'}", *arguments]
    # In the scratch folder: without a project, `unpack` leaves its markers under the working directory.
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900, cwd=scratch)
    if result.returncode != 0:
        raise SystemExit(f"fetching {what} with Maven failed:\n{(result.stdout + result.stderr).strip()[-2000:]}")


def _fetched(target: Path, what: str, fetch: Any) -> Path:
    """`target`, made by `fetch(scratch)` into a scratch folder and renamed, once (under a lock)."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.parent / ".fetch.lock"):
        if target.is_dir():
            return target
        scratch = Path(tempfile.mkdtemp(prefix="fetch-", dir=target.parent))
        try:
            print(f"fetching {what} from Maven Central into {target}", flush=True)
            fetch(scratch).rename(target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return target


def connect_libs() -> Path:
    """The Connect worker's classpath: connect-runtime and friends at the broker's Kafka version."""
    def fetch(scratch: Path) -> Path:
        dependency = ("    <dependency><groupId>org.apache.kafka</groupId><artifactId>{}</artifactId>"
                      f"<version>{KAFKA_VERSION}</version></dependency>")
        pom = scratch / "pom.xml"
        pom.write_text(_WORKER_POM.format(log4j=devbroker.LOG4J_VERSION,
                                          connect="\n".join(dependency.format(a) for a in CONNECT_ARTIFACTS)))
        _mvn(["-f", str(pom), f"{devbroker.DEPENDENCY_PLUGIN}:copy-dependencies", "-DincludeScope=runtime",
              f"-DoutputDirectory={scratch / 'libs'}"], scratch, f"Kafka Connect {KAFKA_VERSION}")
        return scratch / "libs"

    return _fetched(cache_root() / "connect" / KAFKA_VERSION / "libs", f"Kafka Connect {KAFKA_VERSION}", fetch)


def sink_plugins() -> Path:
    """A plugin.path folder holding the Debezium JDBC sink (its released plugin archive, unpacked)."""
    def fetch(scratch: Path) -> Path:
        _mvn([f"{devbroker.DEPENDENCY_PLUGIN}:unpack",
              f"-Dartifact=io.debezium:debezium-connector-jdbc:{DEBEZIUM_VERSION}:tar.gz:plugin",
              f"-DoutputDirectory={scratch / 'plugins'}"], scratch, f"the Debezium JDBC sink {DEBEZIUM_VERSION}")
        if not any((scratch / "plugins").glob("*/debezium-connector-jdbc-*.jar")):
            raise SystemExit("the Debezium JDBC sink's plugin archive holds no connector jar")
        return scratch / "plugins"

    return _fetched(cache_root() / "connect" / f"debezium-jdbc-{DEBEZIUM_VERSION}",
                    f"the Debezium JDBC sink {DEBEZIUM_VERSION}", fetch)


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise SystemExit("Java 17+ is needed to run Kafka Connect; install a JDK or set JAVA_HOME")
    return found


# -- the events, both encodings, and the expected table ---------------------------------------

_ORDER_SCHEMA = {
    "type": "struct", "name": "orders.Order", "optional": False, "fields": [
        {"field": "type", "type": "string", "optional": False},
        {"field": "order_id", "type": "string", "optional": False},
        {"field": "amount", "type": "double", "optional": False},
        {"field": "qty", "type": "int32", "optional": False},
        {"field": "customer", "type": "struct", "name": "orders.Customer", "optional": False, "fields": [
            {"field": "id", "type": "string", "optional": False},
            {"field": "tier", "type": "string", "optional": False}]},
        {"field": "ts", "type": "string", "optional": False},
    ],
}


def events(count: int) -> list[tuple[str, dict[str, Any]]]:
    return [(key, value) for key, value in generate.orders(count, seed=1) if value is not None]


def expected_rows(stream: list[tuple[str, dict[str, Any]]]) -> dict[str, tuple[Any, ...]]:
    """The materialization both sides must reach: the last event of every order not cancelled."""
    rows: dict[str, tuple[Any, ...]] = {}
    for key, event in stream:
        if event["type"] == "OrderCancelled":
            rows.pop(key, None)
        else:
            rows[key] = (event["type"], event["amount"], event["qty"], event["customer"]["id"],
                         event["customer"]["tier"], event["ts"])
    return rows


_KEY_SCHEMA = {"type": "struct", "name": "orders.Key", "optional": False,
               "fields": [{"field": "order_id", "type": "string", "optional": False}]}


def produce_both(bootstrap: str, stream: list[tuple[str, dict[str, Any]]], plain: str, schemad: str) -> None:
    """The plain topic keyed by the order id; the schema'd one keyed by a struct holding it (the sink
    takes its primary key from a struct key), each order on the same partition in both."""
    produce_records(bootstrap, plain, ((key.encode(), json.dumps(event).encode()) for key, event in stream))
    partitions = {}
    records = []
    for key, event in stream:
        struct_key = json.dumps({"schema": _KEY_SCHEMA, "payload": {"order_id": key}}).encode()
        partitions[struct_key] = (murmur2(key.encode()) & 0x7FFFFFFF) % PARTITIONS  # as the plain topic's
        value = None if event["type"] == "OrderCancelled" else json.dumps({"schema": _ORDER_SCHEMA, "payload": event})
        records.append((struct_key, None if value is None else value.encode()))
    produce_records(bootstrap, schemad, records, partition_of=partitions.__getitem__)


def peers_spec(folder: Path, topic: str) -> tuple[Path, str]:
    """specs/vip-orders.yaml made to materialize what the Connect sink does: every order, upserted
    by key with the same columns, deleted by a cancellation. Its path and table."""
    base = yaml.safe_load((ROOT / "specs" / "vip-orders.yaml").read_text())
    name = f"peers-{uuid.uuid4().hex[:8]}"
    table = name.replace("-", "_")
    base["metadata"]["name"] = name
    spec = base["spec"]
    spec["source"]["topic"] = topic
    spec.pop("filter", None)
    spec.pop("tests", None)
    spec["delete"] = "event.type == 'OrderCancelled'"
    spec["fields"] = {"order_id": "event.order_id", "type": "event.type", "amount": "event.amount",
                      "qty": "event.qty", "customer_id": "event.customer.id",
                      "customer_tier": "event.customer.tier", "ts": "event.ts"}
    spec["key"] = "order_id"
    spec["stores"] = [{"name": "db", "postgres": {"table": table,
                                                  "columns": {"amount": "double precision", "qty": "integer"}}}]
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(base, sort_keys=False))
    return path, table


def check_table(url: str, table: str, expected: dict[str, tuple[Any, ...]]) -> str:
    """'ok', or what differs between `table` and the expected rows."""
    with psycopg.connect(url) as connection:
        rows = connection.execute(f'SELECT {", ".join(COLUMNS)} FROM "{table}"').fetchall()
    found = {row[0]: (row[1], float(row[2]), int(row[3]), row[4], row[5], row[6]) for row in rows}
    if len(rows) != len(found):
        return f"{len(rows) - len(found)} duplicate keys"
    missing = expected.keys() - found.keys()
    extra = found.keys() - expected.keys()
    wrong = [key for key in expected.keys() & found.keys() if found[key] != expected[key]]
    if missing or extra or wrong:
        sample = wrong[0] if wrong else None
        detail = f" (e.g. {sample}: {found[sample]} != {expected[sample]})" if sample else ""
        return f"{len(missing)} missing, {len(extra)} extra, {len(wrong)} differ{detail}"
    return "ok"


# -- runs -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    run: ConsumerRun
    postgres_cpu: float  # the Postgres server's CPU seconds from launch to the last record
    correct: str


def postgres_server_pid(url: str) -> int:
    """The postmaster's pid (the parent of a backend), to read the server's CPU from /proc."""
    with psycopg.connect(url) as connection:
        backend = connection.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
    text = Path(f"/proc/{backend}/stat").read_text()
    return int(text[text.rindex(")") + 2:].split()[1])


_LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.file.ref = FILE
"""


@dataclass(frozen=True, slots=True)
class ConnectConfig:
    name: str
    worker: dict[str, str]
    connector: dict[str, str]
    url_options: str = ""


CONNECT_DEFAULT = ConnectConfig("connect", {}, {})
CONNECT_BEST = ConnectConfig(
    "connect-best",
    {"consumer.max.poll.records": "5000"},
    {"batch.size": "5000", "use.reduction.buffer": "true", "hibernate.jdbc.batch_size": "5000"},
    "?reWriteBatchedInserts=true",
)


def _properties(settings: dict[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def connect_run(config: ConnectConfig, bootstrap: str, topic: str, postgres_url: str, count: int,
                folder: Path, libs: Path, plugins: Path) -> tuple[ConsumerRun, str]:
    """Launch a Connect standalone worker with one JDBC sink writing a fresh table, time it until its
    committed offsets cover `count` records, stop it. The run and the table."""
    run_id = uuid.uuid4().hex[:8]
    name = f"peers-{config.name}-{run_id}"
    table = f"connect_{run_id}"
    work = folder / name
    work.mkdir()
    pg = psycopg.conninfo.conninfo_to_dict(postgres_url)
    worker = {
        "bootstrap.servers": bootstrap,
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "true",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "true",
        "offset.storage.file.filename": str(work / "connect.offsets"),
        "offset.flush.interval.ms": "100",  # the progress this bench reads; the default is 60 s
        "plugin.path": str(plugins),
        "listeners": f"http://127.0.0.1:{free_port()}",
        **config.worker,
    }
    connector = {
        "name": name,
        "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
        "tasks.max": "1",
        "topics": topic,
        "connection.url": f"jdbc:postgresql://{pg.get('host', '127.0.0.1')}:{pg.get('port', 5432)}/"
                          f"{pg.get('dbname', 'postgres')}{config.url_options}",
        "connection.username": pg.get("user", "postgres"),
        "connection.password": pg.get("password", ""),
        "insert.mode": "upsert",
        "delete.enabled": "true",
        "primary.key.mode": "record_key",
        "schema.evolution": "basic",
        "collection.name.format": table,
        "transforms": "flatten",
        "transforms.flatten.type": "org.apache.kafka.connect.transforms.Flatten$Value",
        "transforms.flatten.delimiter": "_",
        **config.connector,
    }
    (work / "worker.properties").write_text(_properties(worker))
    (work / "connector.properties").write_text(_properties(connector))
    (work / "log4j2.properties").write_text(_LOG4J2.format(log=work / "connect.log"))
    group = f"connect-{name}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    output = (work / "stdout.log").open("wb")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [_java(), *CONNECT_JVM, f"-Dlog4j2.configurationFile={work / 'log4j2.properties'}",
         "-cp", f"{libs}/*", "org.apache.kafka.connect.cli.ConnectStandalone",
         str(work / "worker.properties"), str(work / "connector.properties")],
        stdout=output, stderr=subprocess.STDOUT, cwd=str(work),
    )
    first: tuple[float, int, float] | None = None
    peak_kb = 0
    checked = started
    try:
        while True:
            time.sleep(PROGRESS_EVERY)
            peak_kb = max(peak_kb, vm_hwm_kb(proc.pid))
            if time.perf_counter() - checked > 1.0:
                checked = time.perf_counter()
                _check_task(worker["listeners"], name, work)
            try:
                committed = admin.list_group_offsets(group).get(group, {})
            except KafkaError:
                committed = {}
            done = sum(meta.offset for meta in committed.values() if meta.offset > 0)
            if first is None and done:
                first = (time.perf_counter(), done, tree_cpu_seconds(proc.pid))
            if done >= count:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"the Connect worker exited with {proc.returncode}; see {work}")
            if time.perf_counter() - started > RUN_TIMEOUT_S:
                raise RuntimeError(f"Connect did not catch up within {RUN_TIMEOUT_S:.0f}s ({done} of {count}); "
                                   f"see {work}")
        caught_up = time.perf_counter()
        cpu = tree_cpu_seconds(proc.pid)
        peak_kb = max(peak_kb, vm_hwm_kb(proc.pid))
    finally:
        admin.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        output.close()
    assert first is not None
    return ConsumerRun(count, caught_up - started, count - first[1], caught_up - first[0], peak_kb / 1024,
                       cpu, cpu - first[2]), table


def _check_task(listener: str, name: str, work: Path) -> None:
    """Raise if the connector's task failed (the worker itself keeps running)."""
    try:
        with urllib.request.urlopen(f"{listener}/connectors/{name}/status", timeout=2) as response:
            status = json.load(response)
    except (OSError, ValueError):
        return  # not listening yet
    for task in status.get("tasks", []):
        if task.get("state") == "FAILED":
            trace = str(task.get("trace", "")).strip().splitlines()
            raise RuntimeError(f"the Connect task failed ({work}): {' / '.join(trace[:1] + trace[-3:])}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("events", nargs="?", type=int, default=200_000, help="events produced (200000)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds, medians printed (default 2)")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    # A SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the worker and the servers are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    libs, plugins = connect_libs(), sink_plugins()
    stream = events(args.events)
    expected = expected_rows(stream)
    count = len(stream)

    def body(bootstrap: str, _redis_url: str, postgres_url: str, folder: Path) -> None:
        suffix = uuid.uuid4().hex[:8]
        plain, schemad = f"peers.orders.{suffix}", f"peers.orders-connect.{suffix}"
        t = time.perf_counter()
        produce_both(bootstrap, stream, plain, schemad)
        print(f"produced {count} events twice (plain JSON, schema'd JSON) in {time.perf_counter() - t:.1f}s;"
              f" expected table: {len(expected)} rows", flush=True)
        server = postgres_server_pid(postgres_url)
        results: dict[str, list[Result]] = {"provisioner": [], CONNECT_DEFAULT.name: [], CONNECT_BEST.name: []}
        order = ["provisioner", CONNECT_DEFAULT.name, CONNECT_BEST.name]
        for round_ in range(args.rounds):
            print(f"-- round {round_ + 1}/{args.rounds}", flush=True)
            for system in order if round_ % 2 == 0 else order[::-1]:
                pg_before = tree_cpu_seconds(server)
                if system == "provisioner":
                    spec, table = peers_spec(folder, plain)
                    product = load_products([spec])[0].product
                    run = consumer_run(spec, "db", bootstrap, postgres_url, count, product, folder,
                                       timeout=RUN_TIMEOUT_S)
                else:
                    config = CONNECT_DEFAULT if system == CONNECT_DEFAULT.name else CONNECT_BEST
                    run, table = connect_run(config, bootstrap, schemad, postgres_url, count, folder, libs, plugins)
                pg_cpu = tree_cpu_seconds(server) - pg_before
                correct = check_table(postgres_url, table, expected)
                results[system].append(Result(run, pg_cpu, correct))
                print(f"{system:<13} {run.steady:>9,.0f} rows/s steady  {run.from_start:>9,.0f} from launch  "
                      f"{run.steady_records / max(1e-9, run.steady_cpu_seconds):>9,.0f} rows/CPU-s steady "
                      f"({run.records / run.cpu_seconds:,.0f} from launch; Postgres {pg_cpu:.1f} CPU-s)  "
                      f"RSS {run.peak_rss_mb:.0f} MB  table {correct}", flush=True)

        def figures(system: str) -> dict[str, float]:
            runs = results[system]
            return {
                "steady": median([r.run.steady for r in runs]),
                "launch": median([r.run.from_start for r in runs]),
                "cpu_steady": median([r.run.steady_records / max(1e-9, r.run.steady_cpu_seconds) for r in runs]),
                "cpu_launch": median([r.run.records / r.run.cpu_seconds for r in runs]),
                "cpu_with_pg": median([r.run.records / (r.run.cpu_seconds + r.postgres_cpu) for r in runs]),
                "rss": max(r.run.peak_rss_mb for r in runs),
            }

        table_rows = {system: figures(system) for system in results}
        print()
        print(f"medians of {args.rounds} rounds, {count:,} events, {len(expected):,} rows in the end")
        print(f"{'':<13} {'steady rows/s':>13} {'from launch':>12} {'rows/CPU-s':>11} {'(launch)':>9} "
              f"{'(+Postgres)':>11} {'peak RSS':>9}  table")
        for system, row in table_rows.items():
            verdicts = {r.correct for r in results[system]}
            print(f"{system:<13} {row['steady']:>13,.0f} {row['launch']:>12,.0f} {row['cpu_steady']:>11,.0f} "
                  f"{row['cpu_launch']:>9,.0f} {row['cpu_with_pg']:>11,.0f} {row['rss']:>6,.0f} MB  "
                  f"{', '.join(sorted(verdicts))}")
        ours, best = table_rows["provisioner"], table_rows[CONNECT_BEST.name]
        print()
        print(f"provisioner / connect-best: steady rows/s {ours['steady'] / best['steady']:.1f}x (goal >= 2), "
              f"from launch {ours['launch'] / best['launch']:.1f}x, rows per CPU-second "
              f"{ours['cpu_steady'] / best['cpu_steady']:.1f}x steady (goal >= 4), "
              f"{ours['cpu_launch'] / best['cpu_launch']:.1f}x from launch, "
              f"{ours['cpu_with_pg'] / best['cpu_with_pg']:.1f}x with Postgres's CPU, "
              f"peak RSS {ours['rss'] / best['rss']:.2f}x")
        default = table_rows[CONNECT_DEFAULT.name]
        print(f"connect-best / connect (defaults): steady rows/s {best['steady'] / default['steady']:.1f}x")

    with_servers(body, prefix="bench-peers-")


if __name__ == "__main__":
    main()
