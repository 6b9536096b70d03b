"""Each Kafka client's `StreamConsumer` against the real broker: the assignment, where a new store
starts (earliest, latest, a timestamp), end offsets, seeking, and records with every attribute the
pipeline reads."""

from __future__ import annotations

import time

import pytest

from provisioner.pipeline.ops import RecordLike
from provisioner.stream.client import Assignment, open_consumer
from provisioner.stream.kafka import OutgoingRecord, ensure_topic, produce_records

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("kafka_client")]


def test_a_client_positions_reads_and_reports_offsets(kafka_bootstrap: str, topic: str, kafka_client: str) -> None:
    ensure_topic(kafka_bootstrap, topic, partitions=3)
    base = int(time.time() * 1000) - 60_000
    records = [OutgoingRecord(value=b'{"n":%d}' % i, key=f"k{i}", partition=0, timestamp_ms=base + 1000 * i,
                              headers={"trace": f"t{i}"} if i % 2 else {}) for i in range(5)]
    records += [OutgoingRecord(value=None, key="gone", partition=1, timestamp_ms=base + 500),
                OutgoingRecord(value=b"{}", partition=1, timestamp_ms=base + 1500)]
    assert produce_records(kafka_bootstrap, topic, records) == 7

    assignment = Assignment()
    client = open_consumer(kafka_client, bootstrap=kafka_bootstrap, topic=topic, group=f"g-{topic}",
                           client_id="test", max_records=100, assignment=assignment)
    try:
        deadline = time.monotonic() + 60
        while len(client.assignment()) < 3:
            assert time.monotonic() < deadline, "no assignment"
            client.poll(0.2, 100)
        assert assignment.changed
        assert client.assignment() == [0, 1, 2]
        assert client.start_offsets([0, 1, 2], "earliest") == {0: 0, 1: 0, 2: 0}
        assert client.start_offsets([0, 1, 2], "latest") == {0: 5, 1: 2, 2: 0}
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((base + 2500) // 1000)) + f".{(base + 2500) % 1000:03d}Z"
        # The first record at or after the instant; the end where there is none.
        assert client.start_offsets([0, 1, 2], at) == {0: 3, 1: 2, 2: 0}
        assert client.end_offsets(None, 10.0) == {0: 5, 1: 2, 2: 0}
        assert client.end_offsets([1], 10.0) == {1: 2}

        assignment.changed = False
        client.seek({0: 2, 1: 0, 2: 0})
        got: list[RecordLike] = []
        deadline = time.monotonic() + 30
        while len(got) < 5:
            assert time.monotonic() < deadline, f"only {len(got)} records"
            got.extend(client.poll(0.5, 100))
        assert not assignment.changed
        by_position = {(r.partition, r.offset): r for r in got}
        assert sorted(by_position) == [(0, 2), (0, 3), (0, 4), (1, 0), (1, 1)]
        for partition in (0, 1):
            offsets = [r.offset for r in got if r.partition == partition]
            assert offsets == sorted(offsets)
        three = by_position[(0, 3)]
        assert (three.topic, three.key, three.value, three.timestamp) == (topic, b"k3", b'{"n":3}', base + 3000)
        assert list(three.headers) == [("trace", b"t3")]
        assert list(by_position[(0, 2)].headers) == []
        tombstone = by_position[(1, 0)]
        assert (tombstone.key, tombstone.value) == (b"gone", None)
        assert by_position[(1, 1)].key is None

        deadline = time.monotonic() + 10
        while client.high_watermarks() != {0: 5, 1: 2, 2: 0}:
            assert time.monotonic() < deadline, client.high_watermarks()
            client.poll(0.2, 100)
        client.commit({0: 5, 1: 2})
    finally:
        client.close()
