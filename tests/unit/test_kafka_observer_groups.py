"""A consumer group's coordinator that is still loading or moving is asked again within the call,
not reported as Kafka not answering; any other refusal is reported at once."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from kafka.errors import CoordinatorLoadInProgressError, GroupAuthorizationFailedError

from provisioner.kube.client import KubeClient
from provisioner.kube.observe import Observer
from provisioner.kube.reconcile import Reconciler, Settings
from provisioner.operator.handlers import Controller
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


class Groups:
    """DescribeGroups answers: `members` per group (unknown ones as a newer broker says it),
    every request recorded; a request naming a group in `refused` is refused whole, as a batched
    FindCoordinator is when the operator may not describe one of its groups."""

    def __init__(self, members: dict[str, int], refused: frozenset[str] = frozenset(),
                 errors: dict[str, list[str]] | None = None) -> None:
        self.members = members
        self.refused = refused
        self.errors = errors or {}  # group -> the errors its next entries carry, in turn
        self.requests: list[list[str]] = []

    def describe_groups(self, groups: list[str]) -> dict[str, Any]:
        self.requests.append(list(groups))
        if self.refused & set(groups):
            raise GroupAuthorizationFailedError()
        answer = {}
        for g in groups:
            pending = self.errors.get(g)
            error = pending.pop(0) if pending else None
            if g not in self.members and error is None:
                error = f"[Error 69] GroupIdNotFoundError: Group {g} not found."
            answer[g] = {"members": [{"member_id": f"m{i}"} for i in range(self.members.get(g, 0))], "error": error}
        return answer

    def close(self) -> None:
        pass


def clocked(admin: Groups) -> tuple[KafkaObserver, list[float]]:
    now = [100.0]
    observer = KafkaObserver("127.0.0.1:9", timeout=10.0, clock=lambda: now[0])
    observer._admin = admin
    return observer, now


def test_a_first_round_describes_the_groups_expected_next_in_one_request() -> None:
    groups = [f"g{i}" for i in range(5)]
    admin = Groups({"g1": 2, "g3": 1})
    observer, now = clocked(admin)
    try:
        observer.expect_groups(groups)
        assert [observer.group_members(g) for g in groups] == [0, 2, 0, 1, 0]  # each answer its own group's
        assert admin.requests == [groups]
        assert observer.group_members("g1") == 2  # an answer got ahead serves one ask: described again
        assert admin.requests[1][0] == "g1"
        admin.requests.clear()
        observer.expect_groups(["g7", "g8"])
        now[0] += 11.0  # what is expected stops counting once older than an answer got ahead may be
        observer.group_members("g6")
        assert admin.requests == [["g6"]]
    finally:
        observer.close()


def test_answers_got_ahead_expire_and_a_batch_holds_at_most_fifty_groups() -> None:
    groups = [f"g{i}" for i in range(80)]
    admin = Groups({"g1": 1})
    observer, now = clocked(admin)
    try:
        observer.expect_groups(groups)
        observer.group_members("g0")
        assert admin.requests == [groups[:50]]
        now[0] += 11.0
        observer.expect_groups(groups[1:])
        assert observer.group_members("g1") == 1  # got ahead 11 s ago: too old, described again
        assert admin.requests[1] == groups[1:51]
        observer.group_members("g2")
        assert len(admin.requests) == 2  # described with g1 just now
    finally:
        observer.close()


def test_a_failed_batch_describes_the_asked_group_alone_and_charges_a_refusal_to_its_group() -> None:
    groups = [f"g{i}" for i in range(4)]
    admin = Groups({"g0": 1, "g1": 3}, refused=frozenset({"g2"}))
    observer, _ = clocked(admin)
    try:
        observer.expect_groups(groups)
        assert observer.group_members("g0") == 1  # the batch was refused: g0 alone is not
        assert admin.requests == [groups, ["g0"]]
        observer.expect_groups(groups[1:])  # as the operator says once g0's refresh started
        assert observer.group_members("g1") == 3  # a group of a failed batch is described at its own ask
        assert admin.requests[2] == ["g1"]
        with pytest.raises(Exception, match="not allowed to READ group 'g2'"):
            observer.group_members("g2")
        assert admin.requests[3] == ["g2"]
    finally:
        observer.close()


def test_an_error_in_a_group_s_own_entry_is_retried_or_raised_and_never_kept_ahead() -> None:
    admin = Groups({"g0": 1, "g1": 2}, errors={
        "g0": ["[Error 14] CoordinatorLoadInProgressError: loading"],
        "g1": ["[Error 14] CoordinatorLoadInProgressError: loading"]})
    observer, _ = clocked(admin)
    try:
        observer.expect_groups(["g0", "g1"])
        assert observer.group_members("g0") == 1  # its coordinator was loading: asked again
        assert admin.requests == [["g0", "g1"], ["g0", "g1"]]
        assert observer.group_members("g1") == 2  # its entry said loading, then answered: that answer kept
        assert len(admin.requests) == 2
    finally:
        observer.close()
    admin = Groups({}, errors={"g0": ["[Error 30] GroupAuthorizationFailedError: "]})
    observer, _ = clocked(admin)
    try:
        with pytest.raises(Exception, match="not allowed to READ group 'g0'"):
            observer.group_members("g0")
    finally:
        observer.close()


def _body(name: str, *stores: str) -> dict[str, Any]:
    return {"apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct",
            "metadata": {"name": name, "namespace": "shop", "uid": f"u-{name}", "generation": 1},
            "spec": {"source": {"topic": "orders.v1"}, "fields": {"order_id": "event.order_id"}, "key": "order_id",
                     "stores": [{"name": s, "redis": {}} for s in stores]}}


def test_the_operator_says_whose_groups_come_next_in_the_order_their_refreshes_will_run() -> None:
    admin = Groups({"provisioner.shop.p3.cache": 1})
    kafka, _ = clocked(admin)
    reconciler = Reconciler(cast(KubeClient, object()), Settings(kafka_bootstrap="k:9092", credentials_key=b"k" * 32),
                            Observer(cast(KubeClient, object()), kafka))
    c = Controller(cast(KubeClient, object()), reconciler, workers=0, status_workers=2)  # no apply starts
    names = ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"]
    c.products = {("shop", n): _body(n, "cache", "audit") if n == "p2" else _body(n, "cache") for n in names}
    reconciler._desired(c.products[("shop", "p3")])  # parsed once applied: its groups come from that parse
    c._status_pending = dict.fromkeys([("shop", "p0"), ("shop", "p1"), ("shop", "p2"), ("shop", "p3")])
    c._running = {("shop", "p4")}  # an apply running: a refresh follows it
    c._pending = {("shop", "p5"): True, ("shop", "p6"): False, ("shop", "p7"): True}  # p6 refreshes nothing

    async def dispatch() -> None:
        tasks: set[asyncio.Task[None]] = set()
        c._dispatch(tasks)  # starts p0 and p1's refreshes (nothing written: never applied)
        await asyncio.gather(*tasks)

    try:
        asyncio.run(dispatch())
        assert kafka.group_members("provisioner.shop.p0.cache") == 0
        assert admin.requests == [[f"provisioner.shop.{n}.{s}" for n in names if n != "p6"
                                   for s in (("cache", "audit") if n == "p2" else ("cache",))]]
        assert kafka.group_members("provisioner.shop.p3.cache") == 1
        assert len(admin.requests) == 1
    finally:
        kafka.close()
