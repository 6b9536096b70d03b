"""Electing a store's rebuilder: the lock keys, the lease's timing and what a replica decides on
reading the version record. Pure, no store."""

from __future__ import annotations

from typing import Any

import pytest
import typer

from provisioner.cli.consume import lease_seconds
from provisioner.errors import is_retryable
from provisioner.runtime.rebuild import Outcome, decide_start, watch_decision
from provisioner.spec.fingerprint import fingerprint
from provisioner.stores.election import LeaseTiming, RedisElection, advisory_keys
from provisioner.stores.versions import NotRebuilder, ReplayRequest, VersionRecord, product_json
from tests.unit.test_versions import product


def test_advisory_keys_are_signed_32_bit_stable_and_per_store() -> None:
    keys = advisory_keys("public", "shop.orders.db")
    assert keys == advisory_keys("public", "shop.orders.db")
    assert all(-(2**31) <= k < 2**31 for k in keys)
    assert advisory_keys("public", "shop.orders.db")[0] == advisory_keys("other", "x")[0]  # one namespace
    assert advisory_keys("public", "shop.orders.db")[1] != advisory_keys("other", "shop.orders.db")[1]
    assert advisory_keys("public", "a.b")[1] != advisory_keys("public.a", "b")[1]


def test_a_lease_is_renewed_at_a_third_of_its_ttl_and_lost_after_it() -> None:
    timing = LeaseTiming(9.0)
    assert timing.renew_every == 3.0
    assert not timing.due(100.0, 102.9) and timing.due(100.0, 103.0)
    assert not timing.expired(100.0, 108.9) and timing.expired(100.0, 109.0)


class _FakeRedis:
    """Enough of a Redis client for the lease: SET NX PX and the two compare scripts."""

    def __init__(self) -> None:
        self.value: Any = None
        self.fail = False

    def set(self, key: bytes, token: str, *, nx: bool, px: int) -> bool:
        if self.value is not None:
            return False
        self.value = token
        return True

    def eval(self, script: str, numkeys: int, key: bytes, token: str, *args: Any) -> int:
        if self.fail:
            from redis.exceptions import ConnectionError as RedisConnectionError

            raise RedisConnectionError("down")
        if self.value != token:
            return 0
        if "DEL" in script:
            self.value = None
        return 1


def test_a_lease_holder_renews_survives_a_failed_renewal_and_gives_up_at_the_ttl() -> None:
    now = [0.0]
    server = _FakeRedis()
    p = product()
    mine = RedisElection(p, p.store("cache"), "redis://x", timing=LeaseTiming(3.0), clock=lambda: now[0])
    theirs = RedisElection(p, p.store("cache"), "redis://x", timing=LeaseTiming(3.0), clock=lambda: now[0])
    mine._client = theirs._client = server  # type: ignore[assignment]
    assert mine.try_acquire() and not theirs.try_acquire()
    now[0] = 1.5
    assert mine.holds()  # renewed
    server.fail = True
    now[0] = 3.0
    assert mine.holds()  # the renewal failed, but the lease has not run out yet
    mine._client = server  # type: ignore[assignment]
    now[0] = 4.5
    assert not mine.holds()  # 3 s since the last renewal: lost, whatever the server says
    server.fail = False
    server.value = None  # the server let it expire too
    assert theirs.try_acquire()
    assert not mine.try_acquire()
    theirs.release()
    assert server.value is None


def _record(p: Any, store: str, generation: int = 0, **extra: Any) -> VersionRecord:
    return VersionRecord(fingerprint(p, p.store(store)), product_json(p), store, generation, **extra)


def test_a_waiting_replica_follows_the_new_version_once_switched_and_decides_again_if_it_went_elsewhere() -> None:
    v1, v2, v3 = product(), product(filter="event.type == 'X'"), product(filter="event.type == 'Y'")
    plan = decide_start(v2, v2.store("db"), _record(v1, "db"))
    assert plan.shadow is not None
    assert watch_decision(plan, _record(v1, "db")) is None  # still the old version: wait
    assert watch_decision(plan, _record(v1, "db", shadow=plan.shadow)) is None  # being built: wait
    assert watch_decision(plan, _record(v2, "db")) is Outcome.SWITCHED
    assert watch_decision(plan, _record(v3, "db")) is Outcome.REPLAN
    assert watch_decision(plan, None) is Outcome.REPLAN


def test_a_replay_is_switched_when_the_next_generation_is_recorded() -> None:
    p = product()
    plan = decide_start(p, p.store("cache"), _record(p, "cache", 1, replay=ReplayRequest("earliest")))
    assert plan.shadow is not None and plan.generation == 2
    assert watch_decision(plan, _record(p, "cache", 1, replay=ReplayRequest("earliest"))) is None
    assert watch_decision(plan, _record(p, "cache", 2)) is Outcome.SWITCHED


def test_a_refused_switch_is_not_retried_but_decided_again() -> None:
    assert not is_retryable(NotRebuilder("no longer the rebuilder"))


def test_the_lease_ttl_comes_from_the_environment_in_milliseconds() -> None:
    assert lease_seconds({}) is None and lease_seconds({"PROVISIONER_REBUILD_LEASE_MS": " "}) is None
    assert lease_seconds({"PROVISIONER_REBUILD_LEASE_MS": "3000"}) == 3.0
    for bad in ("3s", "100"):
        with pytest.raises(typer.Exit):
            lease_seconds({"PROVISIONER_REBUILD_LEASE_MS": bad})
