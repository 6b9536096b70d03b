"""Caught-up, lag, progress and freshness computations of the local runtime."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from provisioner.runtime.progress import (
    build_progress,
    caught_up,
    freshness_now,
    freshness_verdict,
    group_holds_current,
    lag,
    progress,
    store_view,
)
from provisioner.runtime.status import ConsumerStatus, RebuildProgress, read_status, write_status


def status_of(**values: Any) -> ConsumerStatus:
    return ConsumerStatus(product="p", namespace="ns", store="s", kind="redis", pid=42, **values)


def test_caught_up_needs_every_partition_at_its_target() -> None:
    assert caught_up({0: 10, 1: 5}, {0: 10, 1: 5})
    assert caught_up({0: 12, 1: 7}, {0: 10, 1: 5})
    assert not caught_up({0: 10, 1: 4}, {0: 10, 1: 5})


def test_a_partition_without_a_position_is_behind_unless_empty() -> None:
    assert not caught_up({0: 10}, {0: 10, 1: 3})
    assert caught_up({0: 10}, {0: 10, 1: 0})
    assert caught_up({}, {})


def test_lag_counts_missing_positions_from_zero_and_never_goes_negative() -> None:
    assert lag({0: 7, 1: 20}, {0: 10, 1: 15, 2: 4}) == 3 + 0 + 4


def test_progress_caps_each_partition_at_its_target() -> None:
    done = progress({0: 50, 1: 3}, {0: 40, 1: 10})
    assert (done.completed, done.total) == (43, 50)
    assert done.fraction == 43 / 50
    assert progress({}, {}).fraction == 1.0


def test_a_status_reads_back_as_the_dataclass_it_was_written_as(tmp_path: Path) -> None:
    written = status_of(state="running", positions={0: 4, 2: 9}, end_offsets={0: 5, 2: 9}, lag=1,
                        rebuild=RebuildProgress("abc.g1", {0: 3}, 3))
    path = tmp_path / "status.json"
    write_status(path, written)
    raw = json.loads(path.read_text())
    assert raw["positions"] == {"0": 4, "2": 9}  # JSON keys partitions by string
    assert raw["rebuild"] == {"version": "abc.g1", "positions": {"0": 3}, "records": 3}
    assert read_status(path) == written
    assert read_status(tmp_path / "missing.json") is None
    path.write_text('{"product": "p"}')  # not a status this package wrote
    assert read_status(path) is None
    path.write_text(json.dumps({**raw, "from_a_newer_writer": 1}))
    assert read_status(path) == written


def test_freshness_verdict_against_the_sla() -> None:
    assert freshness_verdict(3.0, 30.0) == "Fresh"
    assert freshness_verdict(31.0, 30.0) == "Stale"
    assert freshness_verdict(None, 30.0) == "unknown"
    assert freshness_verdict(5.0, None) is None


def test_freshness_is_zero_when_nothing_is_left_to_read() -> None:
    assert freshness_now(0, 99.0, 0, now=1000.0) == 0.0
    assert freshness_now(5, 12.0, None, now=1000.0) == 12.0
    assert freshness_now(5, None, 990_000, now=1000.0) == 10.0
    assert freshness_now(None, None, None, now=1000.0) is None


def test_store_view_prefers_live_positions_and_ends_over_the_last_status() -> None:
    status = status_of(positions={0: 3}, end_offsets={0: 3}, lag=0, records=3,
                       ops={"upsert": 2, "delete": 0, "skip": 1, "deadLetter": 0}, dead_letters=0,
                       records_per_second=9.5, freshness_seconds=0.0, last_record_timestamp_ms=1_000_000,
                       store_url="redis://h:6379/0", last_error=None)
    view = store_view(namespace="ns", product="p", store="s", kind="redis", state="stopped", status=status,
                      sla_seconds=30.0, now=1100.0, positions={0: 3}, end_offsets={0: 8})
    assert view.lag == 5
    assert view.freshness_seconds == 100.0
    assert view.freshness == "Stale"
    assert view.records_per_second == 0.0  # a stopped consumer reads nothing
    data = view.to_dict()
    assert data["positions"] == {"0": 3}
    assert (data["position"], data["end_offset"]) == (3, 8)


def test_store_view_without_any_status() -> None:
    view = store_view(namespace="ns", product="p", store="s", kind="postgres", state="starting", status=None,
                      sla_seconds=None, now=0.0)
    assert view.lag is None
    assert view.freshness is None
    assert view.to_dict()["end_offset"] is None


def test_holds_current_needs_this_process_no_rebuild_and_the_targets() -> None:
    targets = {0: 10, 1: 5}
    current = status_of(state="running", positions={0: 10, 1: 5})
    assert group_holds_current([current], [42], targets)
    assert not group_holds_current([current], [41], targets)  # an earlier process's: says nothing of this spec
    assert not group_holds_current([current], [None], targets)
    assert not group_holds_current([None], [42], targets)
    # The old version caught up while the new one is built beside it: not yet.
    rebuilding = dataclasses.replace(current, rebuild=RebuildProgress("abc.g0", {0: 3}, 3))
    assert not group_holds_current([rebuilding], [42], targets)
    assert not group_holds_current([dataclasses.replace(current, positions={0: 10, 1: 4})], [42], targets)
    assert group_holds_current([dataclasses.replace(current, state="frozen", positions={0: 2})], [42], targets)


def test_build_progress_follows_the_rebuild_while_one_runs() -> None:
    targets = {0: 10, 1: 5}
    status = status_of(positions={0: 10, 1: 5}, rebuild=RebuildProgress("v", {0: 4, 1: 1}))
    assert build_progress(status, targets).completed == 5
    assert build_progress(dataclasses.replace(status, rebuild=None), targets).completed == 15
    assert build_progress(None, targets).completed == 0


def test_store_view_says_a_rebuild_runs_or_is_pending() -> None:
    common: dict[str, Any] = {"namespace": "ns", "product": "p", "store": "s", "kind": "redis",
                              "sla_seconds": None, "now": 0.0}
    building = status_of(rebuild=RebuildProgress("v"))
    assert store_view(state="running", status=building, **common).rebuild == "running"
    assert store_view(state="stopped", status=building, rebuild_pending=True, **common).rebuild == "pending"
    assert store_view(state="stopped", status=building, **common).rebuild is None
    assert store_view(state="running", status=status_of(), **common).to_dict()["rebuild"] is None
