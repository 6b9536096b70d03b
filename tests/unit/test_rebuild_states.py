"""Every transition of the rebuild runner, driven with an in-memory store: its version record, its
election (held by this replica or by another one) and consumers that run until stopped.

The world changes only when the runner sleeps: each test scripts what happens at its polls
(another replica switches, the election is lost, the shadow catches up), so every run is the same.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from provisioner.runtime.consumer import EXIT_HALTED, EXIT_STOPPED
from provisioner.runtime.rebuild import StoreRunner, decide_start
from provisioner.runtime.status import ConsumerStatus, RebuildProgress
from provisioner.runtime.until import UntilBound
from provisioner.spec.fingerprint import fingerprint
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.stores.base import Store, VersionFence
from provisioner.stores.election import Election
from provisioner.stores.versions import NotRebuilder, ReplayRequest, Shadow, VersionRecord, Versions, product_json
from tests.unit.test_versions import product, record_of

V1 = product()
V2 = product(filter="event.total > 1")
V3 = product(filter="event.total > 2")
ME, OTHER = "me", "other"


def fp(p: DataProduct) -> str:
    return fingerprint(p, p.store("db"))


@dataclass(eq=False)
class FakeStore:
    product: DataProduct
    spec: StoreSpec
    fence: VersionFence | None  # None: a shadow


class FakeConsumer:
    """Runs (on a thread) until stopped or `finish`ed; the final follow runs it inline and returns."""

    def __init__(self, store: FakeStore, live: bool) -> None:
        self.store = store
        self.live = live
        self.status = ConsumerStatus(product="orders", namespace="shop", store=store.spec.name,
                                     kind=store.spec.kind, pid=1, state="running")
        self.until_bound: UntilBound | None = None
        self.stopped = threading.Event()
        self.returned = threading.Event()
        self.code = EXIT_STOPPED
        self.followed = False

    def run(self) -> int:
        if threading.current_thread() is threading.main_thread():
            self.followed = True  # the runner's last step: following for good
            return EXIT_STOPPED
        self.stopped.wait()
        self.returned.set()
        return self.code

    def stop(self) -> None:
        self.stopped.set()

    def finish(self, code: int) -> None:
        """End on its own with `code` (returns once its thread has)."""
        self.code = code
        self.stopped.set()
        self.returned.wait()


@dataclass
class World:
    """The store as every replica sees it."""

    record: VersionRecord | None
    holder: str | None = None  # who holds the rebuilder election
    ends: dict[int, int] = field(default_factory=lambda: {0: 10})
    now: float = 0.0
    consumers: list[FakeConsumer] = field(default_factory=list)
    begun: list[Shadow] = field(default_factory=list)
    dropped: list[Shadow] = field(default_factory=list)
    switches: int = 0
    running_at_switch: list[FakeConsumer] = field(default_factory=list)  # consumers not stopped then
    refuse_switch: bool = False  # the election is lost between the ready check and the switch

    def shadows(self) -> list[FakeConsumer]:
        return [c for c in self.consumers if c.store.fence is None]

    def live(self) -> list[FakeConsumer]:
        return [c for c in self.consumers if c.store.fence is not None]

    def switch_to(self, p: DataProduct, generation: int = 0) -> None:
        """Another replica switches the store to `p`'s version."""
        self.record = VersionRecord(fp(p), product_json(p), "db", generation)


class FakeVersions:
    def __init__(self, world: World) -> None:
        self.world = world

    def read(self) -> VersionRecord | None:
        return self.world.record

    def record(self, p: DataProduct, store: StoreSpec) -> None:
        old = self.world.record
        self.world.record = VersionRecord(fingerprint(p, store), product_json(p), store.name,
                                          old.generation if old else 0, old.shadow if old else None)

    def request_replay(self, request: ReplayRequest) -> None:
        raise AssertionError("not the runner's")

    def begin(self, shadow: Shadow) -> None:
        assert self.world.record is not None
        self.world.begun.append(shadow)
        self.world.record = VersionRecord(**{**vars_of(self.world.record), "shadow": shadow})

    def drop(self, shadow: Shadow) -> None:
        assert self.world.record is not None
        self.world.dropped.append(shadow)
        self.world.record = VersionRecord(**{**vars_of(self.world.record), "shadow": None})

    def switch(self, old: Any, p: DataProduct, store: StoreSpec, shadow: Shadow, generation: int, *,
               election: Election | None = None) -> None:
        if self.world.refuse_switch or self.world.holder != ME:
            raise NotRebuilder("no longer the rebuilder")
        self.world.switches += 1
        self.world.running_at_switch = [c for c in self.world.consumers if not c.stopped.is_set()]
        self.world.switch_to(p, generation)

    def close(self) -> None:
        pass


def vars_of(record: VersionRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__slots__}  # type: ignore[attr-defined]


class FakeElection:
    def __init__(self, world: World) -> None:
        self.world = world

    def try_acquire(self) -> bool:
        if self.world.holder is None:
            self.world.holder = ME
        return self.world.holder == ME

    def holds(self) -> bool:
        return self.world.holder == ME

    def release(self) -> None:
        if self.world.holder == ME:
            self.world.holder = None

    def close(self) -> None:
        self.release()


class FakeAccess:
    def __init__(self, world: World) -> None:
        self.world = world

    @contextlib.contextmanager
    def versions(self) -> Iterator[Versions]:
        yield FakeVersions(self.world)

    def election(self) -> Election:
        return FakeElection(self.world)

    def live_store(self, p: DataProduct, store_spec: StoreSpec, fence: VersionFence) -> Store:
        return cast(Store, FakeStore(p, store_spec, fence))

    def shadow_store(self, p: DataProduct, shadow_spec: StoreSpec) -> Store:
        return cast(Store, FakeStore(p, shadow_spec, None))


Step = Callable[[], bool]  # changes the world at a poll; True once done (the next step runs after)


def runner_in(world: World, spec: DataProduct, *steps: Step) -> StoreRunner:
    """A runner of `spec`'s db store in `world`; at each sleep the first pending step runs. A runner
    still polling once every step is done is stopped (the test then fails on what it checks)."""
    pending = list(steps)
    idle = [0]

    def make(p: DataProduct, store_spec: StoreSpec, store: Store, *, live: bool, version: str | None) -> FakeConsumer:
        consumer = FakeConsumer(cast(FakeStore, store), live)
        world.consumers.append(consumer)
        return consumer

    def sleep(seconds: float) -> None:
        world.now += seconds
        if pending:
            if pending[0]():
                pending.pop(0)
            return
        idle[0] += 1
        if idle[0] > 50:
            runner.stop()

    runner = StoreRunner(spec, spec.store("db"), "postgresql://unused", "unused:9092",
                         access=FakeAccess(world), consumers=make, end_offsets_of=lambda topic: dict(world.ends),
                         sleep=sleep, clock=lambda: world.now)
    return runner


def catches_up(world: World) -> Step:
    def step() -> bool:
        if not world.shadows():
            return False
        world.shadows()[-1].status.positions = dict(world.ends)
        return True
    return step


def once(action: Callable[[], object]) -> Step:
    def step() -> bool:
        action()
        return True
    return step


def when(condition: Callable[[], bool], action: Callable[[], object] = lambda: None) -> Step:
    def step() -> bool:
        if not condition():
            return False
        action()
        return True
    return step


def followed(world: World) -> FakeConsumer:
    [last] = [c for c in world.consumers if c.followed]
    return last


# -- deciding --------------------------------------------------------------------------------


def test_a_new_store_records_the_spec_and_follows() -> None:
    world = World(record=None)
    assert runner_in(world, V1).run() == EXIT_STOPPED
    assert world.record is not None and world.record.fingerprint == fp(V1)
    assert followed(world).store.fence == VersionFence(fp(V1), 0)
    assert world.switches == 0 and world.begun == []


def test_an_unchanged_spec_follows_its_generation() -> None:
    world = World(record=record_of(V1, "db", generation=3))
    assert runner_in(world, V1).run() == EXIT_STOPPED
    assert followed(world).store.fence == VersionFence(fp(V1), 3)
    assert world.holder is None  # no election was needed


def test_a_reverted_spec_drops_the_version_built_for_the_other_and_follows() -> None:
    building = decide_start(V2, V2.store("db"), record_of(V1, "db")).shadow
    world = World(record=record_of(V1, "db", shadow=building))
    assert runner_in(world, V1).run() == EXIT_STOPPED
    assert world.dropped == [building]
    assert world.record is not None and world.record.shadow is None and world.record.fingerprint == fp(V1)
    assert followed(world).store.fence == VersionFence(fp(V1), 0)
    assert world.holder is None  # the election was given back


def test_a_reverted_spec_leaves_a_version_another_replica_still_builds() -> None:
    building = decide_start(V2, V2.store("db"), record_of(V1, "db")).shadow
    world = World(record=record_of(V1, "db", shadow=building), holder=OTHER)
    assert runner_in(world, V1).run() == EXIT_STOPPED  # tried for a lease's length, then left it
    assert world.dropped == []
    assert followed(world).store.fence == VersionFence(fp(V1), 0)


# -- building and switching ------------------------------------------------------------------


def test_elected_it_builds_beside_the_live_store_then_switches_and_follows_the_new_spec() -> None:
    world = World(record=record_of(V1, "db"))
    seen: list[RebuildProgress | None] = []

    def part_way() -> bool:
        if not world.shadows():
            return False
        world.shadows()[0].status.positions, world.shadows()[0].status.records = {0: 4}, 4
        return True

    def progress_is_reported() -> bool:
        [live] = world.live()
        seen.append(live.status.rebuild)
        return True

    runner = runner_in(world, V2, part_way, progress_is_reported, catches_up(world))
    assert runner.run() == EXIT_STOPPED
    start = decide_start(V2, V2.store("db"), record_of(V1, "db"))
    assert start.shadow is not None
    assert world.begun == [start.shadow]  # recorded before it was built
    live, shadow, follow = world.consumers
    assert live.store.fence == VersionFence(fp(V1), 0) and live.store.product == V1  # the old spec, fenced
    assert shadow.store.fence is None and shadow.store.spec.name == start.shadow_spec.name  # type: ignore[union-attr]
    assert world.running_at_switch == []  # both stopped before the switch
    assert seen == [RebuildProgress(start.shadow.version, {0: 4}, 4)]
    assert world.switches == 1 and runner.switched == start.shadow.version
    assert world.record is not None and (world.record.fingerprint, world.record.shadow) == (fp(V2), None)
    assert follow.followed and follow.store.fence == VersionFence(fp(V2), 0) and follow.store.product == V2
    assert world.holder is None


def test_a_shadow_that_is_not_caught_up_is_not_switched() -> None:
    world = World(record=record_of(V1, "db"), ends={0: 10, 1: 5})

    def part_way() -> bool:
        if not world.shadows():
            return False
        world.shadows()[-1].status.positions = {0: 10}  # partition 1 not read yet
        return True

    def lagging() -> bool:
        world.shadows()[-1].status.positions = {0: 10, 1: 5}
        world.shadows()[-1].status.lag = 2  # its own fetches saw more
        return True

    runner = runner_in(world, V2, part_way, lagging)
    assert runner.run() == EXIT_STOPPED  # stopped at the end of the script, never switched
    assert world.switches == 0 and runner.switched is None


def test_a_replay_builds_the_next_generation_of_the_same_spec() -> None:
    world = World(record=record_of(V1, "db", generation=1, replay=ReplayRequest("earliest", None)))
    runner = runner_in(world, V1, catches_up(world))
    assert runner.run() == EXIT_STOPPED
    assert world.record is not None and (world.record.fingerprint, world.record.generation) == (fp(V1), 2)
    assert followed(world).store.fence == VersionFence(fp(V1), 2)
    assert world.shadows()[0].store.product.spec.source.start_from == "earliest"


def test_the_election_lost_mid_build_stops_the_shadow_and_another_replica_switches() -> None:
    world = World(record=record_of(V1, "db"))
    shadow_stopped_when_the_other_switched: list[bool] = []

    def other_switches() -> bool:
        shadow_stopped_when_the_other_switched.append(world.shadows()[0].stopped.is_set())
        world.switch_to(V2)
        return True

    runner = runner_in(world, V2,
                       when(lambda: bool(world.shadows()), lambda: setattr(world, "holder", OTHER)),
                       other_switches)
    assert runner.run() == EXIT_STOPPED
    assert len(world.shadows()) == 1
    assert shadow_stopped_when_the_other_switched == [True]
    assert world.switches == 0 and runner.switched is None  # the other replica switched
    assert followed(world).store.fence == VersionFence(fp(V2), 0)


def test_the_election_lost_mid_build_and_won_again_resumes_the_recorded_shadow() -> None:
    world = World(record=record_of(V1, "db"))
    runner = runner_in(world, V2,
                       when(lambda: bool(world.shadows()), lambda: setattr(world, "holder", OTHER)),
                       once(lambda: setattr(world, "holder", None)),
                       catches_up(world))
    assert runner.run() == EXIT_STOPPED
    assert len(world.shadows()) == 2 and len(world.begun) == 1  # resumed, not begun again
    assert world.switches == 1


def test_a_switch_refused_after_the_election_was_lost_decides_again() -> None:
    world = World(record=record_of(V1, "db"))

    def caught_up_but_refused() -> bool:
        if not catches_up(world)():
            return False
        world.refuse_switch = True  # the lease ran out between the last renewal and the switch
        return True

    runner = runner_in(world, V2, caught_up_but_refused,
                       once(lambda: (setattr(world, "holder", OTHER), world.switch_to(V2))))
    assert runner.run() == EXIT_STOPPED
    assert world.switches == 0 and runner.switched is None
    assert followed(world).store.fence == VersionFence(fp(V2), 0)  # decided again: the version is its own


def test_a_shadow_that_halts_ends_the_run_with_its_exit_code() -> None:
    world = World(record=record_of(V1, "db"))
    runner = runner_in(world, V2, when(lambda: bool(world.shadows()),
                                       lambda: world.shadows()[0].finish(EXIT_HALTED)))
    assert runner.run() == EXIT_HALTED
    assert world.switches == 0
    assert all(c.stopped.is_set() for c in world.consumers)


# -- waiting for another replica --------------------------------------------------------------


def test_not_elected_it_follows_the_old_spec_until_another_replica_switches() -> None:
    world = World(record=record_of(V1, "db"), holder=OTHER)
    runner = runner_in(world, V2, once(lambda: None), once(lambda: world.switch_to(V2)))
    assert runner.run() == EXIT_STOPPED
    live, follow = world.consumers
    assert live.store.fence == VersionFence(fp(V1), 0) and live.stopped.is_set()
    assert world.shadows() == [] and world.begun == []
    assert follow.store.fence == VersionFence(fp(V2), 0)


def test_a_spec_changed_twice_drops_the_first_shadow_and_builds_the_second() -> None:
    first = decide_start(V2, V2.store("db"), record_of(V1, "db")).shadow
    world = World(record=record_of(V1, "db", shadow=first))
    runner = runner_in(world, V3, catches_up(world))
    assert runner.run() == EXIT_STOPPED
    second = decide_start(V3, V3.store("db"), record_of(V1, "db")).shadow
    assert world.dropped == [first] and world.begun == [second]
    assert followed(world).store.fence == VersionFence(fp(V3), 0)


def test_a_spec_changed_again_while_waiting_decides_again() -> None:
    world = World(record=record_of(V1, "db"), holder=OTHER)
    # Another replica, with a newer spec still, switched to it: this one's spec is neither.
    runner = runner_in(world, V2, once(lambda: world.switch_to(V3)), once(lambda: world.switch_to(V2)))
    assert runner.run() == EXIT_STOPPED
    assert followed(world).store.fence == VersionFence(fp(V2), 0)
    assert world.switches == 0


def test_a_stop_while_waiting_ends_the_run_and_stops_the_live_follower() -> None:
    world = World(record=record_of(V1, "db"), holder=OTHER)
    runner = runner_in(world, V2)
    runner_stop = runner.stop
    runner._sleep = lambda seconds: runner_stop()  # type: ignore[method-assign]  # a signal arrives
    assert runner.run() == EXIT_STOPPED
    [live] = world.consumers
    assert live.stopped.is_set() and not live.followed


@pytest.mark.parametrize("holder", [None, OTHER])
def test_a_record_that_cannot_be_read_back_builds_without_a_live_follower(holder: str | None) -> None:
    world = World(record=VersionRecord(fp(V1), {"not": "a product"}, "db"), holder=holder)
    steps = [catches_up(world)] if holder is None else [once(lambda: world.switch_to(V2))]
    assert runner_in(world, V2, *steps).run() == EXIT_STOPPED
    assert world.live()[-1].followed and len(world.live()) == 1  # only the final follow
    assert followed(world).store.fence == VersionFence(fp(V2), 0)
