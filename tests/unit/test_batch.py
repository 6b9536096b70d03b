"""The pure bookkeeping of a batch: one transform pass, the errors.mode stop cuts, end positions."""

from __future__ import annotations

from collections.abc import Callable

from provisioner.pipeline.ops import SKIP, Change, DeadLetter, Delete, Op, Record, RecordLike, Upsert
from provisioner.runtime.batch import Batch, cut_at_rejection, end_positions, join_rejections, transform
from provisioner.stores.base import Rejected

# value -> op, so a test reads as a list of what the pipeline says of each record
OPS: dict[bytes, Op] = {
    b"up": Upsert(("k",), {"v": 1}),
    b"del": Delete(("k",)),
    b"skip": SKIP,
    b"bad": DeadLetter("fields", "field 'v' failed"),
}


def records(*spec: tuple[int, int, str]) -> list[Record]:
    return [Record("t", p, o, 1000 + o, b"k", value.encode()) for p, o, value in spec]


def counting_process() -> tuple[Callable[[RecordLike], Op], list[int]]:
    calls: list[int] = []

    def process(record: RecordLike) -> Op:
        calls.append(record.offset)
        assert record.value is not None
        return OPS[record.value]

    return process, calls


def test_transform_sorts_ops_in_one_pass() -> None:
    batch_records = records((0, 0, "up"), (1, 0, "skip"), (0, 1, "bad"), (1, 1, "del"), (0, 2, "up"))
    process, calls = counting_process()
    batch = transform(process, batch_records, stop=False)
    assert calls == [0, 0, 1, 1, 2]
    assert [(c.partition, c.offset, c.timestamp_ms, c.op.kind) for c in batch.changes] == [
        (0, 0, 1000, "upsert"), (1, 1, 1001, "delete"), (0, 2, 1002, "upsert")]
    assert (batch.upserts, batch.deletes, batch.skips, batch.halt) == (2, 1, 1, None)
    assert [(r.offset, d.stage) for r, d in batch.dead] == [(1, "fields")]
    assert batch.records is batch_records


def test_stop_ends_the_pass_at_the_first_dead_letter() -> None:
    batch_records = records((0, 0, "up"), (1, 0, "skip"), (0, 1, "bad"), (1, 1, "del"), (0, 2, "bad"))
    process, calls = counting_process()
    batch = transform(process, batch_records, stop=True)
    assert calls == [0, 0, 1]  # nothing after the failing record is transformed
    assert list(batch.records) == batch_records[:2]
    assert (len(batch.changes), batch.upserts, batch.skips, batch.dead) == (1, 1, 1, [])
    assert batch.halt == "fields error at t[0]@1: field 'v' failed (errors.mode: stop)"


def test_a_store_refusal_cuts_the_computed_changes_without_transforming_again() -> None:
    batch_records = records((0, 0, "up"), (0, 1, "skip"), (1, 0, "del"), (0, 2, "up"), (1, 1, "up"), (0, 3, "up"))
    process, calls = counting_process()
    batch = transform(process, batch_records, stop=True)
    refused = [Rejected(batch.changes[3], DeadLetter("store", "no NaN")),
               Rejected(batch.changes[2], DeadLetter("store", "lone surrogate"))]
    cut = cut_at_rejection(batch, refused)
    assert calls == [0, 1, 0, 2, 1, 3]  # the one pass, before the cut
    assert list(cut.records) == batch_records[:3]  # up to the first refused change (p0@2)
    assert cut.changes == batch.changes[:2]
    assert (cut.upserts, cut.deletes, cut.skips, cut.dead) == (1, 1, 1, [])
    assert cut.halt == "store error at t[0]@2: lone surrogate (errors.mode: stop)"
    assert cut_at_rejection(batch, []) is batch


def test_a_store_refusal_before_a_pipeline_error_wins() -> None:
    batch_records = records((0, 0, "up"), (0, 1, "up"), (0, 2, "bad"))
    batch = transform(counting_process()[0], batch_records, stop=True)
    assert batch.halt is not None and "@2" in batch.halt
    cut = cut_at_rejection(batch, [Rejected(batch.changes[1], DeadLetter("store", "nope"))])
    assert list(cut.records) == batch_records[:1] and cut.halt is not None and "store error at t[0]@1" in cut.halt


def test_refusals_join_the_dead_letters_of_their_records() -> None:
    batch_records = records((0, 0, "up"), (0, 1, "bad"), (1, 0, "up"))
    batch = transform(counting_process()[0], batch_records, stop=False)
    kept = batch.changes[0]
    join_rejections(batch, [Rejected(batch.changes[1], DeadLetter("store", "nope"))])
    assert [(r.partition, r.offset, d.stage) for r, d in batch.dead] == [(0, 1, "fields"), (1, 0, "store")]
    # The refused change is a dead letter now, no longer an upsert: each record counts once.
    assert batch.changes == [kept] and (batch.upserts, batch.deletes) == (1, 0) and batch.halt is None


def test_end_positions_are_each_partitions_last_offset_plus_one() -> None:
    batch_records = records((0, 5, "up"), (1, 9, "up"), (0, 6, "up"), (2, 0, "up"), (1, 10, "up"))
    assert end_positions(batch_records, 3) == {1: 11, 2: 1, 0: 7}
    assert end_positions(batch_records, 5) == {1: 11, 2: 1, 0: 7}  # more owned than present: full scan
    assert end_positions([], 3) == {}


def test_batch_counts_deletes() -> None:
    change = Change(0, 0, 0, Delete(("k",)))
    assert Batch([], [change, change], [], 0, 0).deletes == 2
