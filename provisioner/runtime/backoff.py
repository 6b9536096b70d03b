"""Capped exponential backoff with full jitter, for retrying an unreachable Kafka or store."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Delays of base·2^n seconds, capped, each drawn in [delay/2, delay] so retries spread out."""

    base: float = 0.2
    cap: float = 30.0
    attempts: int = 0
    _random: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        delay = min(self.cap, self.base * (2 ** min(self.attempts, 30)))
        self.attempts += 1
        return float(delay / 2 + self._random.random() * delay / 2)

    def reset(self) -> None:
        self.attempts = 0
