"""The dev broker: a real Kafka node started from jars; round trip, idempotent up, status and down."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from provisioner.local import devbroker
from provisioner.stream.generate import orders
from provisioner.stream.kafka import OutgoingRecord, end_offsets, ensure_topic, produce_jsonl, produce_records


def _read_all(bootstrap: str, topic: str, expected: int) -> list[tuple[str | None, object, int]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        seen = []
        for message in consumer:
            key = message.key.decode() if message.key is not None else None
            value = json.loads(message.value) if message.value is not None else None
            seen.append((key, value, message.partition))
            if len(seen) >= expected:
                break
        return seen
    finally:
        consumer.close()


def test_produce_and_consume_round_trip(kafka_bootstrap: str, topic: str) -> None:
    assert ensure_topic(kafka_bootstrap, topic, partitions=3) is True
    assert ensure_topic(kafka_bootstrap, topic, partitions=3) is False  # already there
    lines = [
        json.dumps({"key": "o1", "value": {"type": "OrderPlaced", "order_id": "o1"}, "headers": {"h": "x"}}),
        json.dumps({"key": "o1", "value": None}),  # a tombstone
        json.dumps({"key": "o2", "value": {"type": "OrderPlaced", "order_id": "o2"}, "partition": 2}),
        "",
        json.dumps({"order_id": "o3", "type": "OrderPlaced"}),  # a bare value
    ]
    assert produce_jsonl(kafka_bootstrap, topic, lines, key_field="order_id") == 4
    assert sum(end_offsets(kafka_bootstrap, topic).values()) == 4
    seen = _read_all(kafka_bootstrap, topic, 4)
    by_key: dict[str | None, list[object]] = {}
    for key, value, _partition in seen:
        by_key.setdefault(key, []).append(value)
    assert by_key["o1"] == [{"type": "OrderPlaced", "order_id": "o1"}, None]  # same key, same partition, in order
    assert ("o2", {"type": "OrderPlaced", "order_id": "o2"}, 2) in seen
    assert by_key["o3"] == [{"order_id": "o3", "type": "OrderPlaced"}]


def test_generated_orders_land_keyed(kafka_bootstrap: str, topic: str) -> None:
    ensure_topic(kafka_bootstrap, topic, partitions=3)
    events = list(orders(500, seed=7))
    records = (OutgoingRecord(value=json.dumps(v).encode(), key=k) for k, v in events)
    assert produce_records(kafka_bootstrap, topic, records) == 500
    assert sum(end_offsets(kafka_bootstrap, topic).values()) == 500


def test_resolve_bootstrap_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(devbroker.BOOTSTRAP_ENV, raising=False)
    with pytest.raises(devbroker.DevBrokerError, match="no Kafka"):
        devbroker.resolve_bootstrap(None, tmp_path)
    monkeypatch.setenv(devbroker.BOOTSTRAP_ENV, "envhost:1")
    assert devbroker.resolve_bootstrap(None, tmp_path) == "envhost:1"
    assert devbroker.resolve_bootstrap("flag:2", tmp_path) == "flag:2"


def test_up_is_idempotent_then_status_and_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(devbroker.BOOTSTRAP_ENV, raising=False)
    assert devbroker.status(tmp_path) is None
    bootstrap = devbroker.up(tmp_path, port=0)
    try:
        running = devbroker.status(tmp_path)
        assert running is not None and running.running and running.bootstrap == bootstrap
        assert devbroker.up(tmp_path) == bootstrap  # found running: same broker, same address
        assert devbroker.status(tmp_path) == running
        assert devbroker.resolve_bootstrap(None, tmp_path) == bootstrap
        topic = "kept.after.restart"
        ensure_topic(bootstrap, topic, partitions=2)
        produce_jsonl(bootstrap, topic, ['{"n": 1}'])
        assert devbroker.down(tmp_path) is True
        assert devbroker.status(tmp_path) is None
        assert devbroker.down(tmp_path) is False

        again = devbroker.up(tmp_path, port=0)  # data survives down without --purge
        assert end_offsets(again, topic) == {0: 1, 1: 0} or sum(end_offsets(again, topic).values()) == 1
    finally:
        devbroker.down(tmp_path, purge=True)
    assert not devbroker.broker_dir(tmp_path).exists()


def _open_files(fd_dir: Path) -> set[str]:
    """What a running process holds open; a descriptor it closes while we list them is skipped."""
    targets = set()
    for name in os.listdir(fd_dir):
        try:
            targets.add(os.readlink(fd_dir / name))
        except FileNotFoundError:
            continue
    return targets


def test_broker_keeps_no_descriptor_of_its_launcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A launcher (a CI script's `flock 9`, a parent's pipe) holds an inheritable lock while it starts
    # the broker; the broker outlives the launcher and must not keep that lock held.
    monkeypatch.delenv(devbroker.BOOTSTRAP_ENV, raising=False)
    lock_path = tmp_path / "launcher.lock"
    held = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    os.set_inheritable(held, True)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        devbroker.up(tmp_path / "state", port=0)
        running = devbroker.status(tmp_path / "state")
        assert running is not None
        fd_dir = Path(f"/proc/{running.pid}/fd")
        assert str(lock_path) not in _open_files(fd_dir)
        os.close(held)
        held = -1
        again = os.open(lock_path, os.O_RDWR)
        try:
            fcntl.flock(again, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError if still held
        finally:
            os.close(again)
    finally:
        if held >= 0:
            os.close(held)
        devbroker.down(tmp_path / "state", purge=True)
