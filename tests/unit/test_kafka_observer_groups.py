"""A consumer group's coordinator that is still loading or moving is asked again within the call,
not reported as Kafka not answering; any other refusal is reported at once."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.errors import CoordinatorLoadInProgressError, GroupAuthorizationFailedError

from provisioner.stream.kafka import KafkaUnavailable
from provisioner.stream.observe import KafkaObserver


class Coordinator:
    """Answers DescribeGroups after `loading` refusals of the kind a fresh broker gives."""

    def __init__(self, loading: int, refusal: type[Exception] = CoordinatorLoadInProgressError) -> None:
        self.loading = loading
        self.refusal = refusal
        self.asked = 0

    def describe_groups(self, groups: list[str]) -> dict[str, Any]:
        self.asked += 1
        if self.asked <= self.loading:
            raise self.refusal()
        return {g: {"members": [{"member_id": "m"}], "error": None} for g in groups}

    def close(self) -> None:
        pass


def observer_of(coordinator: Coordinator) -> KafkaObserver:
    observer = KafkaObserver("127.0.0.1:9", timeout=10.0)
    observer._admin = coordinator  # the connection the observer would have made
    return observer


def test_a_loading_coordinator_is_asked_again_within_the_call() -> None:
    coordinator = Coordinator(loading=2)
    observer = observer_of(coordinator)
    try:
        assert observer.group_members("orders") == 1
        assert coordinator.asked == 3
    finally:
        observer.close()


def test_a_coordinator_that_never_loads_and_a_refusal_are_reported() -> None:
    coordinator = Coordinator(loading=100)
    observer = observer_of(coordinator)
    try:
        with pytest.raises(KafkaUnavailable, match="CoordinatorLoadInProgressError"):
            observer.group_members("orders")
        assert coordinator.asked == 5
    finally:
        observer.close()
    refused = Coordinator(loading=100, refusal=GroupAuthorizationFailedError)
    observer = observer_of(refused)
    try:
        with pytest.raises(Exception, match="not allowed to READ group"):
            observer.group_members("orders")
        assert refused.asked == 1  # not asked again
    finally:
        observer.close()
