"""The topic, offset and produce helpers of `stream.kafka` through each Kafka client in turn (the
process's client, as PROVISIONER_KAFKA_CLIENT chooses), against the real broker: the same topics,
offsets, placement of keys and startFrom positions either way."""

from __future__ import annotations

import json

import pytest

from provisioner.runtime.history import key_partition
from provisioner.stream.kafka import (
    KafkaUnavailable,
    OutgoingRecord,
    broker_ready,
    end_offsets,
    ensure_topic,
    produce_records,
    topic_start_offsets,
)
from tests.integration import harness as h

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("kafka_client")]

EARLY, LATE = 1_700_000_000_000, 1_700_000_060_000  # two instants a minute apart, in Kafka's milliseconds


def test_helpers_create_produce_and_find_offsets(kafka_bootstrap: str, topic: str) -> None:
    assert broker_ready(kafka_bootstrap)
    assert ensure_topic(kafka_bootstrap, topic, partitions=3) is True
    assert ensure_topic(kafka_bootstrap, topic, partitions=3) is False
    assert end_offsets(kafka_bootstrap, topic) == {0: 0, 1: 0, 2: 0}
    keys = [f"k{n}" for n in range(60)]
    early = [OutgoingRecord(value=json.dumps({"n": n}).encode(), key=k, timestamp_ms=EARLY, headers={"h": "x"})
             for n, k in enumerate(keys)]
    late = [OutgoingRecord(value=None, key=k, timestamp_ms=LATE) for k in keys[:30]]
    counts: list[int] = []
    assert produce_records(kafka_bootstrap, topic, early + late, on_sent=counts.append) == 90
    assert counts[-1] == 90
    read = h.read_topic(kafka_bootstrap, topic)
    assert len(read) == 90
    assert {r.timestamp for r in read} == {EARLY, LATE}
    assert all(r.headers == (("h", b"x"),) for r in read if r.value is not None)
    # Keys land where Java's and kafka-python's producers put them (murmur2), so history and
    # other producers agree.
    assert all(r.partition == key_partition(r.key, 3) for r in read if r.key is not None)
    ends = end_offsets(kafka_bootstrap, topic)
    per_partition = {p: sum(1 for r in read if r.partition == p) for p in range(3)}
    assert ends == per_partition
    assert topic_start_offsets(kafka_bootstrap, topic, "earliest") == {0: 0, 1: 0, 2: 0}
    assert topic_start_offsets(kafka_bootstrap, topic, "latest") == ends
    # From the later instant: each partition's first tombstone, or its end where it has none.
    first_late = {p: min((r.offset for r in read if r.partition == p and r.value is None), default=ends[p])
                  for p in range(3)}
    assert topic_start_offsets(kafka_bootstrap, topic, "2023-11-14T22:14:20Z") == first_late
    assert topic_start_offsets(kafka_bootstrap, topic, "2030-01-01T00:00:00Z") == ends


def test_a_missing_topic_has_no_offsets(kafka_bootstrap: str, topic: str) -> None:
    with pytest.raises(KafkaUnavailable, match=f"topic '{topic}' does not exist"):
        end_offsets(kafka_bootstrap, topic)
    assert topic_start_offsets(kafka_bootstrap, topic, "earliest") == {}
    # Asking about it did not create it.
    with pytest.raises(KafkaUnavailable, match="does not exist"):
        end_offsets(kafka_bootstrap, topic)

