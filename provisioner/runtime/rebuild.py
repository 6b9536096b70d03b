"""Applying a spec to a store: in place when its content rules are unchanged, else a rebuild beside it.

`provisioner consume` runs a `StoreRunner`. At start it reads the store's version record
(`provisioner.stores.versions`) and compares its fingerprint with the spec's:

- no record (a new store, or one older than versions): record the spec and hydrate as usual;
- the same fingerprint: settings that do not change content (batch size, TTL, replicas...) simply
  apply; the record keeps the new spec;
- a different fingerprint, or a replay request: rebuild. Two consumers run in this process: the
  recorded (old) spec on the live store, so readers keep getting fresh data, and the new spec on a
  shadow version beside it, with its own consumer group. When the shadow's positions reach the
  topic's end offsets, both finish their batch and stop, the store switches to the shadow in one
  atomic step (the old version is dropped in the same step), and the new spec goes on following
  the stream on the live store from the shadow's positions.

Crash safety: the shadow is recorded before it is created, so a restart finds it and either
resumes it (same target version) or drops it (the spec changed again); the switch is one
transaction (Postgres) or one script (Redis), so a store is never left between two versions.

`source.until` bounds a store in time: records stamped after the instant are not applied, and once
every partition has passed it (or, after the instant, reached its end) the consumer stops following
and the status says `frozen`, with the instant. A partition stops at its first record after
`until`, so a restart resumes at that record and stops again: the frozen contents are stable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.runtime.backoff import Backoff
from provisioner.runtime.consumer import EXIT_STOPPED, StoreConsumer
from provisioner.runtime.metrics import ConsumerMetrics
from provisioner.runtime.progress import caught_up
from provisioner.runtime.status import write_status
from provisioner.spec.fingerprint import fingerprint
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.spec.timestamps import to_epoch_ms
from provisioner.stores.registry import open_store
from provisioner.stores.versions import (
    ReplayRequest,
    Shadow,
    VersionRecord,
    open_shadow_store,
    open_versions,
    shadow_for,
    version_id,
)
from provisioner.stream.client import DEFAULT_KAFKA_CLIENT
from provisioner.stream.kafka import end_offsets, is_transient

__all__ = ["RebuildPlan", "StoreRunner", "plan_start", "with_overrides"]

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5


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
class RebuildPlan:
    """What a consumer start does: follow the live store, or first build `shadow` beside it."""

    record: VersionRecord | None
    fingerprint: str
    shadow: Shadow | None = None
    shadow_spec: StoreSpec | None = None
    shadow_product: DataProduct | None = None
    generation: int = 0
    until: str | None = None  # a replay's --until: the store stays frozen there while this process runs


def plan_start(product: DataProduct, store: StoreSpec, record: VersionRecord | None) -> RebuildPlan:
    """Pure: from the recorded version and the spec, whether this start rebuilds, and into what."""
    target = fingerprint(product, store)
    if record is None or (record.fingerprint == target and record.replay is None):
        return RebuildPlan(record, target)
    replay = record.replay or ReplayRequest()
    generation = record.generation + 1 if record.replay is not None else 0
    version = version_id(target, generation)
    built = with_overrides(product, start_from=replay.start_from, until=replay.until)
    shadow_spec, shadow = shadow_for(product, store, version)
    return RebuildPlan(record, target, shadow, shadow_spec, built, generation, replay.until)


class StoreRunner:
    """Runs one store's consumer for a spec, rebuilding the store beside itself when the spec's
    content rules changed. `stop()` is safe from a signal handler."""

    def __init__(
        self,
        product: DataProduct,
        store_spec: StoreSpec,
        url: str,
        bootstrap: str,
        *,
        status_path: Path | None = None,
        metrics: ConsumerMetrics | None = None,
        store_url_masked: str | None = None,
        pid: int = 0,
        consumer_config: dict[str, Any] | None = None,
        kafka_client: str = DEFAULT_KAFKA_CLIENT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.product = product
        self.store_spec = store_spec
        self.url = url
        self.bootstrap = bootstrap
        self.status_path = status_path
        self.metrics = metrics or ConsumerMetrics(product.name, store_spec.name)
        self.store_url_masked = store_url_masked
        self.pid = pid
        self.consumer_config = consumer_config or {}
        self.kafka_client = kafka_client
        self._sleep = sleep
        self._stopping = False
        self._active: list[StoreConsumer] = []
        self._threads: list[threading.Thread] = []
        self.switched: str | None = None  # the version switched to, once a rebuild finished
        self.rebuild_seconds: float | None = None
        self.frozen = False

    def stop(self) -> None:
        self._stopping = True
        for consumer in list(self._active):
            consumer.stop()

    # -- start ------------------------------------------------------------------------------

    def _retrying(self, doing: str, work: Callable[[], Any], *, even_if_stopping: bool = False) -> Any:
        backoff = Backoff()
        while even_if_stopping or not self._stopping:
            try:
                return work()
            except Exception as error:
                if not is_transient(error):
                    raise
                delay = backoff.next_delay()
                log.warning("%s: %s; retrying in %.1fs", doing, error, delay)
                end = time.monotonic() + delay
                while (even_if_stopping or not self._stopping) and time.monotonic() < end:
                    self._sleep(0.2)
        return None

    def _prepare(self) -> RebuildPlan | None:
        """Read the version record, settle leftovers, and decide; None if stopped meanwhile."""

        def work() -> RebuildPlan:
            versions = open_versions(self.product, self.store_spec, self.url)
            try:
                record = versions.read()
                plan = plan_start(self.product, self.store_spec, record)
                if record is not None and record.shadow is not None and (
                        plan.shadow is None or record.shadow.version != plan.shadow.version):
                    log.info("dropping version %s, built for an earlier spec", record.shadow.version)
                    versions.drop(record.shadow)
                if plan.shadow is None:
                    versions.record(self.product, self.store_spec)
                else:
                    versions.begin(plan.shadow)
                return plan
            finally:
                versions.close()

        plan: RebuildPlan | None = self._retrying("reading the store's version", work)
        return plan

    def run(self) -> int:
        """Rebuild if needed, then follow the stream on the live store until stopped."""
        plan = self._prepare()
        if plan is None:
            return EXIT_STOPPED
        if plan.shadow is not None:
            code = self._rebuild(plan)
            if code is not None:
                return code
            if plan.until is not None:
                # Recorded is the spec (so a restart does not rebuild again); the bound is this run's.
                self.product = with_overrides(self.product, until=plan.until)
        return self._follow()

    # -- following --------------------------------------------------------------------------

    def _consumer(self, product: DataProduct, store_spec: StoreSpec, store: Any, *, live: bool,
                  version: str | None = None) -> StoreConsumer:
        """A consumer of `product` into `store`; the live one reports to this process's status file
        and metrics, a rebuild's marks its dead letters with the `version` it builds."""
        return StoreConsumer(
            product, store_spec, store, self.bootstrap,
            status_path=self.status_path if live else None,
            metrics=self.metrics if live else ConsumerMetrics(product.name, store_spec.name),
            store_url_masked=self.store_url_masked, pid=self.pid, consumer_config=self.consumer_config,
            dead_letter_version=version, kafka_client=self.kafka_client,
        )

    def _follow(self) -> int:
        consumer = self._consumer(self.product, self.store_spec,
                                  open_store(self.product, self.store_spec, self.url), live=True)
        if self.product.spec.source.until is None:
            self._active = [consumer]
            if self._stopping:
                return EXIT_STOPPED
            return consumer.run()
        return self._follow_until(consumer)

    def _follow_until(self, consumer: StoreConsumer) -> int:
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

    def _frozen(self, consumer: StoreConsumer, until: str) -> bool:
        bounded = consumer.until_bound
        if bounded is None or consumer.status.state != "running":
            return False
        passed = set(bounded.passed)
        try:
            ends = end_offsets(self.bootstrap, self.product.spec.source.topic)
        except Exception as error:
            if not is_transient(error):
                raise
            return False
        if not ends:
            return False
        positions = {int(p): o for p, o in consumer.status.positions.items()}
        after_until = time.time() * 1000 > to_epoch_ms(until)
        return all(p in passed or (after_until and positions.get(p, -1) >= e) for p, e in ends.items())

    def _start_thread(self, name: str, consumer: StoreConsumer, results: dict[str, int]) -> threading.Thread:
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

    # -- rebuilding -------------------------------------------------------------------------

    def _rebuild(self, plan: RebuildPlan) -> int | None:
        """Build the shadow beside the live store and switch; an exit code if it ends otherwise."""
        assert plan.shadow is not None and plan.shadow_spec is not None and plan.shadow_product is not None
        shadow, shadow_spec, built = plan.shadow, plan.shadow_spec, plan.shadow_product
        started = time.monotonic()
        old = plan.record.product() if plan.record is not None else None
        log.info("rebuilding %s/%s as version %s (was %s) beside the live store", self.product.name,
                 self.store_spec.name, shadow.version, plan.record.version if plan.record else "none")
        results: dict[str, int] = {}
        live: StoreConsumer | None = None
        if old is not None and old[1].kind == self.store_spec.kind:
            live = self._consumer(old[0], old[1], open_store(old[0], old[1], self.url), live=True)
            self._start_thread("live", live, results)
        else:
            log.warning("the recorded spec cannot be read back: the live store serves without following")
        builder = self._consumer(built, shadow_spec, open_shadow_store(built, shadow_spec, self.url),
                                 live=False, version=plan.fingerprint)
        building = self._start_thread("shadow", builder, results)
        done = False
        while not self._stopping:
            if not building.is_alive():
                break
            if self._shadow_ready(builder, built):
                log.info("version %s caught up with the stream; switching", shadow.version)
                done = True
                break
            self._sleep(POLL_SECONDS)
        for consumer in self._active:
            consumer.stop()
        for thread in self._threads:
            thread.join()
        self._active, self._threads = [], []
        code = results.get("shadow", EXIT_STOPPED)
        if not done or code != EXIT_STOPPED:
            if not self._stopping:
                log.error("the rebuild stopped before it caught up (exit %d): %s", code,
                          builder.status.last_error)
            return code
        # Switch even if a stop arrived meanwhile: it is one short atomic step.
        self._retrying("switching versions", lambda: self._switch(old, shadow, plan.generation),
                       even_if_stopping=True)
        self.switched = shadow.version
        self.rebuild_seconds = time.monotonic() - started
        log.info("switched %s/%s to version %s after %.1fs (%d records read)", self.product.name,
                 self.store_spec.name, shadow.version, self.rebuild_seconds, builder.status.records)
        return EXIT_STOPPED if self._stopping else None

    def _switch(self, old: tuple[DataProduct, StoreSpec] | None, shadow: Shadow, generation: int) -> None:
        versions = open_versions(self.product, self.store_spec, self.url)
        try:
            versions.switch(old, self.product, self.store_spec, shadow, generation)
        finally:
            versions.close()

    def _shadow_ready(self, builder: StoreConsumer, built: DataProduct) -> bool:
        """The shadow caught up: its applied positions reached the topic's end offsets (or, bounded
        by `until`, every partition passed the instant)."""
        if builder.status.state != "running" or not builder.status.positions:
            return False
        until = built.spec.source.until
        if until is not None:
            return self._frozen(builder, until)
        try:
            ends = end_offsets(self.bootstrap, built.spec.source.topic)
        except Exception as error:
            if not is_transient(error):
                raise
            return False
        positions = {int(p): o for p, o in builder.status.positions.items()}
        return bool(ends) and set(ends) <= set(positions) and caught_up(positions, ends)
