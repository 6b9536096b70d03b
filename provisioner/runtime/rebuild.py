"""Applying a spec to a store: in place when its content rules are unchanged, else a rebuild beside it.

`provisioner consume` runs a `StoreRunner`. At start it reads the store's version record
(`provisioner.stores.versions`) and compares its fingerprint with the spec's:

- no record (a new store, or one older than versions): record the spec and hydrate as usual;
- the same fingerprint: settings that do not change content (batch size, TTL, replicas...) simply
  apply; the record keeps the new spec;
- a different fingerprint, or a replay request: rebuild. Every replica follows the live store with
  the recorded (old) spec in the live group, so readers keep getting fresh data. One replica, the
  elected rebuilder (`provisioner.stores.election`), also builds the new spec on a shadow version
  beside it, with its own consumer group (so it gets every partition). When the shadow's positions
  reach the topic's end offsets, both its consumers finish their batch and stop, the store
  switches to the shadow in one atomic step (the old version is dropped in the same step), and
  the new spec goes on following the stream on the live store from the shadow's positions.
  The other replicas keep trying to be elected (so a dead rebuilder is replaced) and read the
  version record every second: once it names their spec, they follow with it.

Every live writer is fenced on the version it writes (`VersionFence`): after a switch, a batch of
the old spec from any replica is refused in its own transaction or script, so a reader never sees
a version mixed with rows of another.

Crash safety: the shadow is recorded (by the rebuilder, once elected) before it is created, so the
next rebuilder finds it and either resumes it (same target version) or drops it (the spec changed
again); the switch is one transaction (Postgres) or one script (Redis), and only the election's
holder can run it, so a store is never left between two versions.

The runner is a few explicit states, each a method that returns the next: deciding (read the
record: follow, or rebuild), then while rebuilding, waiting (another replica may build: try to be
elected, read the record every second), building (elected: the shadow's consumer runs; a lost
election goes back to waiting) and switching; then following. Everything it reaches in the store
goes through one `StoreAccess` (`runtime.storeaccess`), and consumers, end offsets, sleep and clock
are handed in too, so the unit tests drive every transition with fakes.

`source.until` bounds a store in time: records stamped after the instant are not applied, and once
every partition has passed it (or, after the instant, reached its end) the consumer stops following
and the status says `frozen`, with the instant. A partition stops at its first record after
`until`, so a restart resumes at that record and stops again: the frozen contents are stable.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from provisioner.runtime.backoff import Backoff
from provisioner.runtime.consumer import EXIT_STOPPED, StoreConsumer
from provisioner.runtime.metrics import ConsumerMetrics
from provisioner.runtime.progress import caught_up
from provisioner.runtime.status import ConsumerStatus, RebuildProgress, write_status
from provisioner.runtime.storeaccess import StoreAccess, UrlStoreAccess
from provisioner.runtime.until import UntilBound
from provisioner.spec.fingerprint import fingerprint
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.spec.timestamps import to_epoch_ms
from provisioner.stores.base import Store, VersionFence
from provisioner.stores.election import LEASE_TTL_SECONDS, Election
from provisioner.stores.versions import (
    NotRebuilder,
    ReplayRequest,
    Shadow,
    VersionRecord,
    shadow_for,
    version_id,
)
from provisioner.stream.client import DEFAULT_KAFKA_CLIENT
from provisioner.stream.kafka import end_offsets, is_transient
from provisioner.stream.settings import KafkaTarget

__all__ = [
    "Outcome", "Phase", "RunnableConsumer", "StartDecision", "StoreRunner", "decide_start", "watch_decision",
    "with_overrides",
]

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5
# How often a replica waiting for another one's rebuild reads the version record.
WATCH_SECONDS = 1.0
# How long stopping a rebuild's consumers still counts as a live loop for /healthz.
STOP_GRACE_SECONDS = 60.0


def with_overrides(product: DataProduct, *, start_from: str | None = None, until: str | None = None) -> DataProduct:
    """`product` with `source.startFrom` / `source.until` replaced for one run (None: unchanged)."""
    source_update: dict[str, Any] = {}
    if start_from is not None:
        source_update["start_from"] = start_from
    if until is not None:
        source_update["until"] = until
    if not source_update:
        return product
    source = product.spec.source.model_copy(update=source_update)
    return product.model_copy(update={"spec": product.spec.model_copy(update={"source": source})})


@dataclass(frozen=True, slots=True)
class StartDecision:
    """What a consumer start does: follow the live store, or first build `shadow` beside it."""

    record: VersionRecord | None
    fingerprint: str
    shadow: Shadow | None = None
    shadow_spec: StoreSpec | None = None
    shadow_product: DataProduct | None = None
    generation: int = 0
    until: str | None = None  # a replay's --until: the store stays frozen there while this process runs


def decide_start(product: DataProduct, store: StoreSpec, record: VersionRecord | None) -> StartDecision:
    """Pure: from the recorded version and the spec, whether this start rebuilds, and into what."""
    target = fingerprint(product, store)
    if record is None or (record.fingerprint == target and record.replay is None):
        return StartDecision(record, target)
    replay = record.replay or ReplayRequest()
    generation = record.generation + 1 if record.replay is not None else 0
    version = version_id(target, generation)
    built = with_overrides(product, start_from=replay.start_from, until=replay.until)
    shadow_spec, shadow = shadow_for(product, store, version)
    return StartDecision(record, target, shadow, shadow_spec, built, generation, replay.until)


class Outcome(enum.Enum):
    """How a rebuild ends, other than with an exit code."""

    SWITCHED = "switched"  # the store holds the decided version: follow it with this spec
    REPLAN = "replan"  # the store's version went elsewhere: read it and decide again


class Phase(enum.Enum):
    """The states of a rebuild, between deciding and following."""

    WAITING = "waiting"  # not elected: try to be, and watch the record for another replica's switch
    BUILDING = "building"  # elected: the shadow's consumer runs until it catches up
    SWITCHING = "switching"  # caught up: stop both consumers and switch in one step


def _version_of(record: VersionRecord | None) -> tuple[str, int] | None:
    return None if record is None else (record.fingerprint, record.generation)


def watch_decision(start: StartDecision, record: VersionRecord | None) -> Outcome | None:
    """Pure: what a replica that decided `start` does on reading `record`, while it waits for another
    replica's rebuild or just after it was elected: wait or build (None), follow the new version
    (SWITCHED: a rebuilder switched already), or decide again (REPLAN: the version went elsewhere)."""
    if record is not None and (record.fingerprint, record.generation) == (start.fingerprint, start.generation) \
            and record.replay is None:
        return Outcome.SWITCHED
    if _version_of(record) == _version_of(start.record):
        return None
    return Outcome.REPLAN


class RunnableConsumer(Protocol):
    """What the runner needs of a store's consumer (`StoreConsumer`), run on a thread."""

    status: ConsumerStatus
    until_bound: UntilBound | None

    def run(self) -> int: ...

    def stop(self) -> None: ...


class ConsumerFactory(Protocol):
    def __call__(self, product: DataProduct, store_spec: StoreSpec, store: Store, *, live: bool,
                 version: str | None) -> RunnableConsumer: ...


Ending = int | Outcome  # an exit code, or what the runner does next


@dataclass(slots=True)
class _Rebuild:
    """One rebuild's moving parts, from its start to its switch (or the end of trying)."""

    start: StartDecision
    shadow: Shadow
    shadow_spec: StoreSpec
    built: DataProduct  # the spec the shadow is built with (a replay's bounds applied)
    old: tuple[DataProduct, StoreSpec] | None  # the recorded spec, which the live store follows
    election: Election
    reported: ConsumerStatus  # what this process reports meanwhile
    publish: bool  # no live consumer writes `reported`: the runner does
    started: float
    results: dict[str, int] = field(default_factory=dict)
    builder: RunnableConsumer | None = None
    building: threading.Thread | None = None
    said_waiting: bool = False
    last_watch: float = -math.inf


class StoreRunner:
    """Runs one store's consumer for a spec, rebuilding the store beside itself when the spec's
    content rules changed. `stop()` is safe from a signal handler."""

    def __init__(
        self,
        product: DataProduct,
        store_spec: StoreSpec,
        url: str,
        bootstrap: KafkaTarget,
        *,
        status_path: Path | None = None,
        metrics: ConsumerMetrics | None = None,
        store_url_masked: str | None = None,
        pid: int = 0,
        consumer_config: dict[str, Any] | None = None,
        lease_seconds: float | None = None,
        kafka_client: str = DEFAULT_KAFKA_CLIENT,
        access: StoreAccess | None = None,
        consumers: ConsumerFactory | None = None,
        end_offsets_of: Callable[[str], dict[int, int]] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.product = product
        self.store_spec = store_spec
        self.bootstrap = bootstrap
        self.status_path = status_path
        self.metrics = metrics or ConsumerMetrics(product.name, store_spec.name)
        self.store_url_masked = store_url_masked
        self.pid = pid
        self.consumer_config = consumer_config or {}
        self.lease_seconds = lease_seconds  # a Redis rebuilder lease's TTL (None: the default)
        self.kafka_client = kafka_client
        self.access = access or UrlStoreAccess(product, store_spec, url, lease_seconds=lease_seconds)
        self._consumers: ConsumerFactory = consumers or self._store_consumer
        self._end_offsets = end_offsets_of or self._kafka_end_offsets
        self._sleep = sleep
        self._clock = clock
        self._stopping = False
        self._active: list[RunnableConsumer] = []
        self._threads: list[threading.Thread] = []
        self._election: Election | None = None  # while a rebuild runs
        self.switched: str | None = None  # the version switched to, once a rebuild finished
        self.rebuild_seconds: float | None = None
        self.frozen = False

    def stop(self) -> None:
        self._stopping = True
        for consumer in list(self._active):
            consumer.stop()

    def run(self) -> int:
        """Decide; rebuild if needed (or wait for the replica that rebuilds); then follow the stream
        on the live store until stopped."""
        while True:
            start = self._decide()
            if start is None:
                return EXIT_STOPPED
            if start.shadow is None:
                if start.record is not None and start.record.shadow is not None:
                    self._retrying("dropping a stale version", self._drop_stale)
                generation = start.record.generation if start.record is not None else 0
                return self._follow(VersionFence(start.fingerprint, generation))
            ending = self._rebuild(start)
            if ending is Outcome.REPLAN:
                if self._stopping:
                    return EXIT_STOPPED
                log.warning("the store's version changed to one this spec neither follows nor builds; "
                            "deciding again")
                self._sleep(POLL_SECONDS)
                continue
            if isinstance(ending, int):
                return ending
            if self.switched is None:
                log.info("version %s is live (another replica switched): following it with this spec",
                         start.shadow.version)
            if start.until is not None:
                # Recorded is the spec (so a restart does not rebuild again); the bound is this run's.
                self.product = with_overrides(self.product, until=start.until)
            return self._follow(VersionFence(start.fingerprint, start.generation))

    # -- deciding ---------------------------------------------------------------------------

    def _retrying(self, doing: str, work: Callable[[], Any], *, even_if_stopping: bool = False) -> Any:
        backoff = Backoff()
        while even_if_stopping or not self._stopping:
            try:
                return work()
            except Exception as error:
                if not is_transient(error):
                    raise
                if self.status_path is not None and not self._active:
                    # No consumer reports yet: say why nothing moves (a store refusing us, say).
                    try:
                        write_status(self.status_path, ConsumerStatus(
                            product=self.product.name, namespace=self.product.metadata.namespace,
                            store=self.store_spec.name, kind=self.store_spec.kind, pid=self.pid,
                            store_url=self.store_url_masked, state="backoff",
                            last_error=f"{type(error).__name__}: {error}", updated_at=time.time()))
                    except OSError as failed:
                        log.warning("cannot write status file %s: %s", self.status_path, failed)
                delay = backoff.next_delay()
                log.warning("%s: %s; retrying in %.1fs", doing, error, delay)
                end = self._clock() + delay
                while (even_if_stopping or not self._stopping) and self._clock() < end:
                    self.metrics.beat()  # waiting on the store is not a stalled loop
                    self._sleep(0.2)
        return None

    def _try(self, work: Callable[[], Any], doing: str, *, default: Any = None) -> Any:
        """`work()`, or `default` after logging a transient failure (the loop tries again)."""
        try:
            return work()
        except Exception as error:
            if not is_transient(error):
                raise
            log.warning("%s: %s", doing, error)
            return default

    def _decide(self) -> StartDecision | None:
        """Read the version record and decide; None if stopped meanwhile. A store that needs no
        rebuild records the spec now; a rebuild's shadow is settled by the elected rebuilder."""

        def work() -> StartDecision:
            with self.access.versions() as versions:
                start = decide_start(self.product, self.store_spec, versions.read())
                if start.shadow is None:
                    versions.record(self.product, self.store_spec)
                return start

        start: StartDecision | None = self._retrying("reading the store's version", work)
        return start

    def _drop_stale(self) -> None:
        """The spec went back to the live version's while another was built beside it: drop that
        one, as the elected rebuilder, so never under the feet of a replica still building it. The
        election is tried for a lease's length (a killed rebuilder's Redis lease runs out by then);
        a replica that still holds it is left to finish, and a later start drops what it leaves."""
        election = self.access.election()
        try:
            deadline = self._clock() + (self.lease_seconds or LEASE_TTL_SECONDS) + 2 * POLL_SECONDS
            while not election.try_acquire():
                if self._stopping or self._clock() > deadline:
                    log.info("another replica is building a version of this store; leaving it")
                    return
                self.metrics.beat()
                self._sleep(POLL_SECONDS)
            with self.access.versions() as versions:
                record = versions.read()
                if record is not None and record.shadow is not None and \
                        decide_start(self.product, self.store_spec, record).shadow is None:
                    log.info("dropping version %s, built for an earlier spec", record.shadow.version)
                    versions.drop(record.shadow)
        finally:
            election.close()

    # -- following --------------------------------------------------------------------------

    def _store_consumer(self, product: DataProduct, store_spec: StoreSpec, store: Store, *, live: bool,
                        version: str | None) -> RunnableConsumer:
        """A consumer of `product` into `store`; the live one reports to this process's status file
        and metrics, a rebuild's marks its dead letters with the `version` it builds."""
        return StoreConsumer(
            product, store_spec, store, self.bootstrap,
            status_path=self.status_path if live else None,
            metrics=self.metrics if live else ConsumerMetrics(product.name, store_spec.name),
            store_url_masked=self.store_url_masked, pid=self.pid, consumer_config=self.consumer_config,
            dead_letter_version=version, kafka_client=self.kafka_client,
        )

    def _kafka_end_offsets(self, topic: str) -> dict[int, int]:
        return end_offsets(self.bootstrap, topic, client=self.kafka_client)

    def _follow(self, fence: VersionFence) -> int:
        """Follow with this spec, writing only while the store's version is `fence`'s."""
        if self._stopping:
            return EXIT_STOPPED
        store = self.access.live_store(self.product, self.store_spec, fence)
        consumer = self._consumers(self.product, self.store_spec, store, live=True, version=None)
        consumer.status.version = fence.fingerprint  # the live store holds this spec's content
        if self.product.spec.source.until is None:
            self._active = [consumer]
            if self._stopping:
                return EXIT_STOPPED
            return consumer.run()
        return self._follow_until(consumer)

    def _follow_until(self, consumer: RunnableConsumer) -> int:
        until = self.product.spec.source.until
        assert until is not None
        results: dict[str, int] = {}
        thread = self._start_thread("live", consumer, results)
        while thread.is_alive() and not self._stopping:
            if self._frozen(consumer, until):
                break
            self._sleep(POLL_SECONDS)
        consumer.stop()
        thread.join()
        code = results.get("live", EXIT_STOPPED)
        if self._stopping or code != EXIT_STOPPED or consumer.status.state == "halted":
            return code
        self.frozen = True
        status = consumer.status
        status.state = "frozen"
        status.frozen_at = until
        status.updated_at = time.time()
        log.info("frozen as of %s: every partition passed it", until)
        if self.status_path is not None:
            write_status(self.status_path, status)
        while not self._stopping:
            self.metrics.beat()  # frozen is healthy: /healthz keeps answering 200
            self._sleep(POLL_SECONDS)
        return EXIT_STOPPED

    def _ends(self, topic: str) -> dict[int, int] | None:
        """The topic's end offsets, or None while Kafka does not answer."""
        try:
            return self._end_offsets(topic)
        except Exception as error:
            if not is_transient(error):
                raise
            return None

    def _frozen(self, consumer: RunnableConsumer, until: str) -> bool:
        bounded = consumer.until_bound
        if bounded is None or consumer.status.state != "running":
            return False
        passed = set(bounded.passed)
        ends = self._ends(self.product.spec.source.topic)
        if not ends:
            return False
        positions = consumer.status.positions
        after_until = time.time() * 1000 > to_epoch_ms(until)
        return all(p in passed or (after_until and positions.get(p, -1) >= e) for p, e in ends.items())

    def _start_thread(self, name: str, consumer: RunnableConsumer, results: dict[str, int]) -> threading.Thread:
        def target() -> None:
            try:
                results[name] = consumer.run()
            except Exception:
                log.exception("the %s consumer failed", name)
                results[name] = 1

        self._active.append(consumer)
        thread = threading.Thread(target=target, name=f"consumer-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()
        if self._stopping:
            consumer.stop()
        return thread

    def _join(self, thread: threading.Thread, deadline: float) -> None:
        """Wait for a stopping consumer's thread. The liveness probe keeps beating until `deadline`
        (a batch and a Kafka close take seconds); a consumer stuck longer shows as a stall."""
        while thread.is_alive() and self._clock() < deadline:
            self.metrics.beat()
            if self._election is not None:  # a rebuilder about to switch keeps its lease meanwhile
                self._try(self._election.holds, "renewing the rebuilder lease", default=True)
            thread.join(timeout=POLL_SECONDS)
        thread.join()

    def _stop_thread(self, consumer: RunnableConsumer, thread: threading.Thread) -> None:
        consumer.stop()
        self._join(thread, self._clock() + STOP_GRACE_SECONDS)
        if consumer in self._active:
            self._active.remove(consumer)
        if thread in self._threads:
            self._threads.remove(thread)

    def _stop_all(self) -> None:
        for consumer in self._active:
            consumer.stop()
        deadline = self._clock() + STOP_GRACE_SECONDS
        for thread in self._threads:
            self._join(thread, deadline)
        self._active, self._threads = [], []

    # -- rebuilding -------------------------------------------------------------------------

    def _rebuild(self, start: StartDecision) -> Ending:
        """Follow the recorded spec on the live store while this replica (once elected) builds the
        shadow and switches, or another replica does; an exit code if it ends otherwise."""
        job = self._begin_rebuild(start)
        self._election = job.election
        steps: dict[Phase, Callable[[_Rebuild], Phase | Ending]] = {
            Phase.WAITING: self._waiting, Phase.BUILDING: self._building,
        }
        try:
            phase = Phase.WAITING
            while phase is not Phase.SWITCHING:
                if self._stopping:
                    return EXIT_STOPPED
                self.metrics.beat()  # a long rebuild, or a long wait for another replica's, is healthy
                self._report_rebuild(job)
                step = steps[phase](job)
                if not isinstance(step, Phase):
                    return step
                if step is phase:
                    self._sleep(POLL_SECONDS)
                phase = step
            return self._switching(job)
        finally:
            self._stop_all()
            self._election = None
            try:
                job.election.close()
            except Exception:
                log.debug("releasing the rebuilder election failed", exc_info=True)

    def _begin_rebuild(self, start: StartDecision) -> _Rebuild:
        """Start following the recorded spec on the live store (if it can be read back), and open
        the election."""
        assert start.shadow is not None and start.shadow_spec is not None and start.shadow_product is not None
        record = start.record
        old = record.product() if record is not None else None
        reported = ConsumerStatus(product=self.product.name, namespace=self.product.metadata.namespace,
                                  store=self.store_spec.name, kind=self.store_spec.kind, pid=self.pid,
                                  store_url=self.store_url_masked, state="running")
        live: RunnableConsumer | None = None
        if old is not None and old[1].kind == self.store_spec.kind and record is not None:
            store = self.access.live_store(old[0], old[1], VersionFence(record.fingerprint, record.generation))
            live = self._consumers(old[0], old[1], store, live=True, version=None)
            reported = live.status
        else:
            log.warning("the recorded spec cannot be read back: the live store serves without following")
        reported.version = record.fingerprint if record is not None else None
        reported.rebuild = RebuildProgress(start.shadow.version)
        job = _Rebuild(start, start.shadow, start.shadow_spec, start.shadow_product, old, self.access.election(),
                       reported, publish=live is None, started=self._clock())
        if live is not None:
            self._start_thread("live", live, job.results)
        return job

    def _waiting(self, job: _Rebuild) -> Phase | Ending:
        """Not the rebuilder: become it (and build), or see another replica's switch."""
        if self._try(job.election.try_acquire, "electing the rebuilder"):
            decided: Outcome | None = self._retrying("taking the rebuild over", lambda: self._take_over(job.start))
            if decided is not None:
                return decided
            if self._stopping:
                return Phase.WAITING
            log.info("rebuilding %s/%s as version %s (was %s) beside the live store", self.product.name,
                     self.store_spec.name, job.shadow.version,
                     job.start.record.version if job.start.record else "none")
            store = self.access.shadow_store(job.built, job.shadow_spec)
            job.builder = self._consumers(job.built, job.shadow_spec, store, live=False,
                                          version=job.start.fingerprint)
            job.building = self._start_thread("shadow", job.builder, job.results)
            return Phase.BUILDING
        if not job.said_waiting:
            log.info("another replica rebuilds %s/%s as version %s; following the recorded spec "
                     "until it switches", self.product.name, self.store_spec.name, job.shadow.version)
            job.said_waiting = True
        if self._clock() - job.last_watch >= WATCH_SECONDS:
            job.last_watch = self._clock()
            watched: Outcome | None = self._try(lambda: self._watch(job.start), "reading the store's version")
            if watched is not None:
                return watched
        return Phase.WAITING

    def _building(self, job: _Rebuild) -> Phase | Ending:
        """The rebuilder: keep the election, and switch once the shadow caught up."""
        assert job.builder is not None and job.building is not None
        if not self._try(job.election.holds, "renewing the rebuilder lease", default=True):
            log.warning("no longer the rebuilder of %s/%s: stopping the shadow", self.product.name,
                        self.store_spec.name)
            self._stop_thread(job.builder, job.building)
            job.builder = job.building = None
            return Phase.WAITING
        if not job.building.is_alive():
            code = job.results.get("shadow", EXIT_STOPPED)
            if not self._stopping:
                log.error("the rebuild stopped before it caught up (exit %d): %s", code,
                          job.builder.status.last_error)
            return code
        if self._shadow_ready(job.builder, job.built):
            log.info("version %s caught up with the stream; switching", job.shadow.version)
            return Phase.SWITCHING
        return Phase.BUILDING

    def _switching(self, job: _Rebuild) -> Ending:
        """Stop both consumers and switch, even if a stop arrived meanwhile: it is one short atomic
        step. Refused (the election was lost), the runner decides again."""
        assert job.builder is not None
        self._stop_all()

        def switch() -> None:
            with self.access.versions() as versions:
                versions.switch(job.old, self.product, self.store_spec, job.shadow, job.start.generation,
                                election=job.election)

        try:
            self._retrying("switching versions", switch, even_if_stopping=True)
        except NotRebuilder as error:
            log.warning("%s", error)
            return Outcome.REPLAN
        self.switched = job.shadow.version
        self.rebuild_seconds = self._clock() - job.started
        log.info("switched %s/%s to version %s after %.1fs (%d records read)", self.product.name,
                 self.store_spec.name, job.shadow.version, self.rebuild_seconds, job.builder.status.records)
        return EXIT_STOPPED if self._stopping else Outcome.SWITCHED

    def _report_rebuild(self, job: _Rebuild) -> None:
        """Put the rebuild's progress in the status this process reports (the live consumer writes
        it with its own; the runner publishes it when no live consumer runs to write it)."""
        if job.builder is not None:
            job.reported.rebuild = RebuildProgress(job.shadow.version, dict(job.builder.status.positions),
                                                   job.builder.status.records)
        if job.publish and self.status_path is not None:
            job.reported.updated_at = time.time()
            try:
                write_status(self.status_path, job.reported)
            except OSError as error:
                log.warning("cannot write status file %s: %s", self.status_path, error)

    def _take_over(self, start: StartDecision) -> Outcome | None:
        """Just elected: settle the record (None: build the decided shadow, recorded now)."""
        assert start.shadow is not None
        with self.access.versions() as versions:
            record = versions.read()
            decided = watch_decision(start, record)
            if decided is not None:
                return decided
            assert record is not None or start.record is None
            if record is not None and record.shadow is not None and record.shadow.version != start.shadow.version:
                log.info("dropping version %s, built for an earlier spec", record.shadow.version)
                versions.drop(record.shadow)
            if record is None or record.shadow != start.shadow:
                versions.begin(start.shadow)
            else:
                log.info("resuming version %s", start.shadow.version)
            return None

    def _watch(self, start: StartDecision) -> Outcome | None:
        """Not elected: whether the rebuilder switched (or the version went elsewhere)."""
        with self.access.versions() as versions:
            return watch_decision(start, versions.read())

    def _shadow_ready(self, builder: RunnableConsumer, built: DataProduct) -> bool:
        """The shadow caught up: its applied positions reached the topic's end offsets (or, bounded
        by `until`, every partition passed the instant)."""
        if builder.status.state != "running" or not builder.status.positions:
            return False
        until = built.spec.source.until
        if until is not None:
            return self._frozen(builder, until)
        left = builder.status.lag  # from the ends its own fetches saw, refreshed every second
        if left is not None and left > 0:
            # Records are known to be left: no need to ask the brokers. (A new client of the brokers
            # per check, twice a second, competed with the rebuild for the process's one core.)
            return False
        ends = self._ends(built.spec.source.topic)
        positions = builder.status.positions
        return bool(ends) and set(ends or {}) <= set(positions) and caught_up(positions, ends or {})
