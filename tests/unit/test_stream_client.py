"""The Kafka client seam without a broker: the confluent client's records and error events, settings
in librdkafka's spelling, which confluent-kafka errors are transient, `source.until` over any client,
and the consumer loop's check that polled records continue where the batch is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Message

from provisioner.pipeline.ops import Record, RecordLike
from provisioner.runtime.consumer import StoreConsumer
from provisioner.runtime.until import UntilBound
from provisioner.stream.client import Assignment, open_consumer
from provisioner.stream.confluent import ConfluentConsumer, rdkafka_settings, records_of
from provisioner.stream.failures import KafkaAuthorization
from provisioner.stream.kafka import is_transient
from provisioner.stream.settings import KafkaSettings


def message(partition: int, offset: int, *, headers: Any = None, error: KafkaError | None = None) -> Message:
    return Message(topic="t", partition=partition, offset=offset, key=b"k%d" % offset, value=b'{"n":%d}' % offset,
                   headers=headers, error=error, timestamp=(1, 1_700_000_000_000 + offset))


def test_confluent_messages_become_records_with_the_pipelines_attributes() -> None:
    messages = [message(1, 7), message(0, 3, headers=[("trace", b"x")])]
    first, second = records_of("t", messages)
    assert (first.topic, first.partition, first.offset, first.timestamp) == ("t", 1, 7, 1_700_000_000_007)
    assert (first.key, first.value) == (b"k7", b'{"n":7}')
    assert first.headers == ()  # librdkafka says None for no headers
    assert list(second.headers) == [("trace", b"x")]
    assert records_of("t", []) == []


def test_error_events_are_dropped_partition_eof_silently_and_a_fatal_one_raises() -> None:
    client = object.__new__(ConfluentConsumer)
    client._connection = KafkaSettings(bootstrap="b:9093")  # type: ignore[attr-defined]
    client._topic, client._group = "t", "g"  # type: ignore[attr-defined]
    client._assignment = Assignment()  # type: ignore[attr-defined]
    client._assignment.changed = False  # type: ignore[attr-defined]
    good = [message(0, 1), message(0, 2)]
    eof = message(0, 3, error=KafkaError(KafkaError._PARTITION_EOF))
    kept = client._without_errors([good[0], eof, good[1]])
    assert [m.offset() for m in kept] == [1, 2]
    assert not client._assignment.changed  # type: ignore[attr-defined]
    # Out of the group for not polling in time: the loop must reposition.
    client._without_errors([message(0, 4, error=KafkaError(KafkaError._MAX_POLL_EXCEEDED))])
    assert client._assignment.changed  # type: ignore[attr-defined]
    with pytest.raises(KafkaException):
        client._without_errors([message(0, 5, error=KafkaError(KafkaError._FENCED, fatal=True))])
    # A missing ACL is raised as ours, naming the topic, so the loop backs off and says why.
    with pytest.raises(KafkaAuthorization, match="not allowed to READ topic 't'"):
        client._without_errors([good[0], message(0, 6, error=KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))])


def test_settings_in_kafka_python_spelling_reach_librdkafka_in_its_own() -> None:
    assert rdkafka_settings({"session_timeout_ms": 3000, "heartbeat_interval_ms": 1000, "max_poll_interval_ms": 10000,
                             "request_timeout_ms": 5000, "fetch.min.bytes": 1}) == {
        "session.timeout.ms": 3000, "heartbeat.interval.ms": 1000, "max.poll.interval.ms": 10000,
        "socket.timeout.ms": 5000, "fetch.min.bytes": 1}


def test_confluent_errors_are_transient_unless_fatal_or_a_bad_argument() -> None:
    assert is_transient(KafkaException(KafkaError(KafkaError._TRANSPORT)))
    assert is_transient(KafkaException(KafkaError(KafkaError._ALL_BROKERS_DOWN)))
    assert is_transient(KafkaException(KafkaError(KafkaError.REBALANCE_IN_PROGRESS)))
    assert not is_transient(KafkaException(KafkaError(KafkaError._FENCED, fatal=True)))
    assert not is_transient(KafkaException(KafkaError(KafkaError._INVALID_ARG)))
    assert not is_transient(RuntimeError("Consumer closed"))


def test_an_unknown_client_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown Kafka client 'rdkafka'"):
        open_consumer("rdkafka", bootstrap="x", topic="t", group="g", client_id="c", max_records=1,
                      assignment=Assignment())


class FakeClient:
    """A StreamConsumer over fixed polls, recording pauses, resumes and seeks."""

    def __init__(self, polls: list[list[RecordLike]]) -> None:
        self.polls = polls
        self.paused: set[int] = set()
        self.seeks: list[dict[int, int]] = []

    def poll(self, timeout: float, max_records: int) -> Sequence[RecordLike]:
        return self.polls.pop(0) if self.polls else []

    def assignment(self) -> list[int]:
        return [0, 1]

    def seek(self, positions: Mapping[int, int]) -> None:
        self.seeks.append(dict(positions))
        self.paused.clear()  # as confluent's assign does

    def pause(self, partitions: Sequence[int]) -> None:
        self.paused.update(partitions)

    def resume(self, partitions: Sequence[int]) -> None:
        self.paused.difference_update(partitions)

    def commit(self, positions: Mapping[int, int]) -> None: ...

    def start_offsets(self, partitions: Sequence[int], start_from: str) -> dict[int, int]:
        return dict.fromkeys(partitions, 0)

    def end_offsets(self, partitions: Sequence[int] | None, timeout: float) -> dict[int, int]:
        return {}

    def high_watermarks(self) -> dict[int, int]:
        return {}

    def close(self) -> None: ...


def rec(partition: int, offset: int, timestamp: int) -> Record:
    return Record("t", partition, offset, timestamp, None, b"{}")


def test_until_withholds_a_partition_from_its_first_record_after_the_instant() -> None:
    fake = FakeClient([[rec(0, 0, 10), rec(1, 0, 10), rec(0, 1, 30), rec(1, 1, 20), rec(0, 2, 15)],
                       [rec(1, 2, 40)]])
    bound = UntilBound(fake, until_ms=20)
    assert [(r.partition, r.offset) for r in bound.poll(1.0, 100)] == [(0, 0), (1, 0), (1, 1)]
    assert bound.passed == {0: 1} and fake.paused == {0}
    assert bound.poll(1.0, 100) == []
    assert bound.passed == {0: 1, 1: 2} and fake.paused == {0, 1}
    # Repositioned at the first record after until: still passed, paused again after the client's seek.
    bound.seek({0: 1, 1: 2})
    assert fake.paused == {0, 1} and bound.passed == {0: 1, 1: 2}
    # Repositioned before it (a discarded batch): read up to it again.
    bound.seek({0: 0, 1: 2})
    assert bound.passed == {1: 2} and fake.paused == {1}


def take(polled: list[RecordLike], expected: dict[int, int]) -> tuple[bool, list[RecordLike], SimpleNamespace]:
    owner = SimpleNamespace(_assignment=Assignment())
    owner._assignment.changed = False
    records: list[RecordLike] = []
    ok = StoreConsumer._take(owner, polled, records, expected)  # type: ignore[arg-type]
    return ok, records, owner


def test_polled_records_behind_the_batch_are_dropped_and_the_next_offsets_advance() -> None:
    expected = {0: 5, 1: 0}
    polled: list[RecordLike] = [rec(0, 3, 0), rec(1, 0, 0), rec(0, 4, 0), rec(0, 5, 0), rec(1, 1, 0), rec(0, 6, 0)]
    ok, records, owner = take(polled, expected)
    assert ok and not owner._assignment.changed
    assert [(r.partition, r.offset) for r in records] == [(1, 0), (0, 5), (1, 1), (0, 6)]
    assert expected == {0: 7, 1: 2}
    ok, records, _ = take([rec(0, 7, 0)], expected)
    assert ok and expected == {0: 8, 1: 2}


def test_records_of_a_partition_never_positioned_ask_for_a_repositioning() -> None:
    expected = {0: 0}
    ok, records, owner = take([rec(0, 0, 0), rec(2, 0, 0)], expected)
    assert not ok and records == [] and owner._assignment.changed
    assert expected == {0: 0}


def test_librdkafka_lines_repeated_by_one_facility_and_thread_are_let_through_every_30_seconds() -> None:
    import logging

    from provisioner.stream.confluent import RepeatFilter

    now = [0.0]
    repeats = RepeatFilter(seconds=30.0, clock=lambda: now[0])

    def line(text: str) -> logging.LogRecord:
        return logging.LogRecord("provisioner.stream.librdkafka", logging.ERROR, __file__, 0, text, None, None)

    fail = "FAIL [c#consumer-1] [thrd:127.0.0.1:9092/bootstrap]: Connect to ipv4#127.0.0.1:9092 failed (after {} ms)"
    assert repeats.filter(line(fail.format(0)))
    assert not repeats.filter(line(fail.format(1)))
    assert repeats.filter(line("FAIL [c#consumer-1] [thrd:127.0.0.1:9092/1]: Connect failed"))
    now[0] = 31.0
    assert repeats.filter(line(fail.format(2)))
