"""How far a store is behind its topic: caught-up checks, lag, progress and freshness verdicts.

Pure functions over partition -> offset maps (a position is the offset of the next record to read).
Callers: `provisioner up --until-caught-up` and `replay` (progress bars, when to stop),
`provisioner status` and `up`'s dashboard (lag, Fresh/Stale).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from provisioner.runtime.status import ConsumerStatus

Verdict = Literal["Fresh", "Stale", "unknown"]


def caught_up(positions: Mapping[int, int], targets: Mapping[int, int]) -> bool:
    """True once every partition's position reached its target.

    A partition whose target is 0 holds nothing to read, so it counts as reached even before the
    consumer has stored a position for it.
    """
    return all(positions.get(partition, 0) >= target for partition, target in targets.items())


def group_holds_current(statuses: Sequence[ConsumerStatus | None], pids: Sequence[int | None],
                        targets: Mapping[int, int]) -> bool:
    """Whether a store's consumer statuses say it holds its spec's content up to `targets`: each
    written by its running process (`pids`, in the same order; a status left by an earlier process
    says nothing of this spec), none rebuilding (a rebuild beside the store counts only once it
    switched), and together they reached the targets (every partition at its furthest position
    among them), or all froze at `until`. The old version being caught up is not enough."""
    if not statuses or len(statuses) != len(pids):
        return False
    present: list[ConsumerStatus] = []
    for status, pid in zip(statuses, pids, strict=True):
        if status is None or pid is None or status.pid != pid or status.rebuild is not None:
            return False
        present.append(status)
    if all(status.state == "frozen" for status in present):
        return True
    furthest: dict[int, int] = {}
    for status in present:
        for partition, offset in status.positions.items():
            furthest[partition] = max(furthest.get(partition, 0), offset)
    return caught_up(furthest, targets)


def build_progress(status: ConsumerStatus | None, targets: Mapping[int, int]) -> Progress:
    """The progress a bar shows: the rebuild's while one runs beside the store, else the store's."""
    if status is None:
        return progress({}, targets)
    return progress(status.rebuild.positions if status.rebuild is not None else status.positions, targets)


def lag(positions: Mapping[int, int], ends: Mapping[int, int]) -> int:
    """Records between the positions and the ends, summed over partitions (never negative).

    A partition without a position counts from 0: the store has not read any of it yet.
    """
    return sum(max(0, end - positions.get(partition, 0)) for partition, end in ends.items())


@dataclass(frozen=True, slots=True)
class Progress:
    """Position against a target total, for a progress bar."""

    completed: int
    total: int

    @property
    def fraction(self) -> float:
        return 1.0 if self.total <= 0 else min(1.0, self.completed / self.total)


def progress(positions: Mapping[int, int], targets: Mapping[int, int]) -> Progress:
    """How much of the targets the positions cover, each partition capped at its target.

    Capping matters: records produced after the targets were noted must not push the bar past 100%.
    """
    completed = sum(min(positions.get(partition, 0), target) for partition, target in targets.items())
    return Progress(completed=completed, total=sum(targets.values()))


def freshness_verdict(freshness_seconds: float | None, sla_seconds: float | None) -> Verdict | None:
    """Fresh/Stale against the spec's `freshness` SLA; None when the spec sets no SLA."""
    if sla_seconds is None:
        return None
    if freshness_seconds is None:
        return "unknown"
    return "Fresh" if freshness_seconds <= sla_seconds else "Stale"


def freshness_now(
    lag_records: int | None, reported_seconds: float | None, last_record_ms: int | None, now: float
) -> float | None:
    """How stale the store is: 0 when nothing is left to read, else the age the consumer reported,
    else the age of the last record it applied; None when none of that is known."""
    if lag_records == 0:
        return 0.0
    if reported_seconds is not None:
        return reported_seconds
    if lag_records is not None and last_record_ms is not None:
        return max(0.0, now - last_record_ms / 1000)
    return None


@dataclass(frozen=True, slots=True)
class StoreView:
    """One store's row in `up`'s dashboard and in `provisioner status`."""

    namespace: str
    product: str
    store: str
    kind: str
    state: str
    positions: dict[int, int]
    end_offsets: dict[int, int]
    lag: int | None
    records: int
    records_per_second: float
    ops: dict[str, int]
    dead_letters: int
    freshness_seconds: float | None
    freshness_sla_seconds: float | None
    freshness: Verdict | None
    store_url: str | None
    last_error: str | None
    # None: the store holds the spec's content; "running": a consumer builds the spec's version
    # beside it; "pending": it holds an earlier spec's content and no consumer rebuilds it now.
    rebuild: str | None = None
    consumers: str | None = None  # with several replicas: processes running out of those started, e.g. "2/3"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["positions"] = {str(p): o for p, o in self.positions.items()}
        data["end_offsets"] = {str(p): o for p, o in self.end_offsets.items()}
        data["position"] = sum(self.positions.values())
        data["end_offset"] = sum(self.end_offsets.values()) if self.end_offsets else None
        return data


def store_view(
    *,
    namespace: str,
    product: str,
    store: str,
    kind: str,
    state: str,
    status: ConsumerStatus | None,
    sla_seconds: float | None,
    now: float,
    positions: Mapping[int, int] | None = None,
    end_offsets: Mapping[int, int] | None = None,
    store_url: str | None = None,
    last_error: str | None = None,
    rebuild_pending: bool = False,
    consumers: str | None = None,
) -> StoreView:
    """Combine a consumer's last status with fresher facts when the caller has them (positions read
    from the store, end offsets asked of Kafka now, whether the store's recorded version is an
    earlier spec's: `rebuild_pending`); the fresher facts win."""
    rebuilding = state in ("starting", "running", "backoff") and status is not None and status.rebuild is not None
    known_positions = dict(positions) if positions is not None else dict(status.positions) if status else {}
    ends = dict(end_offsets) if end_offsets is not None else dict(status.end_offsets) if status else {}
    behind = lag(known_positions, ends) if ends else status.lag if status else None
    # A stopped consumer's last reported freshness only ages: recompute it from its last record.
    reported_seconds = status.freshness_seconds if status is not None and state == "running" else None
    last_record_ms = status.last_record_timestamp_ms if status is not None else None
    seconds = freshness_now(behind, reported_seconds, last_record_ms, now)
    return StoreView(
        namespace=namespace, product=product, store=store, kind=kind, state=state,
        positions=dict(sorted(known_positions.items())), end_offsets=dict(sorted(ends.items())), lag=behind,
        records=status.records if status else 0,
        records_per_second=status.records_per_second if status is not None and state == "running" else 0.0,
        ops=dict(status.ops) if status else {},
        dead_letters=status.dead_letters if status else 0,
        freshness_seconds=None if seconds is None else round(seconds, 1),
        freshness_sla_seconds=sla_seconds,
        freshness=freshness_verdict(seconds, sla_seconds),
        store_url=store_url if store_url is not None else status.store_url if status else None,
        last_error=last_error if last_error is not None else status.last_error if status else None,
        rebuild="running" if rebuilding else "pending" if rebuild_pending else None,
        consumers=consumers,
    )
