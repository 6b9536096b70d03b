"""The status a consumer publishes about itself, as a small JSON file others can read.

The consumer rewrites it atomically (write + rename) after every batch and at least once a second;
`provisioner status`, `up`'s dashboard and the supervisor read it. It never holds a secret: the
store URL it names is masked.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

State = Literal["starting", "running", "backoff", "halted", "stopped", "frozen"]


@dataclass(slots=True)
class ConsumerStatus:
    product: str
    namespace: str
    store: str
    kind: str
    pid: int
    state: State = "starting"
    store_url: str | None = None
    positions: dict[str, int] = field(default_factory=dict)
    end_offsets: dict[str, int] = field(default_factory=dict)
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
    # while it builds a newer one beside it, that rebuild: {"version", "positions", "records"}.
    # The live store holds this process's spec only once `rebuild` is None.
    version: str | None = None
    rebuild: dict[str, Any] | None = None
    updated_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def read_status(path: Path) -> dict[str, Any] | None:
    """The last status written, or None if there is none (or it cannot be read)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
