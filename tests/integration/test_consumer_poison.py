"""Poison records against the real broker and a real store: the consumer stays up, counts each as a
dead letter (stage `decode`), advances past it, and every other record lands."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from provisioner.pipeline.process import MAX_DEPTH
from tests.integration import harness as h
from tests.integration.test_consumer_inprocess import InProcess, prepare
from tests.integration.test_consumer_stores import assert_contents

pytestmark = pytest.mark.integration

PLACED = '{"type": "OrderPlaced", "amount": 10.5, "qty": 1, "customer": {"id": "c1"}, "note": %s}'


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


POISON = {
    # About 990 levels: decodes in Python, overflows the stack in every store's encoder.
    b"too-deep": (PLACED % _nested(990)).encode(),
    # Under a megabyte of empty lists: over 20 MB once decoded without the value bound.
    b"too-wide": (PLACED % ("[" + ",".join(["[]"] * 230_000) + "]")).encode(),
}


@pytest.mark.parametrize("kind", ["redis-hash", "postgres-upsert"])
def test_poison_records_become_dead_letters_and_the_consumer_moves_on(
    kind: str, kafka_bootstrap: str, redis_server: Any, postgres_server: Any, topic: str, tmp_path: Path,
    kafka_client: str,
) -> None:
    product, store_spec, url = prepare(kind, topic, tmp_path, (redis_server, postgres_server), batch_size=200)
    h.create_topic(kafka_bootstrap, topic, partitions=1)
    events: list[h.Event] = h.order_events(300, seed=5, keys=50)
    events.insert(100, (b"too-deep", POISON[b"too-deep"], []))
    events.insert(200, (b"too-wide", POISON[b"too-wide"], []))
    # Deep, but within the bound: an upsert whose note every store encodes.
    events.insert(250, (b"deep-ok", (PLACED % _nested(MAX_DEPTH - 2)).encode(), []))
    h.produce(kafka_bootstrap, topic, events)
    records = h.read_topic(kafka_bootstrap, topic)
    expected = h.expected_for(product, store_spec, records)
    ends = h.end_offsets(kafka_bootstrap, topic)
    assert [dead.stage for _, dead in expected.dead] == ["decode", "decode"]

    with InProcess(product, store_spec, kafka_bootstrap, url, kafka_client) as running:
        status = running.consumer.status
        h.wait_for(lambda: (status.records >= len(records) and status.lag == 0) or running.code is not None,
                   120, "the consumer to read every record")
        assert running.code is None, f"the consumer ended with {running.code}: {status.last_error}"
        assert status.state == "running"
        assert h.store_positions(product, store_spec, url) == ends
        assert_contents(kind, product, store_spec, url, expected)
        assert status.dead_letters == 2
        assert running.metric("provisioner_dead_letters_total", stage="decode") == 2
        assert running.pipeline.seen == Counter({(r.partition, r.offset): 1 for r in records})
        dead = h.read_dead_letters(kafka_bootstrap, product.dead_letter_topic, 2)
        messages = {r.key: dict(r.headers)["provisioner.error.message"].decode() for r in dead}
        assert f"more than {MAX_DEPTH} levels" in messages[b"too-deep"]
        assert "more than 100000 values" in messages[b"too-wide"]
        assert {r.key: r.value for r in dead} == POISON
        assert json.loads(next(r.value for r in records if r.key == b"deep-ok"))["note"]


def test_a_record_too_large_to_forward_whole_becomes_a_truncated_dead_letter(
    kafka_bootstrap: str, redis_server: Any, postgres_server: Any, topic: str, tmp_path: Path, kafka_client: str,
) -> None:
    # The broker takes a record of almost 1 MiB; with the dead letter's headers it would be over
    # every producer's limit, and a dead letter that cannot be sent would hold its batch forever.
    product, store_spec, url = prepare("redis-hash", topic, tmp_path, (redis_server, postgres_server), batch_size=50)
    h.create_topic(kafka_bootstrap, topic, partitions=1)
    huge = b"{" + b"x" * 1_040_000  # not JSON: a decode dead letter
    events: list[h.Event] = h.order_events(100, seed=7, keys=20)
    events.insert(40, (b"huge", huge, [("trace", b"t-1")]))
    h.produce(kafka_bootstrap, topic, events)
    records = h.read_topic(kafka_bootstrap, topic)
    expected = h.expected_for(product, store_spec, records)
    ends = h.end_offsets(kafka_bootstrap, topic)

    with InProcess(product, store_spec, kafka_bootstrap, url, kafka_client) as running:
        status = running.consumer.status
        h.wait_for(lambda: (status.records >= len(records) and status.lag == 0) or running.code is not None,
                   120, "the consumer to read every record")
        assert running.code is None, f"the consumer ended with {running.code}: {status.last_error}"
        assert h.store_positions(product, store_spec, url) == ends
        assert_contents("redis-hash", product, store_spec, url, expected)
        [dead] = h.read_dead_letters(kafka_bootstrap, product.dead_letter_topic, 1)
        headers = dict(dead.headers)
        assert headers["provisioner.value.truncated"] == str(len(huge)).encode()
        assert headers["trace"] == b"t-1" and headers["provisioner.error.stage"] == b"decode"
        assert dead.key == b"huge" and huge.startswith(dead.value) and 800_000 < len(dead.value) < len(huge)
