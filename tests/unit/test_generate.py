"""The event generators: deterministic, realistic shapes, consistent follow-up events."""

from __future__ import annotations

from datetime import datetime

import pytest

from provisioner.errors import ConfigurationError, UnavailableError, is_retryable
from provisioner.stream.generate import GENERATORS, customers, orders, readings
from provisioner.stream.kafka import EventFileError, KafkaUnavailable, is_transient, parse_jsonl_line


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_same_seed_same_events(kind: str) -> None:
    generate = GENERATORS[kind]
    assert list(generate(200, seed=3)) == list(generate(200, seed=3))
    assert list(generate(200, seed=3)) != list(generate(200, seed=4))
    assert len(list(generate(200, seed=3))) == 200


def test_orders_shape_and_lifecycle() -> None:
    placed: dict[str, dict[str, object]] = {}
    closed: set[str] = set()
    for key, event in orders(2000, seed=1):
        assert event is not None and key == event["order_id"]
        assert set(event) == {"type", "order_id", "amount", "qty", "customer", "ts"}
        assert isinstance(event["amount"], float) and isinstance(event["qty"], int)
        customer = event["customer"]
        assert isinstance(customer, dict) and customer["tier"] in {"gold", "silver", "bronze"}
        assert str(customer["id"]).startswith("c")
        datetime.fromisoformat(str(event["ts"]))
        if event["type"] == "OrderPlaced":
            placed[key] = event
        else:
            assert event["type"] in {"OrderShipped", "OrderCancelled"}
            assert key in placed and key not in closed  # follows its placement, only once
            assert event["amount"] == placed[key]["amount"]
            closed.add(key)
    kinds = [e["type"] for _, e in orders(2000, seed=1) if e is not None]
    assert {"OrderPlaced", "OrderShipped", "OrderCancelled"} <= set(kinds)
    assert any(e["amount"] >= 100.0 for _, e in orders(200, seed=1) if e is not None)


def test_orders_timestamps_increase() -> None:
    stamps = [datetime.fromisoformat(str(e["ts"])) for _, e in orders(300, seed=2) if e is not None]
    assert stamps == sorted(stamps)


def test_customers_include_tombstones_of_existing_profiles() -> None:
    seen: set[str] = set()
    tombstones = 0
    for key, profile in customers(3000, seed=5):
        if profile is None:
            assert key in seen
            tombstones += 1
        else:
            assert profile["id"] == key and "@" in str(profile["email"])
            seen.add(key)
    assert tombstones > 0


def test_readings_shape() -> None:
    for key, reading in readings(500, seed=9):
        assert reading is not None and reading["device_id"] == key
        assert isinstance(reading["temperature"], float) and isinstance(reading["humidity"], int)
        assert 0 <= reading["humidity"] <= 100
        datetime.fromisoformat(str(reading["at"]))


def test_jsonl_envelope_convention() -> None:
    envelope = parse_jsonl_line('{"key": 7, "value": {"a": 1}, "headers": {"h": "v"}, "partition": 1}')
    assert envelope is not None
    assert (envelope.key, envelope.value, envelope.headers, envelope.partition) == ("7", b'{"a": 1}', {"h": "v"}, 1)
    tombstone = parse_jsonl_line('{"key": "k", "value": null}')
    assert tombstone is not None and tombstone.value is None and tombstone.key == "k"
    bare = parse_jsonl_line('{"value": 1, "other": 2}', key_field="other")
    assert bare is not None and bare.value == b'{"value": 1, "other": 2}' and bare.key == "2"
    stamped = parse_jsonl_line('{"value": 1, "timestamp": "2026-01-01T00:00:00Z"}')
    assert stamped is not None and stamped.timestamp_ms == 1767225600000
    assert parse_jsonl_line("   ") is None
    with pytest.raises(EventFileError, match="line 3"):
        parse_jsonl_line("{nope", 3)
    with pytest.raises(EventFileError, match="headers"):
        parse_jsonl_line('{"value": 1, "headers": {"h": 1}}')
    with pytest.raises(EventFileError, match="timestamp"):
        parse_jsonl_line('{"value": 1, "timestamp": "2026-01-01 00:00:00"}')  # no zone: ambiguous
    with pytest.raises(EventFileError, match="partition"):
        parse_jsonl_line('{"value": 1, "partition": -1}')
    with pytest.raises(EventFileError, match="key"):
        parse_jsonl_line('{"key": [1], "value": 1}')


def test_kafka_errors_say_whether_retrying_helps() -> None:
    from kafka.errors import KafkaConnectionError, KafkaTimeoutError

    bad_line = EventFileError("line 1: not JSON")
    assert isinstance(bad_line, ConfigurationError) and not is_retryable(bad_line) and not is_transient(bad_line)
    down = KafkaUnavailable("cannot reach Kafka")
    assert isinstance(down, UnavailableError) and is_transient(down)
    assert is_transient(KafkaTimeoutError()) and is_transient(KafkaConnectionError())
    assert is_transient(ConnectionRefusedError())
    assert not is_transient(ValueError("a bug"))
