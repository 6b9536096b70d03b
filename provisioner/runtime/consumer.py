"""The store consumer: Kafka -> pipeline -> store, effectively once (spec.md, "Stores").

One consumer per (product, store), run as `provisioner consume` (locally under `up`'s supervisor, in
a cluster as a Deployment). The loop: fill a batch (batchSize / batchLatency), run the pure
pipeline, send dead letters and wait for their acknowledgement, then apply the batch and the new
positions in one atomic, fenced store write, then commit Kafka offsets (only for lag tools).

Positions come from the store, never from Kafka: on every (re)assignment the consumer reads them
back and seeks. A rebalance or a failed fence discards the batch in hand; nothing is applied twice
because the store only accepts a batch that starts where the stored position is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from provisioner.pipeline.ops import Change, DeadLetter, Delete, RecordLike, Skip, Upsert
from provisioner.pipeline.process import Pipeline
from provisioner.runtime.backoff import Backoff
from provisioner.runtime.metrics import ConsumerMetrics
from provisioner.runtime.status import ConsumerStatus, write_status
from provisioner.spec.durations import parse_duration
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.stores.base import PositionConflict, Store, StoreError, StoreSchemaError
from provisioner.stream.deadletters import DeadLetterProducer

log = logging.getLogger(__name__)

EXIT_STOPPED = 0
EXIT_HALTED = 2
EXIT_SCHEMA = 3
STATUS_INTERVAL = 1.0
END_OFFSETS_INTERVAL = 5.0


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Only records that the assignment changed: the loop reacts after poll returns, because
    kafka-python swallows exceptions raised inside listener callbacks."""

    def __init__(self) -> None:
        self.changed = False

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.changed = True

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.changed = True


class _Halt(Exception):
    """errors.mode stop met an error: the consumer stops after committing what preceded it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _start_offsets(consumer: KafkaConsumer, partitions: list[TopicPartition], start_from: str) -> dict[int, int]:
    if start_from == "earliest":
        offsets = consumer.beginning_offsets(partitions)
    elif start_from == "latest":
        offsets = consumer.end_offsets(partitions)
    else:
        stamp = int(datetime.fromisoformat(start_from.replace("Z", "+00:00").replace("z", "+00:00")).timestamp() * 1000)
        found = consumer.offsets_for_times(dict.fromkeys(partitions, stamp))
        ends = consumer.end_offsets(partitions)
        offsets = {tp: (found[tp].offset if found.get(tp) is not None else ends[tp]) for tp in partitions}
    return {tp.partition: int(offset) for tp, offset in offsets.items()}


class StoreConsumer:
    """Hydrates one store of one data product from the source topic until asked to stop."""

    def __init__(
        self,
        product: DataProduct,
        store_spec: StoreSpec,
        store: Store,
        bootstrap: str,
        *,
        status_path: Path | None = None,
        metrics: ConsumerMetrics | None = None,
        store_url_masked: str | None = None,
        pid: int = 0,
        consumer_config: dict[str, Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.product = product
        self.store_spec = store_spec
        self.store = store
        self.bootstrap = bootstrap
        self.pipeline = Pipeline(product)
        self.topic = product.spec.source.topic
        self.batch_size = product.spec.consumer.batch_size
        self.batch_latency = parse_duration(product.spec.consumer.batch_latency).total_seconds()
        self.error_mode = product.spec.errors.mode
        self.metrics = metrics or ConsumerMetrics(product.name, store_spec.name)
        self.status_path = status_path
        self.status = ConsumerStatus(
            product=product.name, namespace=product.metadata.namespace, store=store_spec.name,
            kind=store_spec.kind, pid=pid, store_url=store_url_masked,
        )
        self._consumer_config = consumer_config or {}
        self._sleep = sleep
        self._stopping = False
        self._consumer: KafkaConsumer | None = None
        self._dead_letters: DeadLetterProducer | None = None
        self._listener = _Listener()
        self._positions: dict[int, int] = {}
        self._backoff = Backoff()
        self._last_status = 0.0
        self._last_end_offsets = 0.0
        self._rate_mark = (time.monotonic(), 0)
        self._skips = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand and return (safe from a signal handler)."""
        self._stopping = True

    def run(self) -> int:
        """Consume until stopped; returns an exit code (0 stopped, 2 halted on error, 3 schema)."""
        try:
            self._start()
            if self._stopping:
                return EXIT_STOPPED
            self._set_state("running")
            while not self._stopping:
                self._step()
            return EXIT_STOPPED
        except _Halt as halt:
            self.status.last_error = halt.reason
            self._set_state("halted")
            log.error("halted: %s", halt.reason)
            return EXIT_HALTED
        except StoreSchemaError as error:
            self.status.last_error = str(error)
            self._set_state("halted")
            log.error("%s", error)
            return EXIT_SCHEMA
        finally:
            if self.status.state not in ("halted",):
                self._set_state("stopped")
            self._close()

    def _start(self) -> None:
        """Connect to Kafka and the store, retrying with backoff until both answer."""
        while not self._stopping:
            try:
                self.store.ensure_schema()
                if self.error_mode == "deadLetter" and self._dead_letters is None:
                    self._dead_letters = DeadLetterProducer(
                        self.bootstrap, self.product.dead_letter_topic, self._client_id("dlq")
                    )
                if self._consumer is None:
                    self._consumer = self._new_consumer()
                self._backoff.reset()
                return
            except (StoreError, KafkaError, OSError) as error:
                self._retry_later(error)

    def _new_consumer(self) -> KafkaConsumer:
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "group_id": self.product.consumer_group(self.store_spec),
            "client_id": self._client_id("consumer"),
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "max_poll_records": self.batch_size,
            "check_crcs": False,
            "fetch_max_wait_ms": 100,
            "max_partition_fetch_bytes": 4 * 1024 * 1024,
            "fetch_max_bytes": 32 * 1024 * 1024,
            **self._consumer_config,
        }
        consumer = KafkaConsumer(**config)
        self._listener.changed = True
        consumer.subscribe([self.topic], listener=self._listener)
        return consumer

    def _client_id(self, role: str) -> str:
        return f"provisioner-{self.product.name}-{self.store_spec.name}-{role}"

    def _close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False)
            except Exception:  # noqa: BLE001 - closing is best effort; the group expires us anyway
                log.debug("closing the Kafka consumer failed", exc_info=True)
        if self._dead_letters is not None:
            try:
                self._dead_letters.close()
            except Exception:  # noqa: BLE001
                log.debug("closing the dead-letter producer failed", exc_info=True)
        try:
            self.store.close()
        except Exception:  # noqa: BLE001
            log.debug("closing the store failed", exc_info=True)

    # -- the loop ----------------------------------------------------------------------------

    def _step(self) -> None:
        try:
            batch = self._fill_batch()
            if batch:
                self._apply_batch(batch)
            else:
                self._idle()
            self._backoff.reset()
        except PositionConflict:
            self.status.conflicts += 1
            self.metrics.conflicts.inc()
            log.warning("another consumer moved the positions: discarding the batch and re-reading them")
            self._listener.changed = True
        except (StoreError, KafkaError, OSError) as error:
            self._retry_later(error)
            self._listener.changed = True

    def _fill_batch(self) -> list[RecordLike]:
        """Records in partition-offset order, up to batchSize, waiting at most batchLatency."""
        consumer = self._consumer
        assert consumer is not None
        batch: list[RecordLike] = []
        deadline: float | None = None
        while len(batch) < self.batch_size and not self._stopping:
            if deadline is None:
                timeout = STATUS_INTERVAL
            else:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
            polled = consumer.poll(timeout_ms=max(1, int(timeout * 1000)), max_records=self.batch_size - len(batch))
            if self._listener.changed:
                self._reposition()
                return []
            for records in polled.values():
                batch.extend(records)
            if batch and deadline is None:
                deadline = time.monotonic() + self.batch_latency
            if not batch:
                break
        return batch

    def _reposition(self) -> None:
        """After a (re)assignment or a failed fence: read positions from the store and seek."""
        consumer = self._consumer
        assert consumer is not None
        self._listener.changed = False
        assigned = sorted(consumer.assignment(), key=lambda tp: tp.partition)
        stored = self.store.read_positions()
        missing = [tp for tp in assigned if tp.partition not in stored]
        if missing:
            initial = _start_offsets(consumer, missing, self.product.spec.source.start_from)
            # Persist where a new store starts, so `latest` or a timestamp means the same after a crash.
            self.store.apply([], dict.fromkeys(initial), initial)
            stored = {**stored, **initial}
        self._positions = {tp.partition: stored[tp.partition] for tp in assigned}
        for tp in assigned:
            consumer.seek(tp, stored[tp.partition])
        self.status.positions = {str(p): o for p, o in sorted(stored.items())}
        log.info("assigned partitions %s at %s", [tp.partition for tp in assigned], self._positions)

    def _apply_batch(self, batch: Sequence[RecordLike]) -> None:
        halt_reason: str | None = None
        changes, dead = self._transform(batch)
        prepared, rejected = self.store.prepare(changes)
        if rejected:
            by_position = {(r.partition, r.offset): r for r in batch}
            dead.extend((by_position[(x.change.partition, x.change.offset)], x.dead_letter) for x in rejected)
        if dead and self.error_mode == "stop":
            first = min(dead, key=lambda item: batch.index(item[0]))
            record, dl = first
            halt_reason = (f"{dl.stage} error at {record.topic}[{record.partition}]@{record.offset}: {dl.message}"
                           " (errors.mode: stop)")
            batch = batch[: batch.index(record)]
            changes, _ = self._transform(batch)
            prepared, _ = self.store.prepare(changes)
            dead = []
        if dead:
            dead.sort(key=lambda item: (item[0].partition, item[0].offset))
            if self._dead_letters is not None:
                self._dead_letters.send_all(dead)
            for record, dl in dead:
                self.metrics.dead_letter(dl.stage)
                log.warning("dead letter %s[%d]@%d %s: %s", record.topic, record.partition, record.offset,
                            dl.stage, dl.message)
        end: dict[int, int] = {}
        for record in batch:
            end[record.partition] = record.offset + 1
        start: dict[int, int | None] = {p: self._positions.get(p) for p in end}
        if end:
            started = time.perf_counter()
            self.store.apply(prepared, start, end)
            self.metrics.batch_seconds.observe(time.perf_counter() - started)
            self._positions.update(end)
            self._commit_kafka(end)
        self._account(batch, changes, dead)
        if halt_reason is not None:
            raise _Halt(halt_reason)

    def _transform(self, batch: Sequence[RecordLike]) -> tuple[list[Change], list[tuple[RecordLike, DeadLetter]]]:
        process = self.pipeline.process
        changes: list[Change] = []
        dead: list[tuple[RecordLike, DeadLetter]] = []
        skips = 0
        for record in batch:
            op = process(record)
            if isinstance(op, Upsert | Delete):
                changes.append(Change(record.partition, record.offset, record.timestamp, op))
            elif isinstance(op, Skip):
                skips += 1
            else:
                dead.append((record, op))
        self._skips = skips
        return changes, dead

    def _commit_kafka(self, end: dict[int, int]) -> None:
        consumer = self._consumer
        assert consumer is not None
        offsets = {TopicPartition(self.topic, p): OffsetAndMetadata(o, "", -1) for p, o in end.items()}
        try:
            consumer.commit_async(offsets)
        except KafkaError as error:
            log.debug("committing Kafka offsets failed (positions are safe in the store): %s", error)

    # -- status ------------------------------------------------------------------------------

    def _account(self, batch: Sequence[RecordLike], changes: list[Change],
                 dead: list[tuple[RecordLike, DeadLetter]]) -> None:
        status = self.status
        upserts = sum(1 for c in changes if isinstance(c.op, Upsert))
        counts = {"upsert": upserts, "delete": len(changes) - upserts, "skip": self._skips, "deadLetter": len(dead)}
        for kind, count in counts.items():
            status.ops[kind] += count
            self.metrics.op(kind, count)
        status.records += len(batch)
        status.dead_letters += len(dead)
        status.batches += 1
        self.metrics.records.inc(len(batch))
        if batch:
            status.last_record_timestamp_ms = max(r.timestamp for r in batch)
        status.positions = {str(p): o for p, o in sorted(self._positions.items())}
        status.last_error = None
        self._publish(force=False)

    def _idle(self) -> None:
        self._publish(force=False)

    def _refresh_lag(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        assigned = list(consumer.assignment())
        ends: dict[int, int] = {}
        for tp in assigned:
            high = consumer.highwater(tp)
            if high is not None:
                ends[tp.partition] = int(high)
        now = time.monotonic()
        if len(ends) < len(assigned) and now - self._last_end_offsets > END_OFFSETS_INTERVAL:
            self._last_end_offsets = now
            try:
                fetched = consumer.end_offsets(assigned)
                ends = {tp.partition: int(o) for tp, o in fetched.items()}
            except KafkaError as error:
                self.status.last_error = f"Kafka unreachable: {error}"
        if ends:
            self.status.end_offsets = {str(p): o for p, o in sorted(ends.items())}
            lag = sum(max(0, o - self._positions.get(p, o)) for p, o in ends.items())
            self.status.lag = lag
            self.metrics.lag.set(lag)
            stamp = self.status.last_record_timestamp_ms
            if lag == 0:
                self.status.freshness_seconds = 0.0
            elif stamp is not None:
                self.status.freshness_seconds = max(0.0, time.time() - stamp / 1000)
            if self.status.freshness_seconds is not None:
                self.metrics.freshness.set(self.status.freshness_seconds)

    def _publish(self, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last_status < STATUS_INTERVAL:
            return
        mark_time, mark_records = self._rate_mark
        if now > mark_time:
            rate = (self.status.records - mark_records) / (now - mark_time)
            self.status.records_per_second = round(rate, 1)
            self.metrics.records_per_second.set(rate)
        self._rate_mark = (now, self.status.records)
        self._last_status = now
        self._refresh_lag()
        self.status.updated_at = time.time()
        if self.status_path is not None:
            try:
                write_status(self.status_path, self.status)
            except OSError as error:
                log.warning("cannot write status file %s: %s", self.status_path, error)

    def _set_state(self, state: Any) -> None:
        self.status.state = state
        self._publish(force=True)

    def _retry_later(self, error: Exception) -> None:
        delay = self._backoff.next_delay()
        message = f"{type(error).__name__}: {error}"
        self.status.last_error = message
        self.metrics.errors.inc()
        self.metrics.last_error.set_to_current_time()
        log.warning("%s; retrying in %.1fs", message, delay)
        self._set_state("backoff")
        end = time.monotonic() + delay
        while not self._stopping and time.monotonic() < end:
            self._sleep(min(0.2, max(0.0, end - time.monotonic())))
        if not self._stopping:
            self.status.state = "running"
