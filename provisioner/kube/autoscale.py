"""How many consumers a store needs: the lag-driven autoscaling decision, pure so every case is a test.

A store's consumers read `rate` records per second together; the lag would drain within
`catch_up_within` seconds with `lag / catch_up_within` records per second more, so the count that
reads that fast at the pace each consumer showed is the one wanted. It stays within the bounds:
`consumer.replicas` below, `min(maxReplicas, partitions)` above (a consumer past the partition
count gets no partition and idles). Scaling up happens at once; scaling down waits until the last
change is at least `cool_down` seconds old, so a backlog that comes and goes does not make the
group rebalance on every refresh. Without a measured pace (the first observation, or consumers
that read nothing), the count stays where it is: more consumers would not help a stuck one; but
a lag with no consumer at all (`replicas: 0` as the floor) starts one.

Called by `provisioner.kube.scaling`, which keeps the state between observations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DEFAULT_COOL_DOWN_S", "Bounds", "Decision", "bounds", "decide"]

DEFAULT_COOL_DOWN_S = 300.0


@dataclass(frozen=True, slots=True)
class Bounds:
    """The fewest and the most replicas (`low <= high`)."""

    low: int
    high: int

    def clamp(self, replicas: int) -> int:
        return max(self.low, min(self.high, replicas))


@dataclass(frozen=True, slots=True)
class Decision:
    """The replicas wanted now, and why (for the Event that reports a change)."""

    replicas: int
    reason: str


def bounds(replicas: int, max_replicas: int, partitions: int | None) -> Bounds:
    """`consumer.replicas` below, `min(maxReplicas, partitions)` above, never below the floor."""
    high = max_replicas if partitions is None else min(max_replicas, partitions)
    return Bounds(replicas, max(replicas, high))


def decide(*, lag: int | None, rate: float | None, consumers: int | None, current: int, limits: Bounds,
           catch_up_within: float, last_change: float | None, now: float, cool_down: float) -> Decision:
    """The replicas a store's consumer Deployment should have.

    `lag`: records behind (None: unknown); `rate`: records per second the group read since the
    previous observation (None: not measured yet); `consumers`: members of the group now (the
    consumers that showed that pace); `current`: the replicas set now; `last_change` and `now`:
    seconds on one clock."""
    held = limits.clamp(current)
    if lag is None:
        return Decision(held, "the lag is not known")
    if lag == 0:
        wanted, why = limits.low, "no lag"
    elif held == 0:
        wanted, why = 1, f"lag {lag} records and no consumer"
    elif rate is None or rate <= 0:
        return Decision(held, f"lag {lag} records and no measured pace")
    else:
        per_consumer = rate / max(1, consumers or current or 1)
        wanted = math.ceil(lag / (catch_up_within * per_consumer))
        why = f"lag {lag} records at {rate:.0f} records/s, to be read within {catch_up_within:g} s"
    wanted = limits.clamp(wanted)
    if wanted < held and last_change is not None and now - last_change < cool_down:
        return Decision(held, f"{why}; scaling down waits {cool_down:g} s after the last change")
    return Decision(wanted, why)
