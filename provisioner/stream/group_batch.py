"""Which consumer groups to describe together with the one asked for, and the answers got ahead.

One DescribeGroups (and one FindCoordinator for the groups whose coordinator is not yet known)
for up to `DESCRIBE_BATCH` groups costs the broker and the observer's thread about what one for
a single group does, and most of a status refresh's Kafka CPU was that per-request cost. The
groups described with an asked one are those about to be asked for:

- those the operator says come next (`expect`: the products queued for a status refresh), which
  covers a first round, when every group is new;
- those that followed it last time (a resync refreshes products in the same order each round).

Each answer got ahead serves one ask, within `MEMBERS_TTL_S`; any other ask describes again. A
group that was in a batch that failed is described only at its own ask for a while, so one
refused group (an ACL that covers some groups only) does not fail the batches of the others.
Pure bookkeeping: the observer's thread calls everything but `expect`, which any thread may call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from itertools import islice

__all__ = ["DESCRIBE_BATCH", "MEMBERS_TTL_S", "GroupBatches"]

DESCRIBE_BATCH = 50  # consumer groups described in one request, at most
MEMBERS_TTL_S = 10.0  # how old a group's description got ahead of its ask may be (50 at 7 refreshes a second)
_GROUPS_REMEMBERED = 100_000  # bounds what is remembered of groups since deleted


class GroupBatches:
    """The batches to describe and the answers got ahead, for one observer."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._expected_lock = threading.Lock()
        self._expected: tuple[float, tuple[str, ...]] | None = None  # (when said, groups in order)
        self._after: dict[str, str] = {}  # each group -> the one asked for right after it
        self._last: str | None = None
        self._ahead: dict[str, tuple[float, int]] = {}  # group -> (when described, members)
        self._alone: dict[str, float] = {}  # group -> when a batch holding it failed

    def expect(self, groups: Iterable[str]) -> None:
        """The groups about to be asked for, in order; replaces what was expected before (the
        latest word is the best guess). Cheap: no request is made until a group is asked for."""
        expected = tuple(islice(groups, DESCRIBE_BATCH))
        with self._expected_lock:
            self._expected = (self._clock(), expected)

    def answer(self, group: str, now: float) -> int | None:
        """The members of `group` got ahead of this ask and still young enough, once; and the
        ask is remembered as following the previous one."""
        if self._last is not None and self._last != group:
            if len(self._after) >= _GROUPS_REMEMBERED:
                self._after.clear()
            self._after[self._last] = group
        self._last = group
        ahead = self._ahead.pop(group, None)
        return ahead[1] if ahead is not None and now - ahead[0] < MEMBERS_TTL_S else None

    def batch(self, group: str, now: float) -> list[str]:
        """`group` first, then those that followed it last time, then those expected next: at
        most `DESCRIBE_BATCH`, none whose answer got ahead is still unused and young."""
        chosen = [group]
        seen = {group}

        def add(other: str) -> None:
            if other in seen:
                return
            seen.add(other)
            ahead = self._ahead.get(other)
            if ahead is not None and now - ahead[0] < MEMBERS_TTL_S:
                return
            failed = self._alone.get(other)
            if failed is not None and now - failed < MEMBERS_TTL_S:
                return
            chosen.append(other)

        following = self._after.get(group)
        while following is not None and following not in seen and len(chosen) < DESCRIBE_BATCH:
            add(following)
            following = self._after.get(following)
        with self._expected_lock:
            expected = self._expected
        if expected is not None and now - expected[0] < MEMBERS_TTL_S:
            for other in expected[1]:
                if len(chosen) >= DESCRIBE_BATCH:
                    break
                add(other)
        return chosen

    def keep(self, answers: Mapping[str, int], now: float) -> None:
        """Members of groups described ahead of their ask."""
        if len(self._ahead) + len(answers) > _GROUPS_REMEMBERED:
            self._ahead.clear()
        for other, members in answers.items():
            self._ahead[other] = (now, members)

    def failed(self, others: Iterable[str], now: float) -> None:
        """`others` were in a batch that failed: each is described at its own ask for a while."""
        if len(self._alone) >= _GROUPS_REMEMBERED:
            self._alone.clear()
        for other in others:
            self._alone[other] = now

    def forget_answers(self) -> None:
        """Drop the answers got ahead (the connection changed: they may be another cluster's)."""
        self._ahead.clear()
