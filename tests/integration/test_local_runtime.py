"""The local runtime end to end: `up --until-caught-up`, `status`, `inspect`, `replay`, `down --purge`.

Runs the example specs (topics renamed per run so a reused broker holds only this run's events)
against a real Kafka, with the embedded Redis and Postgres `up` starts itself. The oracle: the same
records read back from Kafka, run through the pure Pipeline and folded per key.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from provisioner.pipeline.ops import Change, Delete, Upsert, render_key
from provisioner.pipeline.process import Pipeline
from provisioner.spec.loader import load_products
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.stores.registry import open_store

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "specs"


def _cli(state: Path, bootstrap: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROVISIONER_KAFKA_BOOTSTRAP": bootstrap, "COLUMNS": "200"}
    # Output goes through files, not pipes: the embedded servers `up` starts outlive it and would
    # hold a pipe open.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.run(
            [sys.executable, "-m", "provisioner", *args, "--state-dir", str(state)],
            stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, timeout=timeout, check=False,
        )
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(process.args, process.returncode, out.read(), err.read())


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def _produce(bootstrap: str, topic: str, events: Path) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    count = 0
    for line in events.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        key = item.get("key")
        value = item.get("value")
        producer.send(topic, key=None if key is None else str(key).encode(),
                      value=None if value is None else json.dumps(value).encode())
        count += 1
    producer.flush()
    producer.close()
    return count


def _records(bootstrap: str, topic: str) -> list[Any]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    ends = consumer.end_offsets(partitions)
    records: list[Any] = []
    while any(consumer.position(tp) < ends[tp] for tp in partitions):
        for batch in consumer.poll(timeout_ms=1000).values():
            records.extend(batch)
    consumer.close()
    return sorted(records, key=lambda r: (r.partition, r.offset))


def _materialize(product: DataProduct, store_spec: StoreSpec,
                 records: list[Any]) -> tuple[dict[str, dict[str, Any]], list[tuple[int, int, str]]]:
    """What the events imply for one store: final rows per rendered key, and the changelog
    (partition, offset, op). A change the store itself rejects (stage `store`) is a dead letter."""
    pipeline = Pipeline(product)
    changes = []
    for record in records:
        op = pipeline.process(record)
        if isinstance(op, Upsert | Delete):
            changes.append(Change(record.partition, record.offset, record.timestamp, op))
    # prepare() converts without I/O, so an unreachable URL is fine here.
    unused = "redis://127.0.0.1:1/0" if store_spec.redis is not None else "postgresql://127.0.0.1:1/none"
    _, rejected = open_store(product, store_spec, unused).prepare(changes)
    refused = {(r.change.partition, r.change.offset) for r in rejected}
    rows: dict[str, dict[str, Any]] = {}
    changelog: list[tuple[int, int, str]] = []
    for change in changes:
        if (change.partition, change.offset) in refused:
            continue
        key = render_key(change.op.key)
        if isinstance(change.op, Upsert):
            rows[key] = dict(change.op.row)
        else:
            rows.pop(key, None)
        changelog.append((change.partition, change.offset, change.op.kind))
    return rows, changelog


def _same(expected: Any, actual: Any) -> bool:
    """Equal once each store's encoding is undone: numbers as numbers, timestamps as instants."""
    if expected is None or actual is None:
        return expected is None and actual is None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return str(expected).lower() == str(actual).lower()
    for convert in (float, _instant):
        try:
            left, right = convert(expected), convert(actual)
        except (TypeError, ValueError):
            continue
        return math.isclose(left, right, rel_tol=1e-9)
    if isinstance(expected, dict | list):
        return expected == (json.loads(actual) if isinstance(actual, str) else actual)
    return str(expected) == str(actual)


def _instant(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float | Decimal):
        raise TypeError("a number is not a timestamp here")
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _inspect(state: Path, bootstrap: str, product: str, store: str) -> list[dict[str, Any]]:
    output = _ok(_cli(state, bootstrap, "inspect", product, "--store", store, "--limit", "10000", "-o", "json"))
    data = json.loads(output)
    assert (data["product"], data["store"]) == (product, store)
    rows: list[dict[str, Any]] = data["rows"]
    return rows


def _check_contents(state: Path, bootstrap: str, product: DataProduct, records: list[Any]) -> None:
    for store_spec in product.spec.stores:
        expected, changelog = _materialize(product, store_spec, records)
        rows = _inspect(state, bootstrap, product.name, store_spec.name)
        if store_spec.postgres is not None and store_spec.postgres.mode == "append":
            got = sorted((r["_partition"], r["_offset"], r["_op"]) for r in rows)
            assert got == sorted(changelog), f"{product.name}/{store_spec.name}"
            continue
        if store_spec.redis is not None:
            prefix = product.key_prefix(store_spec)
            by_key = {r["_key"].removeprefix(prefix): r for r in rows}
        else:
            by_key = {":".join(str(r[f]) for f in product.key_fields): r for r in rows}
        assert sorted(by_key) == sorted(expected), f"{product.name}/{store_spec.name}"
        for key, row in expected.items():
            for field, value in row.items():
                assert _same(value, by_key[key].get(field)), (product.name, store_spec.name, key, field,
                                                              value, by_key[key].get(field))


@pytest.fixture()
def example_specs(tmp_path: Path, kafka_bootstrap: str) -> tuple[Path, dict[str, str]]:
    """The example specs with their topics renamed for this run, and the events produced to them."""
    suffix = uuid.uuid4().hex[:8]
    folder = tmp_path / "specs"
    folder.mkdir()
    topics: dict[str, str] = {}
    for events in sorted((SPECS / "events").glob("*.jsonl")):
        original = events.name.removesuffix(".jsonl")
        topics[original] = f"{original}-{suffix}"
    for spec in SPECS.glob("*.yaml"):
        text = spec.read_text(encoding="utf-8")
        for original, renamed in topics.items():
            text = text.replace(f"topic: {original}", f"topic: {renamed}")
        (folder / spec.name).write_text(text, encoding="utf-8")
    for original, renamed in topics.items():
        _produce(kafka_bootstrap, renamed, SPECS / "events" / f"{original}.jsonl")
    return folder, topics


def test_up_status_inspect_replay_down(tmp_path: Path, kafka_bootstrap: str,
                                       example_specs: tuple[Path, dict[str, str]]) -> None:
    folder, _ = example_specs
    state = tmp_path / "state"
    products = [s.product for s in load_products([folder])]
    try:
        _ok(_cli(state, kafka_bootstrap, "up", str(folder), "--until-caught-up", "--timeout", "240"))

        records = {p.name: _records(kafka_bootstrap, p.spec.source.topic) for p in products}
        for product in products:
            _check_contents(state, kafka_bootstrap, product, records[product.name])

        raw_report = _ok(_cli(state, kafka_bootstrap, "status", "-o", "json"))
        passwords = [(state / kind / "password").read_text().strip() for kind in ("redis", "postgres")]
        shown = [raw_report, (state / "registry.json").read_text(),
                 *(log.read_text(errors="replace") for log in state.glob("consumers/*/consumer.log")),
                 *(status.read_text() for status in state.glob("consumers/*/status.json"))]
        assert all(password and password not in text for password in passwords for text in shown)
        report = json.loads(raw_report)
        stores = report["stores"]
        assert {(s["product"], s["store"]) for s in stores} == {
            (p.name, s.name) for p in products for s in p.spec.stores}
        for store in stores:
            assert store["state"] == "stopped"
            assert store["lag"] == 0
            assert store["position"] == store["end_offset"] > 0
            assert store["freshness"] in (None, "Fresh")
            assert store["store_url"] and ":***@127.0.0.1:" in store["store_url"]  # masked, never the password
            assert set(store["ops"]) == {"upsert", "delete", "skip", "deadLetter"}
        vip = next(s for s in stores if (s["product"], s["store"]) == ("vip-orders", "db"))
        vip_orders = next(p for p in products if p.name == "vip-orders")
        assert vip["rows"] == len(_materialize(vip_orders, vip_orders.store("db"), records["vip-orders"])[0])
        before = _inspect(state, kafka_bootstrap, "vip-orders", "db")
        out = _ok(_cli(state, kafka_bootstrap, "replay", "vip-orders", "--store", "db", "--timeout", "120"))
        assert "rebuilt" in out
        assert _inspect(state, kafka_bootstrap, "vip-orders", "db") == before
        _check_contents(state, kafka_bootstrap, vip_orders, records["vip-orders"])

        one = json.loads(_ok(_cli(state, kafka_bootstrap, "status", "vip-orders", "-o", "json")))
        assert {s["store"] for s in one["stores"]} == {"cache", "db"}
        assert all(s["lag"] == 0 for s in one["stores"])

        missing = _cli(state, kafka_bootstrap, "inspect", "no-such-product", "--store", "x")
        assert missing.returncode == 1
        assert "Traceback" not in missing.stderr and "no data product" in missing.stderr
    finally:
        down = _cli(state, kafka_bootstrap, "down", "--purge")
    _ok(down)
    assert not state.exists()
