"""The store consumer: Kafka -> pipeline -> store, effectively once (spec.md, "Stores").

One consumer per (product, store), run as `provisioner consume` (locally under `up`'s supervisor, in
a cluster as a Deployment). Each batch goes through five steps, in this order:

1. fill      read records (batchSize / batchLatency), in partition-offset order;
2. transform run the pure pipeline and the store's pure conversion (`runtime/batch.py` keeps the
             books, and cuts the batch at the first error under errors.mode stop);
3. dead letters  send them and wait until Kafka acknowledged every one;
4. apply     write the changes and the new positions in one atomic store write, fenced on the
             positions the batch started from;
5. commit    commit the same offsets to Kafka (only for lag tools) once the write landed.

Positions come from the store, never from Kafka: on every (re)assignment the consumer reads them
back and seeks. A rebalance or a failed fence discards the batch in hand; nothing is applied twice
because the store only accepts a batch that starts where the stored position is.

The store write runs on a writer thread while the loop fills and transforms the next batch, so the
store's round trips overlap Kafka's and the pipeline's work. At most one write is in flight, and the
next batch starts exactly where it ends: if it fails, the fence refuses the next one too, so nothing
is applied out of order. Whether a failure is worth retrying is `stream.kafka.is_transient`'s call.
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any

from provisioner.errors import UnavailableError
from provisioner.pipeline.ops import RecordLike
from provisioner.pipeline.process import Pipeline
from provisioner.runtime.backoff import Backoff
from provisioner.runtime.batch import Batch, cut_at_rejection, end_positions, join_rejections, transform
from provisioner.runtime.metrics import ConsumerMetrics
from provisioner.runtime.progress import freshness_now, lag
from provisioner.runtime.status import ConsumerStatus, write_status
from provisioner.runtime.until import UntilBound
from provisioner.spec.durations import parse_duration
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.spec.timestamps import to_epoch_ms
from provisioner.stores.base import PositionConflict, Stale, Store, StoreSchemaError
from provisioner.stream.client import DEFAULT_KAFKA_CLIENT, Assignment, BrokerTimeout, StreamConsumer, open_consumer
from provisioner.stream.deadletters import DeadLetterProducer
from provisioner.stream.kafka import is_transient
from provisioner.stream.registry import registry_for
from provisioner.stream.settings import KafkaTarget

log = logging.getLogger(__name__)
_timestamp = attrgetter("timestamp")
_partition = attrgetter("partition")

EXIT_STOPPED = 0
EXIT_HALTED = 2
EXIT_SCHEMA = 3
STATUS_INTERVAL = 1.0
END_OFFSETS_INTERVAL = 5.0
# Idle this long without hearing from Kafka, the consumer checks that the broker still answers.
KAFKA_PROBE_INTERVAL = 3.0
KAFKA_PROBE_TIMEOUT = 3.0
# Kafka offsets are committed for lag tools at most this often (and whenever the topic goes quiet):
# one commit per batch of one record floods the group coordinator, and a rebalance queued behind
# tens of thousands of commits stalls the whole group.
COMMIT_INTERVAL = 1.0
# Allocations between two young collections (Python's default: 700).
GC_THRESHOLD_0 = 50_000
SWITCH_INTERVAL_S = 0.0005  # sys.setswitchinterval: see _settle_heap


def _settle_heap() -> None:
    """Once started: move everything alive (modules, compiled expressions, clients) out of the
    cyclic collector's sight, collect the young generations less often, and let the writer thread
    take the GIL back sooner.

    A batch allocates tens of thousands of objects that all die with it, nearly none in cycles; at
    the default thresholds the collector ran every 700 allocations and a dozen full collections per
    200,000 records re-scanned the whole heap of start-up objects (a fifth of the process's CPU).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD_0, 20, 20)
    # The store writer thread hands the GIL back and forth with the loop several times per batch
    # (COPY chunks, each server round trip). The loop never blocks while it has records, so at the
    # default 5 ms interval every hand-back waited up to 5 ms: Postgres batches spent more time
    # waiting for the GIL than for the server (R2 102k -> 130k records/s at 0.5 ms).
    sys.setswitchinterval(SWITCH_INTERVAL_S)


class KafkaUnreachable(UnavailableError):
    """No broker answered a bounded request: the consumer backs off and says so in its status."""


class _Halt(Exception):
    """errors.mode stop met an error: the consumer stops after committing what preceded it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _InFlight:
    """The store write on the writer thread: its future (seconds taken, stale ops), its batch and end
    positions."""

    future: Future[tuple[float, Stale | None]]
    batch: Batch
    end: dict[int, int]


class StoreConsumer:
    """Hydrates one store of one data product from the source topic until asked to stop."""

    def __init__(
        self,
        product: DataProduct,
        store_spec: StoreSpec,
        store: Store,
        bootstrap: KafkaTarget,
        *,
        status_path: Path | None = None,
        metrics: ConsumerMetrics | None = None,
        store_url_masked: str | None = None,
        pid: int = 0,
        consumer_config: dict[str, Any] | None = None,
        dead_letter_version: str | None = None,
        kafka_client: str = DEFAULT_KAFKA_CLIENT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.product = product
        self.store_spec = store_spec
        self.store = store
        self.bootstrap = bootstrap
        source = product.spec.source
        # avro/protobuf/jsonschema records find their schemas here (fetched once per id, cached).
        self.pipeline = Pipeline(product, registry_for((source.format, source.key_format), bootstrap))
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
        self.kafka_client = kafka_client  # `stream.client`: confluent or kafka-python
        self._dead_letter_version = dead_letter_version  # a rebuild marks its dead letters with it
        # Set when `source.until` bounds the stream: which partitions reached the instant.
        self.until_bound: UntilBound | None = None
        self._sleep = sleep
        self._stopping = False
        self._consumer: StreamConsumer | None = None
        self._dead_letters: DeadLetterProducer | None = None
        # Set by the client's rebalance callbacks, and by the loop whenever the batch in hand may
        # not be applied: the positions are read back from the store before the next batch.
        self._assignment = Assignment()
        self._positions: dict[int, int] = {}
        # Positions known to be in the store (`_positions` runs ahead by the write in flight).
        self._applied: dict[int, int] = {}
        self._to_commit: dict[int, int] = {}  # applied positions not yet committed to Kafka
        self._last_commit = 0.0
        self._backoff = Backoff()
        self._last_status = 0.0
        self._last_end_offsets = 0.0
        self._rate_mark = (time.monotonic(), 0)
        self._kafka_seen = time.monotonic()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._in_flight: _InFlight | None = None

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
            _settle_heap()
            self._set_state("running")
            while not self._stopping:
                self._step()
            try:
                self._settle()
                self._flush_commit()
            except Exception as error:
                if not is_transient(error):
                    raise
                log.warning("the last batch was not applied (it will be read again): %s", error)
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
                        self.bootstrap, self.product.dead_letter_topic, self._client_id("dlq"),
                        product=f"{self.product.metadata.namespace}/{self.product.name}",
                        store=self.store_spec.name, version=self._dead_letter_version, client=self.kafka_client,
                    )
                if self._consumer is None:
                    self._consumer = self._new_consumer()
                self._backoff.reset()
                self.metrics.beat()
                return
            except Exception as error:
                if not is_transient(error):
                    raise
                self._retry_later(error)
            self.metrics.beat()

    def _new_consumer(self) -> StreamConsumer:
        consumer = open_consumer(
            self.kafka_client, bootstrap=self.bootstrap, topic=self.topic,
            group=self.product.consumer_group(self.store_spec), client_id=self._client_id("consumer"),
            max_records=self.batch_size, assignment=self._assignment, settings=self._consumer_config,
        )
        until = self.product.spec.source.until
        if until is None:
            return consumer
        self.until_bound = UntilBound(consumer, to_epoch_ms(until))
        return self.until_bound

    def _client_id(self, role: str) -> str:
        return f"provisioner-{self.product.name}-{self.store_spec.name}-{role}"

    def _close(self) -> None:
        self._writer.shutdown(wait=True)
        if self._consumer is not None:
            try:
                self._consumer.close()
            except Exception:
                log.debug("closing the Kafka consumer failed", exc_info=True)
        if self._dead_letters is not None:
            try:
                self._dead_letters.close()
            except Exception:
                log.debug("closing the dead-letter producer failed", exc_info=True)
        try:
            self.store.close()
        except Exception:
            log.debug("closing the store failed", exc_info=True)

    # -- the loop ---------------------------------------------------------------------------

    def _step(self) -> None:
        try:
            records = self._fill()
            if records:
                self._handle(records)
            else:
                self._settle()
                self._flush_commit()
                self._idle()
            self._backoff.reset()
        except PositionConflict as conflict:
            self.status.conflicts += 1
            self.metrics.conflicts.inc()
            log.warning("discarding the batch, another consumer moved the positions: %s", conflict)
            self._assignment.changed = True
        except Exception as error:
            if not is_transient(error):
                raise
            self._assignment.changed = True
            self._retry_later(error)
        self.metrics.beat()

    def _handle(self, records: Sequence[RecordLike]) -> None:
        """One batch, step by step: transform, send its dead letters, apply it (the commit follows
        when the write lands), and halt if errors.mode stop met an error."""
        batch, prepared = self._transform(records)
        self._send_dead_letters(batch)
        self._apply(batch, prepared)
        if batch.halt is not None:
            # Everything before the first error is applied and committed; nothing after it.
            self._settle()
            self._flush_commit()
            raise _Halt(batch.halt)

    # -- 1. fill -----------------------------------------------------------------------------

    def _fill(self) -> list[RecordLike]:
        """Records in partition-offset order, up to batchSize, waiting at most batchLatency.

        Returns nothing when the assignment changed: the records in hand may belong to partitions
        now owned by someone else, and the positions must be read back from the store first.
        """
        consumer = self._consumer
        assert consumer is not None
        if self._assignment.changed:
            self._reposition()
        records: list[RecordLike] = []
        # The next offset each partition's records must start from: a record before it was
        # already applied (a fetch issued before a seek, or an offset reset behind our back).
        expected = dict(self._positions)
        deadline: float | None = None
        while len(records) < self.batch_size and not self._stopping:
            if deadline is None:
                timeout = STATUS_INTERVAL
            else:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
            polled = consumer.poll(timeout, self.batch_size - len(records))
            if self._assignment.changed:
                self._reposition()
                return []
            if polled and not self._take(polled, records, expected):
                return []
            if records:
                self._kafka_seen = time.monotonic()
                if deadline is None:
                    deadline = self._kafka_seen + self.batch_latency
            else:
                break
        return records

    def _take(self, polled: Sequence[RecordLike], records: list[RecordLike], expected: dict[int, int]) -> bool:
        """Append the polled records (each partition's in offset order) that continue where the
        batch is; False (and nothing appended) for records of a partition never positioned.

        The common case costs a few C-level passes: each partition's first and last record are
        found through dicts, and only a partition whose first record is behind is filtered."""
        partitions = list(map(_partition, polled))
        count = len(partitions)
        first = dict(zip(reversed(partitions), range(count - 1, -1, -1), strict=True))
        behind = False
        for partition, index in first.items():
            next_offset = expected.get(partition)
            if next_offset is None:
                # Records of a partition we never positioned: only a missed rebalance does that.
                self._assignment.changed = True
                return False
            behind = behind or polled[index].offset < next_offset
        if behind:
            # A fetch issued before a seek, or an offset reset behind our back: already applied.
            polled = [r for r in polled if r.offset >= expected[r.partition]]
            partitions = list(map(_partition, polled))
            count = len(partitions)
        last = dict(zip(partitions, range(count), strict=True))
        for partition, index in last.items():
            expected[partition] = polled[index].offset + 1
        records.extend(polled)
        return True

    def _reposition(self) -> None:
        """After a (re)assignment or a failed fence: read positions from the store and seek."""
        consumer = self._consumer
        assert consumer is not None
        # A write still in flight must land (or fail) before the store's positions mean anything.
        self._settle()
        self._assignment.changed = False
        self._positions = {}
        assigned = consumer.assignment()
        if not assigned:
            log.info("no partition assigned")
            return
        stored = self.store.read_positions()
        missing = [p for p in assigned if p not in stored]
        if missing:
            initial = consumer.start_offsets(missing, self.product.spec.source.start_from)
            # Persist where a new store starts, so `latest` or a timestamp means the same after a crash.
            self.store.apply([], dict.fromkeys(initial), initial)
            stored = {**stored, **initial}
        positions = {p: stored[p] for p in assigned}
        consumer.seek(positions)
        self._positions = positions
        self._applied = dict(self._positions)
        # The store's positions are the truth: lag tools see them even if no record follows.
        self._to_commit = dict(positions)
        self.status.positions = dict(sorted(stored.items()))
        log.info("assigned partitions %s at %s", assigned, self._positions)

    # -- 2. transform ------------------------------------------------------------------------

    def _transform(self, records: Sequence[RecordLike]) -> tuple[Batch, list[Any]]:
        """The pipeline's ops and the store's prepared writes (pure, no I/O).

        Values the store refuses become stage-`store` dead letters; under errors.mode stop, the
        first error of either kind cuts the batch instead.
        """
        stop = self.error_mode == "stop"
        batch = transform(self.pipeline.process, records, stop=stop)
        prepared, rejected = self.store.prepare(batch.changes)
        if rejected:
            if stop:
                batch = cut_at_rejection(batch, rejected)
                # Prepared writes may merge changes of one key, so they cannot be cut: the kept
                # changes (all accepted) are prepared again. Only a halting batch gets here.
                prepared, _ = self.store.prepare(batch.changes)
            else:
                join_rejections(batch, rejected)
        return batch, prepared

    # -- 3. dead letters ---------------------------------------------------------------------

    def _send_dead_letters(self, batch: Batch) -> None:
        """Send the batch's dead letters (errors.mode deadLetter) and wait for every acknowledgement,
        before the write that passes them: a dead letter is never lost. Under `skip` they are only
        counted and logged."""
        dead = batch.dead
        if not dead:
            return
        dead.sort(key=lambda item: (item[0].partition, item[0].offset))
        if self._dead_letters is not None:
            self._dead_letters.send_all(dead)
        for record, dl in dead:
            self.metrics.dead_letter(dl.stage)
            log.warning("dead letter %s[%d]@%d %s: %s", record.topic, record.partition, record.offset,
                        dl.stage, dl.message)

    # -- 4. apply ----------------------------------------------------------------------------

    def _apply(self, batch: Batch, prepared: Sequence[Any]) -> None:
        """Queue the fenced store write of the batch and its end positions on the writer thread."""
        end = end_positions(batch.records, len(self._positions))
        if not end:
            self._account(batch)  # a halt at the batch's first record: nothing to write
            return
        start: dict[int, int | None] = {p: self._positions.get(p) for p in end}
        # The previous write must have succeeded before this one is queued; if it failed, its
        # error discards this batch too and the loop re-reads the positions.
        self._settle()
        future = self._writer.submit(self._write, prepared, start, end)
        self._positions.update(end)
        self._in_flight = _InFlight(future, batch, end)

    def _write(self, prepared: Sequence[Any], start: dict[int, int | None], end: dict[int, int]
               ) -> tuple[float, Stale | None]:
        """On the writer thread: one atomic, fenced store write; returns how long it took and what
        it skipped as stale (`spec.order`)."""
        started = time.perf_counter()
        stale = self.store.apply(prepared, start, end)
        return time.perf_counter() - started, stale

    def _settle(self) -> None:
        """Wait for the write in flight; once it landed, commit and account for it. Raises its
        error (a position conflict, a store down) instead, and then nothing is committed."""
        pending = self._in_flight
        if pending is None:
            return
        self._in_flight = None
        seconds, stale = pending.future.result()
        self.metrics.batch_seconds.observe(seconds)
        self._applied.update(pending.end)
        self._commit(pending.end)
        self._account(pending.batch, stale)

    # -- 5. commit ---------------------------------------------------------------------------

    def _commit(self, end: dict[int, int]) -> None:
        """Commit the applied positions to Kafka too, for lag tools (the consumer never reads them),
        at most every COMMIT_INTERVAL."""
        self._to_commit.update(end)
        if time.monotonic() - self._last_commit >= COMMIT_INTERVAL:
            self._flush_commit()

    def _flush_commit(self) -> None:
        consumer = self._consumer
        if consumer is None or not self._to_commit:
            return
        # Only partitions still assigned: a revoked one's offsets are its new owner's to commit.
        assigned = set(consumer.assignment())
        end = {p: o for p, o in self._to_commit.items() if p in assigned}
        self._to_commit = {}
        self._last_commit = time.monotonic()
        if not end:
            return
        try:
            consumer.commit(end)
        except Exception as error:
            if not is_transient(error):
                raise
            log.debug("committing Kafka offsets failed (positions are safe in the store): %s", error)

    # -- status ------------------------------------------------------------------------------

    def _account(self, batch: Batch, stale: Stale | None = None) -> None:
        status = self.status
        records = batch.records
        counts = {"upsert": batch.upserts, "delete": batch.deletes, "skip": batch.skips,
                  "deadLetter": len(batch.dead)}
        if stale is not None:
            # Skips with reason stale: ops older than their key's last applied one (`spec.order`).
            skipped = stale.upserts + stale.deletes
            counts["upsert"] -= stale.upserts
            counts["delete"] -= stale.deletes
            counts["skip"] += skipped
            status.stale += skipped
            self.metrics.stale(skipped)
        for kind, count in counts.items():
            status.ops[kind] += count
            self.metrics.op(kind, count)
        status.records += len(records)
        status.dead_letters += len(batch.dead)
        status.batches += 1
        self.metrics.records.inc(len(records))
        if records:
            status.last_record_timestamp_ms = max(map(_timestamp, records))
        status.positions = dict(sorted(self._applied.items()))
        status.last_error = None
        self._publish(force=False)

    def _idle(self) -> None:
        """Nothing came: make sure that is because the topic is quiet, not because Kafka is gone.

        Neither client's poll raises for an unreachable broker, it just returns nothing; a bounded
        ListOffsets request tells the two apart, so the status can say what is wrong.
        """
        consumer = self._consumer
        assert consumer is not None
        now = time.monotonic()
        if now - self._kafka_seen >= KAFKA_PROBE_INTERVAL:
            try:
                consumer.end_offsets(consumer.assignment() or None, KAFKA_PROBE_TIMEOUT)
            except BrokerTimeout as error:
                raise KafkaUnreachable(f"Kafka at {self.bootstrap} does not answer: {error}") from None
            self._kafka_seen = time.monotonic()
            if self.status.last_error is not None and self.status.last_error.startswith(KafkaUnreachable.__name__):
                self.status.last_error = None
        self._publish(force=False)

    def _refresh_lag(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        assigned = consumer.assignment()
        ends = consumer.high_watermarks()
        now = time.monotonic()
        if len(ends) < len(assigned) and now - self._last_end_offsets > END_OFFSETS_INTERVAL:
            self._last_end_offsets = now
            try:
                ends = consumer.end_offsets(assigned, KAFKA_PROBE_TIMEOUT)
            except Exception as error:
                if not is_transient(error):
                    raise
                log.debug("end offsets unknown: %s", error)
        if ends:
            self.status.end_offsets = dict(sorted(ends.items()))
            behind = lag(self._positions, ends)
            self.status.lag = behind
            self.metrics.lag.set(behind)
            freshness = freshness_now(behind, None, self.status.last_record_timestamp_ms, time.time())
            if freshness is not None:
                self.status.freshness_seconds = freshness
                self.metrics.freshness.set(freshness)

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
