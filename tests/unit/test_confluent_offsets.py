"""ListOffsets through librdkafka's admin client asks again while a partition has no leader (a
topic just created answers "No leaders found" for a moment) and gives up at once on a refusal."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from provisioner.errors import ProvisionerError
from provisioner.stream.confluent_admin import AdminOffsets


class _Offset:
    def __init__(self, offset: int) -> None:
        self.offset = offset


class _Client:
    """list_offsets that fails with the given errors first, then answers."""

    def __init__(self, errors: list[int]) -> None:
        self.errors = errors
        self.calls = 0

    def list_offsets(self, wanted: dict[Any, Any], request_timeout: float) -> dict[Any, Future[_Offset]]:
        self.calls += 1
        futures: dict[Any, Future[_Offset]] = {}
        for partition in wanted:
            future: Future[_Offset] = Future()
            if self.errors:
                future.set_exception(KafkaException(KafkaError(self.errors[0])))
            else:
                future.set_result(_Offset(40 + partition.partition))
            futures[partition] = future
        if self.errors:
            self.errors.pop(0)
        return futures


class _Admin:
    def __init__(self, client: _Client) -> None:
        self.client = client

    def failure(self, error: Any, doing: str, topic: str, operation: str = "DESCRIBE") -> ProvisionerError:
        return ProvisionerError(f"{doing}: {error.args[0].str()}")


def test_a_partition_without_a_leader_yet_is_asked_again() -> None:
    client = _Client([KafkaError._NOENT, KafkaError.LEADER_NOT_AVAILABLE])
    offsets = AdminOffsets(_Admin(client), "orders", timeout=5.0)  # type: ignore[arg-type]
    assert offsets.ends([0, 1]) == {0: 40, 1: 41}
    assert client.calls == 3


def test_a_refusal_is_not_asked_again() -> None:
    client = _Client([KafkaError.TOPIC_AUTHORIZATION_FAILED])
    offsets = AdminOffsets(_Admin(client), "orders", timeout=5.0)  # type: ignore[arg-type]
    with pytest.raises(ProvisionerError, match="cannot read the offsets of 'orders'"):
        offsets.ends([0])
    assert client.calls == 1


def test_no_leader_within_the_timeout_is_the_error() -> None:
    client = _Client([KafkaError._NOENT] * 1000)
    offsets = AdminOffsets(_Admin(client), "orders", timeout=0.3)  # type: ignore[arg-type]
    with pytest.raises(ProvisionerError, match="No such entry"):
        offsets.ends([0])
    assert 1 < client.calls < 1000
