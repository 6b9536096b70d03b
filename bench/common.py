"""Helpers the benchmarks share: servers, topics, the consumer process and what it costs.

`with_servers` starts a dev broker and embedded Redis/Postgres under a temporary state directory
(unless PROVISIONER_KAFKA_BOOTSTRAP, BENCH_REDIS_URL and BENCH_POSTGRES_URL are all set);
`consumer_run` launches `provisioner consume` processes and times them against the positions their
store keeps; `vm_hwm_kb` and `tree_cpu_seconds` read a process's peak RSS and CPU from /proc.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

from provisioner.spec.models import DataProduct  # noqa: E402
from provisioner.stores.registry import open_store  # noqa: E402
from provisioner.stream.settings import KafkaTarget, kafka_python_config, settings_of  # noqa: E402

PARTITIONS = 3
POLL_EVERY = 0.02
# The kafka-python consumer's own fetch settings (provisioner/stream/kafka_python.py).
FETCH = {"check_crcs": False, "fetch_max_wait_ms": 100, "max_partition_fetch_bytes": 4 * 1024 * 1024,
         "fetch_max_bytes": 32 * 1024 * 1024}
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def produce_records(bootstrap: KafkaTarget, topic: str, records: Iterable[tuple[bytes, bytes | None]],
                    partitions: int = PARTITIONS, partition_of: Callable[[bytes], int] | None = None) -> None:
    """Create `topic` and produce `(key, value)` records to it (value None: a tombstone), each to the
    partition `partition_of(key)` or, by default, the key's hash picks it (Kafka's default
    partitioner: the same key bytes land on the same partition in every topic of that many partitions)."""
    connection = kafka_python_config(settings_of(bootstrap))
    admin = KafkaAdminClient(**connection)
    admin.create_topics([NewTopic(topic, partitions, 1)])
    admin.close()
    producer = KafkaProducer(**connection, linger_ms=50, batch_size=512 * 1024, acks=1,
                             compression_type=None)
    for key, value in records:
        producer.send(topic, key=key, value=value, partition=None if partition_of is None else partition_of(key))
    producer.flush(timeout=300)
    producer.close()


@dataclass(frozen=True, slots=True)
class ConsumerRun:
    """One timed run of consumer processes until their store's positions cover `records`."""

    records: int
    elapsed: float  # seconds from launching the processes to the last record in the store
    steady_records: int  # records applied after the first observed batch
    steady_seconds: float  # from the first observed batch to the last record
    peak_rss_mb: float  # VmHWM of the largest consumer process
    cpu_seconds: float  # user + system CPU of the processes from launch to the last record
    steady_cpu_seconds: float  # the same over the steady span

    @property
    def from_start(self) -> float:
        return self.records / self.elapsed

    @property
    def steady(self) -> float:
        return self.steady_records / max(1e-9, self.steady_seconds)


def consumer_run(spec: Path, store: str, bootstrap: str, url: str, count: int, product: DataProduct,
                 folder: Path, replicas: int = 1, timeout: float = 600.0,
                 kafka_client: str | None = None, kafka_config: Path | None = None) -> ConsumerRun:
    """Launch `replicas` `provisioner consume` processes sharing the group (as `consumer.replicas` pods
    do) and time them: from launch, and steady (after the first batch the store holds, read from its
    positions every POLL_EVERY seconds) until the positions cover `count` records. `kafka_client`:
    `--kafka-client` (default: the consumer's default client); `kafka_config`: `--kafka-config`."""
    client = [] if kafka_client is None else ["--kafka-client", kafka_client]
    if kafka_config is not None:
        client += ["--kafka-config", str(kafka_config)]
    store_spec = product.store(store)
    reader = open_store(product, store_spec, url)
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "provisioner", "consume", "--spec", str(spec), "--store", store,
             "--bootstrap", bootstrap,
             "--status-file", str(folder / f"{product.name}.{store}.{replica}.status.json"), "--log-level", "WARNING",
             *client],
            cwd=str(ROOT), env={**os.environ, "PROVISIONER_STORE_URL": url},  # the URL's password stays off `ps`
        )
        for replica in range(replicas)
    ]
    first: tuple[float, int, float] | None = None
    peak_kb = 0
    try:
        while True:
            time.sleep(POLL_EVERY)
            peak_kb = max(peak_kb, *(vm_hwm_kb(proc.pid) for proc in procs))
            try:
                done = sum(reader.read_positions().values())
            except Exception:
                done = 0
            if first is None and done:
                first = (time.perf_counter(), done, sum(tree_cpu_seconds(proc.pid) for proc in procs))
            if done >= count:
                break
            for proc in procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"consumer exited with {proc.returncode}")
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"the consumer did not catch up within {timeout:.0f}s ({done} of {count} records)")
        caught_up = time.perf_counter()
        cpu = sum(tree_cpu_seconds(proc.pid) for proc in procs)
        peak_kb = max(peak_kb, *(vm_hwm_kb(proc.pid) for proc in procs))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
        reader.close()
    assert first is not None
    return ConsumerRun(count, caught_up - started, count - first[1], caught_up - first[0], peak_kb / 1024,
                       cpu, cpu - first[2])


def vm_hwm_kb(pid: int) -> int:
    """Peak resident set size of a live process (VmHWM), in kB; 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # the fields after the command name


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` (all its threads), of its live descendants, and of the
    descendants that exited and were waited for (the kernel adds those to their parent's cutime)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None:
                stats[int(entry.name)] = fields
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        fields = stats.get(current)
        if fields is None:
            continue
        # utime, stime, cutime, cstime: fields 14-17 of /proc/<pid>/stat (11-14 after the name).
        total += sum(int(value) for value in fields[11:15])
        pending.extend(children.get(current, []))
    return total / _CLOCK_TICKS


def with_servers(body: Callable[[str, str, str, Path], None], prefix: str = "bench-hydrate-") -> None:
    """Run `body(bootstrap, redis_url, postgres_url, scratch folder)` against the configured servers,
    or against a broker and embedded servers started for it (and stopped after)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    bootstrap = os.environ.get("PROVISIONER_KAFKA_BOOTSTRAP", "").strip()
    redis_url = os.environ.get("BENCH_REDIS_URL", "").strip()
    postgres_url = os.environ.get("BENCH_POSTGRES_URL", "").strip()
    if bootstrap and redis_url and postgres_url:
        body(bootstrap, redis_url, postgres_url, folder)
        return
    from provisioner.local import devbroker, embedded

    state = folder / "state"
    print("starting a broker and embedded Redis/Postgres under", state, flush=True)
    bootstrap = devbroker.up(state, port=0)
    try:
        body(bootstrap, embedded.start_redis(state).url, embedded.start_postgres(state).url, folder)
    finally:
        embedded.stop_all(state)
        devbroker.down(state, purge=True)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
