"""Consumers racing for the same positions: every store kind must let exactly one win a round."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from provisioner.pipeline.ops import Change
from provisioner.stores.base import PositionConflict, Store


def race_round(stores: Sequence[Store], round_: int, change: Callable[[int, str], Change]) -> list[str]:
    """Each store applies its own batch from the same start at once; returns the outcomes
    ("w<index>-<round>" for a win, "conflict" otherwise)."""
    outcomes: list[str] = []

    def attempt(store: Any, index: int) -> None:
        prepared, _ = store.prepare([change(round_, f"w{index}-{round_}")])
        try:
            store.apply(prepared, {0: round_ or None}, {0: round_ + 1})
            outcomes.append(f"w{index}-{round_}")
        except PositionConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=attempt, args=(store, index)) for index, store in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return outcomes
