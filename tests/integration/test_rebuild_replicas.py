"""Rebuilds with `consumer.replicas: 2`: two `provisioner consume` processes of the same spec elect
one rebuilder, which builds the new version (its shadow group gets every partition) and switches,
while both keep the live store fresh with the recorded spec; afterwards both follow with the new
spec, and no batch of the old spec lands in the new version. A killed rebuilder is replaced by the
other replica, a spec changed twice during one rebuild ends with the last one, and a rebuild's dead
letters carry the version they were refused for. Real broker, real Redis and Postgres."""

from __future__ import annotations

import re
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.spec.fingerprint import fingerprint
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.stores.versions import shadow_for, version_id
from tests.integration import harness as h
from tests.integration.test_consumer_stores import reset_store, store_url, unique_name
from tests.integration.test_rebuild import (
    FAST_GROUP,
    Reader,
    expected_rows,
    leftovers,
    read_version,
    renamed,
    snapshot,
    store_for,
    wait_switched,
    write_spec,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ENV = {**FAST_GROUP, "PROVISIONER_REBUILD_LEASE_MS": "3000"}
REBUILDING = "beside the live store"
WAITING = "another replica rebuilds"
FOLLOWING = "another replica switched"
V3_FILTER = "event.type == 'OrderPlaced' && event.qty >= 2"


def two_replica_spec(tmp_path: Path, kind: str, name: str, topic: str) -> Path:
    spec = h.order_spec(tmp_path, name=name, topic=topic, stores=[store_for(kind, name)], batch_size=500,
                        batch_latency="50ms")
    document = yaml.safe_load(spec.read_text(encoding="utf-8"))
    document["spec"]["consumer"]["replicas"] = 2
    spec.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return spec


def set_filter(path: Path, expression: str) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    document["spec"]["filter"] = expression
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


def start_pair(spec: Path, store: str, bootstrap: str, url: str, tmp_path: Path,
               envs: list[dict[str, str]] | None = None) -> list[h.ConsumerProcess]:
    envs = envs or [{}, {}]
    return [h.ConsumerProcess(spec, store, bootstrap, url, tmp_path, f"r{i}", env={**ENV, **envs[i]}).start()
            for i in (0, 1)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Liveness(threading.Thread):
    """Asks each replica's /healthz in a loop and keeps every answer other than 200 (a replica
    being restarted does not answer at all, which is not a stall)."""

    def __init__(self, ports: list[int]) -> None:
        super().__init__(daemon=True)
        self.ports = ports
        self.answers = 0
        self.stalls: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            for port in self.ports:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
                        self.answers += answer.status == 200
                except urllib.error.HTTPError as error:
                    self.stalls.append(f"{port}: {error.code} {error.read()!r}")
                except OSError:
                    pass
            time.sleep(0.2)


def restart(replicas: list[h.ConsumerProcess]) -> list[int]:
    """Start each replica again; returns where each one's log stood before."""
    marks = [len(r.log()) for r in replicas]
    for replica in replicas:
        replica.start()
    return marks


def since(replica: h.ConsumerProcess, mark: int) -> str:
    return replica.log()[mark:]


def rebuilders(replicas: list[h.ConsumerProcess], marks: list[int]) -> list[int]:
    return [i for i, (r, m) in enumerate(zip(replicas, marks, strict=True)) if REBUILDING in since(r, m)]


def assigned_after(text: str, marker: str) -> bool:
    """Whether the log, after its last `marker`, shows a non-empty partition assignment."""
    at = text.rfind(marker)
    return at >= 0 and re.search(r"assigned partitions \[\d", text[at:]) is not None


def shadow_progress(product: DataProduct, store_spec: StoreSpec, url: str) -> int:
    shadow_spec, _ = shadow_for(product, store_spec, version_id(fingerprint(product, store_spec)))
    try:
        return sum(h.store_positions(product, shadow_spec, url).values())
    except Exception:
        return 0


def hydrated_pair(kind: str, kafka_bootstrap: str, redis_server: Any, postgres_server: Any, topic: str,
                  tmp_path: Path, events: int, seed: int, envs: list[dict[str, str]] | None = None,
                  ) -> tuple[Path, DataProduct, StoreSpec, str, list[h.ConsumerProcess]]:
    name = unique_name(topic)
    spec = two_replica_spec(tmp_path, kind, name, topic)
    v1 = h.load_product(spec)
    store_v1 = v1.spec.stores[0]
    url = store_url(kind, redis_server, postgres_server)
    reset_store(v1, store_v1, url)
    h.create_topic(kafka_bootstrap, topic, partitions=3)
    h.produce(kafka_bootstrap, topic, h.order_events(events, seed=seed, keys=3000, tombstones=False))
    replicas = start_pair(spec, store_v1.name, kafka_bootstrap, url, tmp_path, envs)
    h.wait_caught_up(v1, store_v1, url, h.end_offsets(kafka_bootstrap, topic), 180, replicas)
    return spec, v1, store_v1, url, replicas


def check_final(kind: str, kafka_bootstrap: str, topic: str, url: str, product: DataProduct,
                store_spec: StoreSpec) -> None:
    records = h.read_topic(kafka_bootstrap, topic)
    actual = {row.pop("_key"): row for row in snapshot(kind, url, product, store_spec)}
    assert actual == expected_rows(kind, product, store_spec, records)
    assert leftovers(kind, url, product, store_spec) == []
    record = read_version(product, store_spec, url)
    assert record is not None and record.fingerprint == fingerprint(product, store_spec) and record.shadow is None


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_two_replicas_elect_one_rebuilder_and_both_follow_the_new_version(
    kind: str, kafka_bootstrap: str, redis_server: Any, postgres_server: Any, topic: str, tmp_path: Path
) -> None:
    ports = [free_port(), free_port()]
    # /healthz must answer 200 throughout: the rebuild, the wait for it, the switch.
    envs = [{"PROVISIONER_METRICS_PORT": str(port), "PROVISIONER_STALL_AFTER": "5"} for port in ports]
    spec, v1, store_v1, url, replicas = hydrated_pair(kind, kafka_bootstrap, redis_server, postgres_server,
                                                      topic, tmp_path, 20_000, 31, envs)
    reader: Reader | None = None
    liveness = Liveness(ports)
    liveness.start()
    try:
        initial = h.read_topic(kafka_bootstrap, topic)
        write_spec(spec, v2=True)
        v2 = h.load_product(spec)
        store_v2 = v2.spec.stores[0]
        floors = {"v1": expected_rows(kind, v1, store_v1, initial), "v2": expected_rows(kind, v2, store_v2, initial)}
        reader = Reader(kind, url, v1, store_v1, floors)
        reader.start()
        time.sleep(0.5)
        for replica in replicas:
            assert replica.stop() == 0
        marks = restart(replicas)
        more = renamed(h.order_events(6_000, seed=32, keys=1000, tombstones=False), b"n")
        for i in range(0, len(more), 1000):
            h.produce(kafka_bootstrap, topic, more[i : i + 1000])
            time.sleep(0.3)
        wait_switched(v2, store_v2, url, 240, replicas)
        [builder] = rebuilders(replicas, marks)
        other = 1 - builder
        # Both follow the live store with the new spec, each with its share of the partitions.
        h.wait_for(lambda: assigned_after(since(replicas[builder], marks[builder]), "switched")
                   and assigned_after(since(replicas[other], marks[other]), FOLLOWING), 60,
                   "both replicas to follow the new version", on_timeout=lambda: "\n".join(r.log()[-3000:] for r in replicas))
        h.produce(kafka_bootstrap, topic, renamed(h.order_events(1_000, seed=33, keys=300, tombstones=False), b"m"))
        h.wait_caught_up(v2, store_v2, url, h.end_offsets(kafka_bootstrap, topic), 120, replicas)
        time.sleep(0.5)
        reader.halt.set()
        reader.join(timeout=30)
        liveness.halt.set()
        liveness.join(timeout=30)

        assert not liveness.stalls, liveness.stalls[:5]
        assert liveness.answers > 20
        assert not reader.problems, reader.problems[:10]
        assert reader.seen["v1"] > 0 and reader.seen["v2"] > 0, reader.seen
        logs = [since(r, m) for r, m in zip(replicas, marks, strict=True)]
        assert "switched" in logs[builder] and WAITING not in logs[builder]
        assert WAITING in logs[other] and FOLLOWING in logs[other] and REBUILDING not in logs[other]
        check_final(kind, kafka_bootstrap, topic, url, v2, store_v2)
        for replica in replicas:
            assert replica.stop() == 0
    finally:
        liveness.halt.set()
        if reader is not None:
            reader.halt.set()
        for replica in replicas:
            replica.kill()


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_the_other_replica_takes_over_when_the_rebuilder_is_killed(
    kind: str, kafka_bootstrap: str, redis_server: Any, postgres_server: Any, topic: str, tmp_path: Path
) -> None:
    spec, _, _, url, replicas = hydrated_pair(kind, kafka_bootstrap, redis_server, postgres_server, topic,
                                              tmp_path, 60_000, 41)
    try:
        for replica in replicas:
            assert replica.stop() == 0
        write_spec(spec, v2=True)
        v2 = h.load_product(spec)
        store_v2 = v2.spec.stores[0]
        marks = restart(replicas)
        h.wait_for(lambda: len(rebuilders(replicas, marks)) == 1, 60, "a rebuilder to be elected",
                   on_timeout=lambda: "\n".join(r.log()[-3000:] for r in replicas))
        [builder] = rebuilders(replicas, marks)
        other = 1 - builder
        h.wait_for(lambda: shadow_progress(v2, store_v2, url) > 2_000, 120, "the shadow to progress",
                   interval=0.05, on_timeout=replicas[builder].log)
        replicas[builder].kill()
        assert read_version(v2, store_v2, url).shadow is not None  # type: ignore[union-attr]
        h.produce(kafka_bootstrap, topic, renamed(h.order_events(500, seed=42, keys=200, tombstones=False), b"k"))
        wait_switched(v2, store_v2, url, 240, replicas)
        # The store shows the switch as soon as it commits; the process logs it a moment later.
        h.wait_for(lambda: "switched" in since(replicas[other], marks[other]), 30, "the switch in the log",
                   on_timeout=replicas[other].log)
        took_over = since(replicas[other], marks[other])
        assert WAITING in took_over and REBUILDING in took_over and "resuming version" in took_over
        h.produce(kafka_bootstrap, topic, renamed(h.order_events(500, seed=43, keys=200, tombstones=False), b"z"))
        h.wait_caught_up(v2, store_v2, url, h.end_offsets(kafka_bootstrap, topic), 120, [replicas[other]])
        check_final(kind, kafka_bootstrap, topic, url, v2, store_v2)
        # The killed one, restarted, finds the new version and follows it beside the other.
        mark = len(replicas[builder].log())
        replicas[builder].start()
        h.wait_for(lambda: "assigned partitions [" in since(replicas[builder], mark), 60,
                   "the restarted replica to follow", on_timeout=replicas[builder].log)
        assert REBUILDING not in since(replicas[builder], mark)
        for replica in replicas:
            assert replica.stop() == 0
    finally:
        for replica in replicas:
            replica.kill()


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_a_spec_changed_twice_during_a_rebuild_ends_with_the_last_one(
    kind: str, kafka_bootstrap: str, redis_server: Any, postgres_server: Any, topic: str, tmp_path: Path
) -> None:
    spec, _, _, url, replicas = hydrated_pair(kind, kafka_bootstrap, redis_server, postgres_server, topic,
                                              tmp_path, 60_000, 51)
    try:
        for replica in replicas:
            assert replica.stop() == 0
        write_spec(spec, v2=True)
        v2 = h.load_product(spec)
        store_v2 = v2.spec.stores[0]
        marks = restart(replicas)
        h.wait_for(lambda: shadow_progress(v2, store_v2, url) > 2_000, 120, "the v2 shadow to progress",
                   interval=0.05, on_timeout=lambda: "\n".join(r.log()[-3000:] for r in replicas))
        for replica in replicas:
            assert replica.stop() == 0
        assert read_version(v2, store_v2, url).fingerprint != fingerprint(v2, store_v2)  # type: ignore[union-attr]
        set_filter(spec, V3_FILTER)
        v3 = h.load_product(spec)
        store_v3 = v3.spec.stores[0]
        marks = restart(replicas)
        wait_switched(v3, store_v3, url, 240, replicas)
        assert len(rebuilders(replicas, marks)) == 1
        assert any("built for an earlier spec" in since(r, m) for r, m in zip(replicas, marks, strict=True))
        h.produce(kafka_bootstrap, topic, renamed(h.order_events(500, seed=52, keys=200, tombstones=False), b"z"))
        h.wait_caught_up(v3, store_v3, url, h.end_offsets(kafka_bootstrap, topic), 120, replicas)
        check_final(kind, kafka_bootstrap, topic, url, v3, store_v3)
        assert shadow_progress(v2, store_v2, url) == 0
        for replica in replicas:
            assert replica.stop() == 0
    finally:
        for replica in replicas:
            replica.kill()


def test_a_rebuilds_dead_letters_carry_the_version_header(
    kafka_bootstrap: str, redis_server: Any, postgres_server: Any, topic: str, tmp_path: Path
) -> None:
    kind = "postgres"
    spec, v1, _, url, replicas = hydrated_pair(kind, kafka_bootstrap, redis_server, postgres_server,
                                               topic, tmp_path, 5_000, 61)
    name = v1.name
    try:
        for replica in replicas:
            assert replica.stop() == 0
        # Refused by the old spec and the new one alike, whatever their filters keep.
        poison = {stage: event for stage, event in h.poison_events().items()
                  if stage in ("decode", "schema", "filter")}
        h.produce(kafka_bootstrap, topic, list(poison.values()))
        write_spec(spec, v2=True)
        v2 = h.load_product(spec)
        store_v2 = v2.spec.stores[0]
        restart(replicas)
        wait_switched(v2, store_v2, url, 240, replicas)
        h.wait_caught_up(v2, store_v2, url, h.end_offsets(kafka_bootstrap, topic), 120, replicas)
        target = fingerprint(v2, store_v2)
        # Each poison record is refused twice: by the live version's followers (no version header)
        # and by the rebuild (the new version's fingerprint in `provisioner.version`). A batch read
        # again after a rebalance may send its dead letters again: compare sets.
        letters = h.read_dead_letters(kafka_bootstrap, f"{name}.dlq", 2 * len(poison))
        keys = {event[0] for event in poison.values()}

        def stages(version: bytes | None) -> set[tuple[bytes | None, str]]:
            return {(r.key, dict(r.headers)["provisioner.error.stage"].decode()) for r in letters
                    if r.key in keys and dict(r.headers).get("provisioner.version") == version}

        assert {stage for _, stage in stages(target.encode())} == set(poison), [dict(r.headers) for r in letters]
        assert {stage for _, stage in stages(None)} == set(poison)
        assert stages(target.encode()) == stages(None)
        check_final(kind, kafka_bootstrap, topic, url, v2, store_v2)
        for replica in replicas:
            assert replica.stop() == 0
    finally:
        for replica in replicas:
            replica.kill()


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_a_spec_reverted_during_a_rebuild_drops_the_version_being_built(
    kind: str, kafka_bootstrap: str, redis_server: Any, postgres_server: Any, topic: str, tmp_path: Path
) -> None:
    spec, v1, store_v1, url, replicas = hydrated_pair(kind, kafka_bootstrap, redis_server, postgres_server,
                                                      topic, tmp_path, 60_000, 71)
    original = spec.read_text(encoding="utf-8")
    try:
        for replica in replicas:
            assert replica.stop() == 0
        write_spec(spec, v2=True)
        v2 = h.load_product(spec)
        store_v2 = v2.spec.stores[0]
        restart(replicas)
        h.wait_for(lambda: shadow_progress(v2, store_v2, url) > 2_000, 120, "the v2 shadow to progress",
                   interval=0.05, on_timeout=lambda: "\n".join(r.log()[-3000:] for r in replicas))
        for replica in replicas:
            replica.kill()  # the rebuilder dies holding its election (a Redis lease outlives it)
        spec.write_text(original, encoding="utf-8")
        marks = restart(replicas)

        def dropped() -> bool:
            record = read_version(v1, store_v1, url)
            return record is not None and record.shadow is None and leftovers(kind, url, v1, store_v1) == []

        h.wait_for(dropped, 60, "the v2 version to be dropped",
                   on_timeout=lambda: "\n".join(r.log()[-3000:] for r in replicas))
        assert any("built for an earlier spec" in since(r, m) for r, m in zip(replicas, marks, strict=True))
        assert not rebuilders(replicas, marks)
        h.produce(kafka_bootstrap, topic, renamed(h.order_events(500, seed=72, keys=200, tombstones=False), b"z"))
        h.wait_caught_up(v1, store_v1, url, h.end_offsets(kafka_bootstrap, topic), 120, replicas)
        check_final(kind, kafka_bootstrap, topic, url, v1, store_v1)
        for replica in replicas:
            assert replica.stop() == 0
    finally:
        for replica in replicas:
            replica.kill()
