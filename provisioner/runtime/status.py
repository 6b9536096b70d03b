"""The status a consumer publishes about itself, as a small JSON file others can read.

The consumer rewrites it atomically (write + rename) after every batch and at least once a second;
`provisioner status`, `up`'s dashboard and the supervisor read it back as the `ConsumerStatus` it
was written as (JSON keys partitions by string; the dataclass by number). It never holds a secret:
the store URL it names is masked.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

State = Literal["starting", "running", "backoff", "halted", "stopped", "frozen"]


@dataclass(slots=True)
class RebuildProgress:
    """A version being built beside the live store: how far its consumer got."""

    version: str
    positions: dict[int, int] = field(default_factory=dict)
    records: int = 0


@dataclass(slots=True)
class ConsumerStatus:
    product: str
    namespace: str
    store: str
    kind: str
    pid: int
    state: State = "starting"
    store_url: str | None = None
    positions: dict[int, int] = field(default_factory=dict)  # partition -> next offset to read
    end_offsets: dict[int, int] = field(default_factory=dict)
    lag: int | None = None
    records: int = 0
    ops: dict[str, int] = field(default_factory=lambda: {"upsert": 0, "delete": 0, "skip": 0, "deadLetter": 0})
    dead_letters: int = 0
    stale: int = 0  # of the skips, those of ops older than their key's last applied one (`spec.order`)
    batches: int = 0
    conflicts: int = 0
    records_per_second: float = 0.0
    last_error: str | None = None
    last_record_timestamp_ms: int | None = None
    freshness_seconds: float | None = None
    frozen_at: str | None = None  # source.until, once the store holds the state as of that instant
    # The content rules (fingerprint) of the version this process follows on the live store, and
    # while it builds a newer one beside it, that rebuild's progress. The live store holds this
    # process's spec only once `rebuild` is None.
    version: str | None = None
    rebuild: RebuildProgress | None = None
    updated_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: partitions keyed by string, as JSON must."""
        data = asdict(self)
        data["positions"] = _keyed(self.positions)
        data["end_offsets"] = _keyed(self.end_offsets)
        if self.rebuild is not None:
            data["rebuild"]["positions"] = _keyed(self.rebuild.positions)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConsumerStatus:
        """The status `to_dict` wrote (unknown keys, from a newer writer, are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["positions"] = _offsets(values.get("positions"))
        values["end_offsets"] = _offsets(values.get("end_offsets"))
        rebuild = values.get("rebuild")
        if rebuild is not None:
            values["rebuild"] = RebuildProgress(str(rebuild["version"]), _offsets(rebuild.get("positions")),
                                                int(rebuild.get("records", 0)))
        return cls(**values)


def _keyed(offsets: Mapping[int, int]) -> dict[str, int]:
    return {str(partition): offset for partition, offset in sorted(offsets.items())}


def _offsets(raw: Mapping[str, int] | None) -> dict[int, int]:
    return {int(partition): int(offset) for partition, offset in (raw or {}).items()}


def write_status(path: Path, status: ConsumerStatus) -> None:
    """Replace the status file atomically, so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".status-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(status.to_dict(), handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_status(path: Path) -> ConsumerStatus | None:
    """The last status written, or None if there is none (or it cannot be read)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ConsumerStatus.from_dict(data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def merge_statuses(statuses: Sequence[ConsumerStatus | None]) -> ConsumerStatus | None:
    """One status for a store whose consumer group runs several processes, from each one's: the
    furthest position and end offset of every partition (a partition that moved keeps its newer
    owner's, which is ahead), counters and pace summed, the first error and rebuild reported, and
    the group halted if one process halted, else running if one runs."""
    present = [s for s in statuses if s is not None]
    if len(present) <= 1:
        return present[0] if present else None
    positions: dict[int, int] = {}
    ends: dict[int, int] = {}
    ops: dict[str, int] = {}
    for status in present:
        for partition, offset in status.positions.items():
            positions[partition] = max(positions.get(partition, 0), offset)
        for partition, offset in status.end_offsets.items():
            ends[partition] = max(ends.get(partition, 0), offset)
        for op, count in status.ops.items():
            ops[op] = ops.get(op, 0) + count
    states = {s.state for s in present}
    ages = [s.freshness_seconds for s in present if s.freshness_seconds is not None]
    return replace(
        present[0],
        positions=dict(sorted(positions.items())), end_offsets=dict(sorted(ends.items())), ops=ops,
        records=sum(s.records for s in present), dead_letters=sum(s.dead_letters for s in present),
        batches=sum(s.batches for s in present), conflicts=sum(s.conflicts for s in present),
        records_per_second=sum(s.records_per_second for s in present),
        lag=sum(max(0, end - positions.get(p, 0)) for p, end in ends.items()) if ends else None,
        last_error=next((s.last_error for s in present if s.last_error), None),
        rebuild=next((s.rebuild for s in present if s.rebuild is not None), None),
        state="halted" if "halted" in states else "running" if "running" in states else present[0].state,
        freshness_seconds=max(ages) if ages else None,
    )
