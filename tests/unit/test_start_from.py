"""The startFrom rule (`stream.startfrom`) both clients use, and how a process picks its Kafka client."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from provisioner.errors import ConfigurationError
from provisioner.stream.client import CONFLUENT, DEFAULT_KAFKA_CLIENT, KAFKA_CLIENT_ENV, KAFKA_PYTHON, chosen_client
from provisioner.stream.startfrom import start_offsets


class _Offsets:
    """Fixed answers to the three look-ups, recording what was asked."""

    def __init__(self, begins: dict[int, int], ends: dict[int, int], at: dict[int, int | None]) -> None:
        self.begins, self.end, self.at = begins, ends, at
        self.asked: list[tuple[str, tuple[int, ...], int | None]] = []

    def beginnings(self, partitions: Sequence[int]) -> dict[int, int]:
        self.asked.append(("beginnings", tuple(partitions), None))
        return {p: self.begins[p] for p in partitions}

    def ends(self, partitions: Sequence[int]) -> dict[int, int]:
        self.asked.append(("ends", tuple(partitions), None))
        return {p: self.end[p] for p in partitions}

    def at_time(self, partitions: Sequence[int], epoch_ms: int) -> dict[int, int | None]:
        self.asked.append(("at_time", tuple(partitions), epoch_ms))
        return {p: self.at[p] for p in partitions}


def _offsets() -> _Offsets:
    return _Offsets(begins={0: 5, 1: 0, 2: 7}, ends={0: 50, 1: 9, 2: 7}, at={0: 20, 1: None, 2: None})


def test_earliest_is_each_partitions_first_offset_and_latest_its_end() -> None:
    offsets = _offsets()
    assert start_offsets(offsets, [0, 1, 2], "earliest") == {0: 5, 1: 0, 2: 7}
    assert start_offsets(offsets, [0, 1, 2], "latest") == {0: 50, 1: 9, 2: 7}
    assert [kind for kind, _, _ in offsets.asked] == ["beginnings", "ends"]


def test_a_timestamp_starts_at_the_first_record_at_or_after_it_else_at_the_end() -> None:
    offsets = _offsets()
    assert start_offsets(offsets, [0, 1, 2], "2026-01-01T01:00:00+01:00") == {0: 20, 1: 9, 2: 7}
    # The instant in Kafka's milliseconds, whatever the offset it was written with; the ends are
    # asked only of the partitions with no record that late.
    assert offsets.asked == [("at_time", (0, 1, 2), 1767225600000), ("ends", (1, 2), None)]


def test_a_timestamp_every_partition_has_records_after_asks_no_ends() -> None:
    offsets = _Offsets(begins={}, ends={}, at={0: 3, 1: 4})
    assert start_offsets(offsets, [0, 1], "2020-01-01T00:00:00Z") == {0: 3, 1: 4}
    assert [kind for kind, _, _ in offsets.asked] == ["at_time"]


def test_no_partitions_ask_nothing() -> None:
    offsets = _offsets()
    assert start_offsets(offsets, [], "earliest") == {}
    assert offsets.asked == []


def test_the_process_client_is_the_one_given_else_the_environments_else_confluent() -> None:
    assert DEFAULT_KAFKA_CLIENT == CONFLUENT
    assert chosen_client(environ={}) == CONFLUENT
    assert chosen_client(environ={KAFKA_CLIENT_ENV: " kafka-python "}) == KAFKA_PYTHON
    assert chosen_client(CONFLUENT, environ={KAFKA_CLIENT_ENV: KAFKA_PYTHON}) == CONFLUENT
    assert chosen_client(environ={KAFKA_CLIENT_ENV: ""}) == CONFLUENT


def test_an_unknown_client_in_the_environment_is_a_configuration_error_naming_the_variable() -> None:
    with pytest.raises(ConfigurationError, match=r"PROVISIONER_KAFKA_CLIENT: unknown Kafka client 'librdkafka' \(one of confluent, kafka-python\)"):
        chosen_client(environ={KAFKA_CLIENT_ENV: "librdkafka"})
