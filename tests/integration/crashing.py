"""SIGKILL a consumer at random instants while it hydrates: the loop the crash tests share."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from provisioner.spec.models import DataProduct, StoreSpec
from tests.integration import harness as h

Chunk = TypeVar("Chunk")


def kill_while_hydrating(consumer: h.ConsumerProcess, chunks: list[Chunk],
                         produce: Callable[[Chunk], int], product: DataProduct, store_spec: StoreSpec,
                         url: str, rng: random.Random, *, keep: int, most_wait: float,
                         enough: int | None = None) -> tuple[int, int]:
    """Each life: produce the next chunk (a fresh backlog, so the consumer has work in hand), start
    the consumer, wait for its first batch to land, SIGKILL it up to `most_wait` seconds later.
    Stops with `keep` chunks left for the final run (or once `enough` kills landed mid-hydration);
    returns the records produced and the kills that landed before the store held them all."""
    produced = 0
    kills = 0

    def applied() -> int:
        return sum(h.store_positions(product, store_spec, url).values())

    while len(chunks) > keep and (enough is None or kills < enough):
        produced += produce(chunks.pop(0))
        landed = partial(_more, applied, applied())  # counted before the consumer starts
        consumer.start()
        h.wait_for(landed, 60, "a first batch", interval=0.01, on_timeout=consumer.log)
        time.sleep(rng.uniform(0.0, most_wait))
        consumer.kill()
        if applied() < produced:
            kills += 1
    return produced, kills


def _more(applied: Callable[[], int], before: int) -> bool:
    return applied() > before
