"""One store read by several local consumer processes: their statuses as one, and when they hold
the current content together."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from provisioner.runtime.progress import group_holds_current
from provisioner.runtime.status import ConsumerStatus, RebuildProgress, merge_statuses


def _status(pid: int, positions: dict[int, int], ends: dict[int, int], **extra: Any) -> ConsumerStatus:
    values: dict[str, Any] = {"state": "running", "records": 10, "ops": {"upsert": 7, "skip": 3}, "dead_letters": 1,
                              "batches": 2, "records_per_second": 5.0, "freshness_seconds": 0.5, **extra}
    return ConsumerStatus(product="p", namespace="default", store="s", kind="redis", pid=pid, positions=positions,
                          end_offsets=ends, **values)


def test_statuses_merge_into_the_furthest_position_of_every_partition() -> None:
    merged = merge_statuses([
        _status(1, {0: 10, 1: 4}, {0: 10, 1: 20}),  # partition 1 moved away at 4
        _status(2, {1: 18, 2: 5}, {1: 20, 2: 5}, freshness_seconds=2.0, last_error="boom"),
        None,  # a replica that has not written yet
    ])
    assert merged is not None
    assert merged.positions == {0: 10, 1: 18, 2: 5}
    assert merged.lag == 2
    assert (merged.records, merged.dead_letters, merged.records_per_second) == (20, 2, 10.0)
    assert merged.ops == {"upsert": 14, "skip": 6}
    assert (merged.last_error, merged.freshness_seconds, merged.state) == ("boom", 2.0, "running")


def test_one_halted_process_halts_the_store_and_one_status_stays_as_it_is() -> None:
    merged = merge_statuses([_status(1, {}, {}), _status(2, {}, {}, state="halted")])
    assert merged is not None and merged.state == "halted"
    single = _status(1, {0: 1}, {0: 3})
    assert merge_statuses([single]) == single
    assert merge_statuses([None, None]) is None


def test_the_group_holds_the_content_once_every_partition_is_read_by_a_current_process() -> None:
    targets = {0: 10, 1: 20}
    a, b = _status(1, {0: 10}, {}), _status(2, {1: 20}, {})
    assert group_holds_current([a, b], [1, 2], targets)
    assert not group_holds_current([a, _status(2, {1: 19}, {})], [1, 2], targets)  # one partition short
    assert not group_holds_current([a, b], [1, 3], targets)  # b's status is a former process's
    assert not group_holds_current([a, None], [1, 2], targets)  # one has not reported
    assert not group_holds_current([a, replace(b, rebuild=RebuildProgress("v2"))], [1, 2], targets)
    assert group_holds_current([replace(a, state="frozen"), replace(b, state="frozen")], [1, 2], {0: 99, 1: 99})
