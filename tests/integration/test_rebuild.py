"""Spec changes reach the data: a changed filter, field and key rebuild the store beside itself and
switch in one atomic step, while a reader querying the store in a loop never sees an empty,
half-built or mixed store; afterwards the store equals the new spec's materialization and the old
version is gone. A change that keeps the content rules applies in place and rebuilds nothing.
Real broker, real Redis and Postgres, the consumer as a subprocess."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import yaml

from provisioner.spec.fingerprint import fingerprint
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.stores.versions import SHADOW_KEY_PREFIX, VersionRecord, open_versions
from tests.integration import harness as h
from tests.integration.test_consumer_stores import reset_store, store_url, unique_name

pytestmark = pytest.mark.integration

V2_FILTER = "event.type == 'OrderCancelled' || (event.type == 'OrderPlaced' && event.qty >= 3)"
V2_FIELDS = {
    "oid": "'x' + record.key",
    "customer": "event.customer.id",
    "total": "event.amount * double(event.qty)",
    "qty": "event.qty",
    "note": "'v2'",
}
FAST_GROUP = {"PROVISIONER_KAFKA_SESSION_TIMEOUT_MS": "3000", "PROVISIONER_REBUILD_LEASE_MS": "3000"}


def store_for(kind: str, name: str) -> dict[str, Any]:
    if kind == "redis":
        return {"name": "cache", "redis": {"keyPrefix": f"{name}:"}}
    return {"name": "db", "postgres": {"table": name.replace("-", "_"), "columns": {"total": "numeric",
                                                                                   "qty": "integer"}}}


def write_spec(path: Path, *, v2: bool = False, batch_size: int | None = None, until: str | None = None) -> None:
    """Turn the orders spec at `path` into version 2 (filter, a field and the key changed) or
    change settings that do not change content."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    spec = document["spec"]
    if v2:
        spec["filter"] = V2_FILTER
        spec["fields"] = V2_FIELDS
        spec["key"] = "oid"
    if batch_size is not None:
        spec["consumer"]["batchSize"] = batch_size
    if until is not None:
        spec["source"]["until"] = until
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


def renamed(events: list[h.Event], prefix: bytes) -> list[h.Event]:
    """The same events on a fresh key space (so they only add rows)."""
    return [(prefix + (k or b"")[1:], v, hd) for k, v, hd in events]


def read_version(product: DataProduct, store_spec: StoreSpec, url: str) -> VersionRecord | None:
    versions = open_versions(product, store_spec, url)
    try:
        return versions.read()
    finally:
        versions.close()


# -- reading a store as a reader does ---------------------------------------------------------

_REDIS_SNAPSHOT = """
local out, cursor = {}, "0"
repeat
  local reply = redis.call("SCAN", cursor, "MATCH", ARGV[1], "COUNT", 1000)
  cursor = reply[1]
  for _, k in ipairs(reply[2]) do
    if string.byte(k, 1) ~= 255 then
      out[#out + 1] = k
      out[#out + 1] = redis.call("HGETALL", k)
    end
  end
until cursor == "0"
return out
"""


def snapshot(kind: str, url: str, product: DataProduct, store_spec: StoreSpec) -> list[dict[str, Any]]:
    """Every row of the live store in one atomic read (a Lua script in Redis: Redis runs it alone;
    one statement in Postgres), each with its `_key`."""
    if kind == "redis":
        prefix = product.key_prefix(store_spec)
        client = redis.Redis.from_url(url)
        try:
            flat = client.eval(_REDIS_SNAPSHOT, 0, prefix.encode() + b"*")
        finally:
            client.close()
        rows = []
        for key, pairs in zip(flat[::2], flat[1::2], strict=True):
            row = {pairs[i].decode(): pairs[i + 1].decode() for i in range(0, len(pairs), 2)}
            rows.append({"_key": key.decode()[len(prefix):], **row})
        return rows
    assert store_spec.postgres is not None
    rows = h.postgres_rows(url, store_spec.postgres.db_schema, product.table(store_spec))
    out = []
    for row in rows:
        key_field = "oid" if "oid" in row else "order_id"
        out.append({"_key": str(row[key_field]), **{n: h._normal(v) for n, v in row.items()}})
    return out


def expected_rows(kind: str, product: DataProduct, store_spec: StoreSpec, records: list[Any]) -> dict[str, Any]:
    expected = h.expected_for(product, store_spec, records)
    if kind == "redis":
        return h.expected_redis(expected, product)
    return h.expected_postgres_upsert(expected, product, store_spec)


class Reader(threading.Thread):
    """Queries the store in a loop and checks each answer: never empty, never a mix of versions,
    and each version's answer holds at least what that version held when the change began."""

    def __init__(self, kind: str, url: str, product: DataProduct, store_spec: StoreSpec,
                 floors: dict[str, dict[str, Any]]) -> None:
        super().__init__(daemon=True)
        self.kind, self.url, self.product, self.store_spec = kind, url, product, store_spec
        self.floors = floors  # version -> rows it must at least hold
        self.problems: list[str] = []
        self.seen: dict[str, int] = {"v1": 0, "v2": 0}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                rows = snapshot(self.kind, self.url, self.product, self.store_spec)
            except Exception as error:
                self.problems.append(f"query failed: {type(error).__name__}: {error}")
                time.sleep(0.05)
                continue
            self.check(rows)

    def check(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            self.problems.append("empty store")
            return
        versions = {"v2" if "oid" in row else "v1" for row in rows}
        if len(versions) != 1:
            sample = [(row["_key"], sorted(row)) for row in rows if "oid" in row][:2]
            self.problems.append(f"mixed store: {len(rows)} rows of versions {sorted(versions)}, e.g. {sample}")
            return
        version = versions.pop()
        self.seen[version] += 1
        if version == "v2" and any(row.get("note") != "v2" for row in rows):
            self.problems.append("a v2 row without the v2 note")
        by_key = {row.pop("_key"): row for row in rows}
        floor = self.floors[version]
        missing = [k for k in floor if k not in by_key]
        if missing:
            self.problems.append(f"{version}: {len(missing)} of {len(floor)} rows missing (half-built?)")
            return
        wrong = [k for k, row in floor.items() if by_key[k] != row]
        if wrong:
            self.problems.append(f"{version}: {len(wrong)} rows differ, e.g. {by_key[wrong[0]]} != {floor[wrong[0]]}")


# -- leaks ------------------------------------------------------------------------------------


def leftovers(kind: str, url: str, product: DataProduct, store_spec: StoreSpec) -> list[str]:
    """Anything of a version other than the live one: shadow tables or keys, their positions."""
    group = product.consumer_group(store_spec)
    found: list[str] = []
    if kind == "redis":
        client = redis.Redis.from_url(url)
        try:
            shadows = client.scan_iter(match=(SHADOW_KEY_PREFIX + group).encode() + b"*", count=1000)
            found += [f"shadow key {k!r}" for k in list(shadows)[:5]]
            positions = client.scan_iter(match=b"\xffprovisioner:positions:" + group.encode() + b".v*", count=1000)
            found += [f"shadow positions {k!r}" for k in list(positions)[:5]]
            record = client.hget(b"\xffprovisioner:versions:" + group.encode(), "shadow")
            if record:
                found.append(f"recorded shadow {record!r}")
        finally:
            client.close()
        return found
    assert store_spec.postgres is not None
    table = product.table(store_spec)
    with psycopg.connect(url, autocommit=True) as connection:
        tables = connection.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r' AND c.relname LIKE %s",
            (store_spec.postgres.db_schema, table.replace("_", r"\_") + "%")).fetchall()
        found += [f"table {name}" for (name,) in tables if name != table]
        groups = connection.execute(
            "SELECT DISTINCT consumer FROM _provisioner_positions WHERE consumer LIKE %s",
            (group + ".v%",)).fetchall()
        found += [f"positions of {g}" for (g,) in groups]
        shadow = connection.execute("SELECT shadow FROM _provisioner_versions WHERE consumer = %s",
                                    (group,)).fetchone()
        if shadow and shadow[0]:
            found.append(f"recorded shadow {shadow[0]}")
    return found


def wait_switched(product: DataProduct, store_spec: StoreSpec, url: str, timeout: float,
                  consumers: list[h.ConsumerProcess]) -> None:
    wanted = fingerprint(product, store_spec)

    def switched() -> bool:
        record = read_version(product, store_spec, url)
        return record is not None and record.fingerprint == wanted and record.shadow is None

    h.wait_for(switched, timeout, "the switch to the new version", interval=0.2,
               on_timeout=lambda: "\n".join(c.log()[-4000:] for c in consumers))


# -- the tests --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_filter_field_and_key_change_rebuilds_beside_and_switches_atomically(
    kind: str, kafka_bootstrap: str, redis_server: Any, postgres_server: Any, topic: str, tmp_path: Path
) -> None:
    name = unique_name(topic)
    spec = h.order_spec(tmp_path, name=name, topic=topic, stores=[store_for(kind, name)], batch_size=500,
                        batch_latency="50ms")
    v1 = h.load_product(spec)
    store_v1 = v1.spec.stores[0]
    url = store_url(kind, redis_server, postgres_server)
    reset_store(v1, store_v1, url)
    h.create_topic(kafka_bootstrap, topic, partitions=3)
    events = h.order_events(20_000, seed=11, keys=3000, tombstones=False)
    h.produce(kafka_bootstrap, topic, events)

    first = h.ConsumerProcess(spec, store_v1.name, kafka_bootstrap, url, tmp_path, "v1", env=FAST_GROUP).start()
    second: h.ConsumerProcess | None = None
    reader: Reader | None = None
    try:
        h.wait_caught_up(v1, store_v1, url, h.end_offsets(kafka_bootstrap, topic), 120, [first])
        record = read_version(v1, store_v1, url)
        assert record is not None and record.fingerprint == fingerprint(v1, store_v1)
        initial = h.read_topic(kafka_bootstrap, topic)

        write_spec(spec, v2=True)
        v2 = h.load_product(spec)
        store_v2 = v2.spec.stores[0]
        floors = {"v1": expected_rows(kind, v1, store_v1, initial), "v2": expected_rows(kind, v2, store_v2, initial)}
        assert floors["v1"] and floors["v2"] and floors["v1"].keys() != floors["v2"].keys()
        reader = Reader(kind, url, v1, store_v1, floors)
        reader.start()
        time.sleep(0.5)
        assert first.stop() == 0
        second = h.ConsumerProcess(spec, store_v2.name, kafka_bootstrap, url, tmp_path, "v2", env=FAST_GROUP)
        second.start()
        # The stream goes on during the rebuild (new keys only, so every version only grows).
        more = renamed(h.order_events(6_000, seed=12, keys=1000, tombstones=False), b"n")
        for i in range(0, len(more), 1000):
            h.produce(kafka_bootstrap, topic, more[i : i + 1000])
            time.sleep(0.3)
        wait_switched(v2, store_v2, url, 180, [second])
        h.produce(kafka_bootstrap, topic, renamed(h.order_events(1_000, seed=13, keys=300, tombstones=False), b"m"))
        h.wait_caught_up(v2, store_v2, url, h.end_offsets(kafka_bootstrap, topic), 120, [second])
        time.sleep(0.5)
        reader.halt.set()
        reader.join(timeout=30)

        assert not reader.problems, reader.problems[:10]
        assert reader.seen["v1"] > 0 and reader.seen["v2"] > 0, reader.seen
        records = h.read_topic(kafka_bootstrap, topic)
        final = {row.pop("_key"): row for row in snapshot(kind, url, v2, store_v2)}
        assert final == expected_rows(kind, v2, store_v2, records)
        assert leftovers(kind, url, v2, store_v2) == []
        assert "rebuilding" in second.log() and "switched" in second.log()
        assert second.stop() == 0
    finally:
        if reader is not None:
            reader.halt.set()
        first.kill()
        if second is not None:
            second.kill()


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_a_change_that_keeps_the_content_applies_in_place(
    kind: str, kafka_bootstrap: str, redis_server: Any, postgres_server: Any, topic: str, tmp_path: Path
) -> None:
    name = unique_name(topic)
    spec = h.order_spec(tmp_path, name=name, topic=topic, stores=[store_for(kind, name)], batch_size=500)
    product = h.load_product(spec)
    store_spec = product.spec.stores[0]
    url = store_url(kind, redis_server, postgres_server)
    reset_store(product, store_spec, url)
    h.create_topic(kafka_bootstrap, topic, partitions=3)
    h.produce(kafka_bootstrap, topic, h.order_events(5_000, seed=3, keys=800))
    consumer = h.ConsumerProcess(spec, store_spec.name, kafka_bootstrap, url, tmp_path, "c", env=FAST_GROUP).start()
    try:
        h.wait_caught_up(product, store_spec, url, h.end_offsets(kafka_bootstrap, topic), 120, [consumer])
        oid = table_oid(kind, url, product, store_spec)
        assert consumer.stop() == 0
        write_spec(spec, batch_size=123)
        changed = h.load_product(spec)
        assert fingerprint(changed, store_spec) == fingerprint(product, store_spec)
        consumer.start()
        h.produce(kafka_bootstrap, topic, h.order_events(1_000, seed=4, keys=800))
        h.wait_caught_up(changed, store_spec, url, h.end_offsets(kafka_bootstrap, topic), 120, [consumer])
        assert "rebuilding" not in consumer.log()
        assert table_oid(kind, url, product, store_spec) == oid
        record = read_version(changed, store_spec, url)
        assert record is not None and record.spec is not None and record.shadow is None
        assert record.spec["spec"]["consumer"]["batchSize"] == 123  # the record follows in-place changes
        assert leftovers(kind, url, product, store_spec) == []
        records = h.read_topic(kafka_bootstrap, topic)
        actual = {row.pop("_key"): row for row in snapshot(kind, url, changed, store_spec)}
        assert actual == expected_rows(kind, changed, store_spec, records)
        assert consumer.stop() == 0
    finally:
        consumer.kill()


def table_oid(kind: str, url: str, product: DataProduct, store_spec: StoreSpec) -> int | None:
    if kind != "postgres":
        return None
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute("SELECT %s::regclass::oid", (product.table(store_spec),)).fetchone()
        return int(row[0]) if row else None


def dump(value: Any) -> str:
    return json.dumps(value, default=str)[:2000]


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_replay_is_a_rebuild_beside_the_live_store(
    kind: str, kafka_bootstrap: str, redis_server: Any, postgres_server: Any, topic: str, tmp_path: Path
) -> None:
    from provisioner.stores.versions import ReplayRequest

    name = unique_name(topic)
    spec = h.order_spec(tmp_path, name=name, topic=topic, stores=[store_for(kind, name)], batch_size=500)
    product = h.load_product(spec)
    store_spec = product.spec.stores[0]
    url = store_url(kind, redis_server, postgres_server)
    reset_store(product, store_spec, url)
    h.create_topic(kafka_bootstrap, topic, partitions=3)
    h.produce(kafka_bootstrap, topic, h.order_events(15_000, seed=5, keys=2000, tombstones=False))
    consumer = h.ConsumerProcess(spec, store_spec.name, kafka_bootstrap, url, tmp_path, "c", env=FAST_GROUP).start()
    reader: Reader | None = None
    try:
        h.wait_caught_up(product, store_spec, url, h.end_offsets(kafka_bootstrap, topic), 120, [consumer])
        rows = expected_rows(kind, product, store_spec, h.read_topic(kafka_bootstrap, topic))
        reader = Reader(kind, url, product, store_spec, {"v1": rows, "v2": rows})
        reader.start()
        versions = open_versions(product, store_spec, url)
        try:
            versions.request_replay(ReplayRequest(start_from="earliest"))
        finally:
            versions.close()
        assert consumer.stop() == 0  # what `replay` does to a running `up`'s consumer: it restarts
        consumer.start()

        def replayed() -> bool:
            record = read_version(product, store_spec, url)
            return record is not None and record.generation == 1 and record.replay is None and record.shadow is None

        h.wait_for(replayed, 120, "the replay to switch", on_timeout=consumer.log)
        reader.halt.set()
        reader.join(timeout=30)
        assert not reader.problems, reader.problems[:10]
        assert reader.seen["v1"] > 0
        actual = {row.pop("_key"): row for row in snapshot(kind, url, product, store_spec)}
        assert actual == expected_rows(kind, product, store_spec, h.read_topic(kafka_bootstrap, topic))
        assert leftovers(kind, url, product, store_spec) == []
        assert consumer.stop() == 0
    finally:
        if reader is not None:
            reader.halt.set()
        consumer.kill()


def test_until_holds_the_state_as_of_an_instant_and_freezes(
    kafka_bootstrap: str, postgres_server: Any, redis_server: Any, topic: str, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    name = unique_name(topic)
    spec = h.order_spec(tmp_path, name=name, topic=topic, stores=[store_for("postgres", name)], batch_size=500)
    product = h.load_product(spec)
    store_spec = product.spec.stores[0]
    url = store_url("postgres", redis_server, postgres_server)
    reset_store(product, store_spec, url)
    h.create_topic(kafka_bootstrap, topic, partitions=3)
    h.produce(kafka_bootstrap, topic, h.order_events(4_000, seed=7, keys=500, tombstones=False))
    time.sleep(1.0)
    until = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    time.sleep(1.0)
    h.produce(kafka_bootstrap, topic, h.order_events(3_000, seed=8, keys=500, tombstones=False))
    write_spec(spec, until=until)
    bounded = h.load_product(spec)
    consumer = h.ConsumerProcess(spec, store_spec.name, kafka_bootstrap, url, tmp_path, "c", env=FAST_GROUP).start()
    try:
        h.wait_for(lambda: consumer.status().get("state") == "frozen", 120, "the store to freeze",
                   on_timeout=consumer.log)
        assert consumer.status()["frozen_at"] == until
        records = h.read_topic(kafka_bootstrap, topic)
        before = [r for r in records if r.timestamp <= h_epoch_ms(until)]
        assert 0 < len(before) < len(records)
        actual = {row.pop("_key"): row for row in snapshot("postgres", url, bounded, store_spec)}
        assert actual == expected_rows("postgres", bounded, store_spec, before)
        h.produce(kafka_bootstrap, topic, h.order_events(500, seed=9, keys=500, tombstones=False))
        time.sleep(2.0)
        assert consumer.status().get("state") == "frozen"
        actual = {row.pop("_key"): row for row in snapshot("postgres", url, bounded, store_spec)}
        assert actual == expected_rows("postgres", bounded, store_spec, before)
        assert consumer.stop() == 0
    finally:
        consumer.kill()


def h_epoch_ms(text: str) -> int:
    from provisioner.spec.timestamps import to_epoch_ms

    return to_epoch_ms(text)


def test_local_plan_says_per_store_what_a_change_does(
    kafka_bootstrap: str, postgres_server: Any, redis_server: Any, topic: str, tmp_path: Path
) -> None:
    from provisioner.local.session import preview_stores

    name = unique_name(topic)
    url = store_url("postgres", redis_server, postgres_server)
    store = store_for("postgres", name)
    store["postgres"]["connection"] = {"url": url}
    spec = h.order_spec(tmp_path, name=name, topic=topic, stores=[store], batch_size=500)
    product = h.load_product(spec)
    store_spec = product.spec.stores[0]
    reset_store(product, store_spec, url)
    h.create_topic(kafka_bootstrap, topic, partitions=3)
    produced = h.produce(kafka_bootstrap, topic, h.order_events(3_000, seed=1, keys=500))
    nowhere = tmp_path / "no-state"
    assert [p.kind for p in preview_stores([spec], nowhere, kafka_bootstrap)] == ["new"]
    consumer = h.ConsumerProcess(spec, store_spec.name, kafka_bootstrap, url, tmp_path, "c", env=FAST_GROUP).start()
    try:
        h.wait_caught_up(product, store_spec, url, h.end_offsets(kafka_bootstrap, topic), 120, [consumer])
        assert consumer.stop() == 0
    finally:
        consumer.kill()
    assert [p.kind for p in preview_stores([spec], nowhere, kafka_bootstrap)] == ["unchanged"]
    write_spec(spec, batch_size=100)
    [in_place] = preview_stores([spec], nowhere, kafka_bootstrap)
    assert in_place.kind == "in place" and in_place.settings == ("spec.consumer.batchSize",)
    write_spec(spec, v2=True)
    [rebuild] = preview_stores([spec], nowhere, kafka_bootstrap)
    assert rebuild.kind == "rebuild" and "filter" in rebuild.settings and rebuild.records == produced
