"""The store consumer driven in-process (a thread, `stop()` to end it) against the real broker and a
real store: exact contents, positions, counters and metrics, dead-letter provenance, and the
errors.mode stop halt path, with every record run through the pipeline exactly once."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from provisioner.pipeline.ops import Op, RecordLike
from provisioner.pipeline.process import Pipeline
from provisioner.runtime.consumer import EXIT_HALTED, EXIT_STOPPED, StoreConsumer
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.stores.registry import open_store
from tests.integration import harness as h
from tests.integration.test_consumer_stores import STORES, assert_contents, reset_store, store_url, unique_name

pytestmark = pytest.mark.integration


class CountingPipeline:
    """The product's pipeline, counting how often each record (partition, offset) went through it."""

    def __init__(self, product: DataProduct) -> None:
        self._pipeline = Pipeline(product)
        self.seen: Counter[tuple[int, int]] = Counter()

    def process(self, record: RecordLike) -> Op:
        self.seen[(record.partition, record.offset)] += 1
        return self._pipeline.process(record)


class InProcess:
    """A StoreConsumer running `run()` on a thread."""

    def __init__(self, product: DataProduct, store_spec: StoreSpec, bootstrap: str, url: str, kafka_client: str) -> None:
        self.consumer = StoreConsumer(product, store_spec, open_store(product, store_spec, url), bootstrap,
                                      kafka_client=kafka_client)
        self.pipeline = CountingPipeline(product)
        self.consumer.pipeline = self.pipeline  # type: ignore[assignment]
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, name="store-consumer", daemon=True)

    def _run(self) -> None:
        self.code = self.consumer.run()

    def __enter__(self) -> InProcess:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.consumer.stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the consumer did not stop"

    def metric(self, name: str, **labels: str) -> float:
        consumer = self.consumer
        value = consumer.metrics.registry.get_sample_value(
            name, {"product": consumer.product.name, "store": consumer.store_spec.name, **labels})
        return value or 0.0


def prepare(kind: str, topic: str, tmp_path: Path, urls: tuple[Any, Any], **spec: Any) -> tuple[DataProduct, StoreSpec, str]:
    path = h.order_spec(tmp_path, name=unique_name(topic), topic=topic, stores=[STORES[kind]], **spec)
    product = h.load_product(path)
    store_spec = product.spec.stores[0]
    url = store_url(kind, *urls)
    reset_store(product, store_spec, url)
    return product, store_spec, url


@pytest.mark.parametrize("kind", ["redis-hash", "postgres-upsert"])
def test_in_process_contents_positions_counters_and_dead_letters(
    kind: str, kafka_bootstrap: str, redis_server: Any, postgres_server: Any, topic: str, tmp_path: Path,
    kafka_client: str,
) -> None:
    product, store_spec, url = prepare(kind, topic, tmp_path, (redis_server, postgres_server), batch_size=400)
    h.create_topic(kafka_bootstrap, topic, partitions=3)
    events = h.order_events(2500, seed=21, keys=300)
    for i, event in enumerate(h.poison_events().values()):
        events.insert(250 * (i + 1), event)
    h.produce(kafka_bootstrap, topic, events)
    records = h.read_topic(kafka_bootstrap, topic)
    expected = h.expected_for(product, store_spec, records)
    ends = h.end_offsets(kafka_bootstrap, topic)

    with InProcess(product, store_spec, kafka_bootstrap, url, kafka_client) as running:
        status = running.consumer.status
        h.wait_for(lambda: (status.records >= len(records) and status.lag == 0) or running.code is not None,
                   120, "the consumer to read every record")
        assert running.code is None, f"the consumer ended early with {running.code}: {status.last_error}"
        assert h.store_positions(product, store_spec, url) == ends
        assert_contents(kind, product, store_spec, url, expected)

        assert status.state == "running"
        assert status.records == len(records)
        assert status.ops == {"upsert": expected.ops["upsert"], "delete": expected.ops["delete"],
                              "skip": expected.ops["skip"], "deadLetter": len(expected.dead)}
        assert status.dead_letters == len(expected.dead) == 7
        assert status.positions == dict(sorted(ends.items()))
        assert status.end_offsets == status.positions
        assert status.freshness_seconds == 0.0
        assert running.metric("provisioner_records_total") == len(records)
        for op_kind, count in status.ops.items():
            assert running.metric("provisioner_ops_total", kind=op_kind) == count
        for stage in h.poison_events():
            assert running.metric("provisioner_dead_letters_total", stage=stage) == 1
        assert running.metric("provisioner_lag_records") == 0
        # No conflict, no retry: every record went through the pipeline exactly once.
        assert running.pipeline.seen == Counter({(r.partition, r.offset): 1 for r in records})

        dead = h.read_dead_letters(kafka_bootstrap, product.dead_letter_topic, len(expected.dead))
        assert len(dead) == len(expected.dead)
        by_source = {(int(dict(r.headers)["provisioner.source.partition"]),
                      int(dict(r.headers)["provisioner.source.offset"])): dict(r.headers) for r in dead}
        for original, dead_letter in expected.dead:
            headers = by_source[(original.partition, original.offset)]
            assert headers["provisioner.error.stage"].decode() == dead_letter.stage
            assert headers["provisioner.product"].decode() == f"itest/{product.name}"
            assert headers["provisioner.store"].decode() == store_spec.name
    assert running.code == EXIT_STOPPED
    assert running.consumer.status.state == "stopped"


@pytest.mark.parametrize(("kind", "stage"), [("redis-hash", "store"), ("postgres-upsert", "fields"),
                                             ("postgres-append", "store")])
def test_in_process_errors_mode_stop_applies_everything_before_the_first_error_and_nothing_after(
    kind: str, stage: str, kafka_bootstrap: str, redis_server: Any, postgres_server: Any, topic: str,
    tmp_path: Path, kafka_client: str,
) -> None:
    product, store_spec, url = prepare(kind, topic, tmp_path, (redis_server, postgres_server),
                                       errors={"mode": "stop"}, batch_size=300)
    h.create_topic(kafka_bootstrap, topic, partitions=1)
    events = h.order_events(1000, seed=13, keys=100)
    events.insert(700, h.poison_events()[stage])
    h.produce(kafka_bootstrap, topic, events)
    records = h.read_topic(kafka_bootstrap, topic)
    before = records[:700]
    expected = h.expected_for(product, store_spec, before)
    assert not expected.dead

    with InProcess(product, store_spec, kafka_bootstrap, url, kafka_client) as running:
        running.thread.join(timeout=120)
        assert not running.thread.is_alive(), "the consumer did not halt"
    status = running.consumer.status
    assert running.code == EXIT_HALTED
    assert status.state == "halted"
    assert status.last_error is not None
    assert status.last_error.startswith(f"{stage} error at {topic}[0]@700: ")
    assert status.last_error.endswith("(errors.mode: stop)")
    assert h.store_positions(product, store_spec, url) == {0: 700}
    assert_contents(kind, product, store_spec, url, expected)
    assert status.records == 700
    assert status.positions == {0: 700}
    assert status.dead_letters == 0
    assert status.ops == {"upsert": expected.ops["upsert"], "delete": expected.ops["delete"],
                          "skip": expected.ops["skip"], "deadLetter": 0}
    seen = running.pipeline.seen
    # The halting batch was transformed once, not again after the cut; a pipeline error ends the
    # pass at the failing record, a store refusal only after the pass.
    assert set(seen.values()) == {1}
    assert max(offset for _, offset in seen) >= 700
    if stage != "store":
        assert max(offset for _, offset in seen) == 700
    assert h.end_offsets(kafka_bootstrap, product.dead_letter_topic, timeout=2) == {}


def test_in_process_batches_of_one_commit_kafka_offsets_now_and_then_and_all_of_them_once_quiet(
    kafka_bootstrap: str, redis_server: Any, postgres_server: Any, topic: str, tmp_path: Path, kafka_client: str,
) -> None:
    # One commit per batch of one record floods the group coordinator (a rebalance then waits behind
    # the queue); the committed offsets are advisory, for lag tools, so they follow at intervals and
    # whenever the topic goes quiet.
    product, store_spec, url = prepare("redis-hash", topic, tmp_path, (redis_server, postgres_server), batch_size=1)
    h.create_topic(kafka_bootstrap, topic, partitions=3)
    h.produce(kafka_bootstrap, topic, h.order_events(1500, seed=5, keys=200))
    ends = h.end_offsets(kafka_bootstrap, topic)
    commits: list[dict[int, int]] = []
    running = InProcess(product, store_spec, kafka_bootstrap, url, kafka_client)
    consumer = running.consumer
    opened = consumer._new_consumer

    def counting_consumer() -> Any:
        stream = opened()
        commit = stream.commit

        def counted(positions: Any) -> None:
            commits.append(dict(positions))
            commit(positions)
        stream.commit = counted  # type: ignore[method-assign]
        return stream
    consumer._new_consumer = counting_consumer  # type: ignore[method-assign]
    with running:
        group = product.consumer_group(store_spec)
        h.wait_for(lambda: (consumer.status.lag == 0 and consumer.status.records == 1500) or running.code is not None,
                   120, "the consumer to read every record")
        h.wait_for(lambda: h.committed_offsets(kafka_bootstrap, group) == ends, 30, "every position committed to Kafka")
        assert consumer.status.batches >= 1500  # batches of one record
        assert 1 <= len(commits) < consumer.status.batches // 5, (len(commits), consumer.status.batches)
    assert h.store_positions(product, store_spec, url) == ends
