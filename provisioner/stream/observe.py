"""What Kafka knows about a product's consumers: end offsets, consumer-group members and dead
letters per product and store, read by a long-lived observer (one admin client, one dead-letter
reader) so that watching many products costs a few requests per refresh, not a client each.

Dead letters are counted from the dead-letter topic itself, by their `provisioner.product`
(`<namespace>/<name>`) and `provisioner.store` headers: the reader keeps its offsets and counts and
reads only what arrived since the last call. Counts are of messages, so a dead letter sent again
after a discarded batch counts twice (spec.md allows duplicates; the headers identify them).

Bounded: every call runs on the observer's own thread (kafka-python's clients are not thread-safe)
and its caller waits at most `timeout` seconds for it. A call that gets no answer in time, or
finds no broker, opens an outage window of `retry_after` seconds in which every call fails at
once with the same message, without touching Kafka: with the broker down, a status refresh of a
thousand products costs one timeout, not a thousand, and the messages stay the same from one
refresh to the next (so the status is not rewritten). The first call after the window probes
Kafka again. Any failure raises KafkaUnavailable (retryable). Called by `provisioner.kube.observe`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from provisioner.stream.failures import from_kafka_python
from provisioner.stream.group_batch import GroupBatches
from provisioner.stream.kafka import CLIENT_ID, KafkaUnavailable
from provisioner.stream.settings import KafkaSettings, KafkaTarget, kafka_python_config, settings_of
from provisioner.threads import DaemonExecutor

__all__ = ["KafkaObserver"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_PARTITIONS_TTL_S = 60.0
_TOPICS_TTL_S = 10.0  # how old the listing of every topic that dead-letter counts use may be
# A ListOffsets sent to the leader last described that says the partition moved: asked again afresh.
_LEADER_MOVED = frozenset({"NotLeaderForPartitionError", "UnknownTopicOrPartitionError", "LeaderNotAvailableError",
                           "FencedLeaderEpochError", "UnknownLeaderEpochError", "NodeNotReadyError",
                           "UnknownBrokerIdError"})
_READ_UNCOMMITTED = 0  # ListOffsets' isolation level: end offsets, as the consumers' lag counts them
_GROUP_ID_NOT_FOUND = 69  # what a newer broker says of a group that has no member and no offsets
# A group coordinator that is loading or moving: DescribeGroups is asked again, within the call's timeout.
_COORDINATOR_MOVING = frozenset({"CoordinatorLoadInProgressError", "CoordinatorNotAvailableError",
                                 "NotCoordinatorError"})
# Answers that say the connection is sound: the client is kept (see `_guarded`). Not a coordinator
# that moved: kafka-python keeps each group's coordinator for the client's life, so a new client
# is what finds it afresh.
_ANSWERED = frozenset({"NotLeaderForPartitionError", "UnknownTopicOrPartitionError", "LeaderNotAvailableError",
                       "FencedLeaderEpochError", "UnknownLeaderEpochError", "CoordinatorLoadInProgressError",
                       "GroupAuthorizationFailedError", "TopicAuthorizationFailedError"})
_COORDINATOR_TRIES = 5
_COORDINATOR_PAUSE_S = 0.2
_TOPICS_LISTED_MAX = 5000  # topics beyond which each dead-letter topic is asked for by name instead
# kafka-python's own timeouts take this share of a call's: it usually gives up (and cleans up) first.
_CLIENT_SHARE = 0.8
# Errors that say "no broker answers" rather than "this request was refused": they open the window.
_UNREACHABLE = ("NoBrokersAvailable", "KafkaConnectionError", "NodeNotReadyError", "KafkaTimeoutError",
                "RequestTimedOutError")


class KafkaObserver:
    """End offsets, group members and dead-letter counts, from one broker connection."""

    def __init__(self, bootstrap: KafkaTarget, *, timeout: float = 3.0, retry_after: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.connection = settings_of(bootstrap)
        self.bootstrap = self.connection.bootstrap
        self._timeout = timeout
        self._retry_after = retry_after
        self._clock = clock
        self._thread = DaemonExecutor(1, "kafka-observer")
        self._state = threading.Lock()
        self._down: tuple[float, str] | None = None  # (until when, the message every call gives meanwhile)
        self._admin: Any = None
        self._partitions: dict[str, tuple[float, dict[int, int]]] = {}  # topic -> (when, partition -> leader)
        self._topics: tuple[float, dict[str, list[int]] | None] | None = None  # (when, every topic's partitions)
        self._dead_letter_readers: dict[str, _DeadLetterReader] = {}
        self._groups = GroupBatches(clock)  # what to describe with an asked group (see `_group_members`)

    def close(self, timeout: float | None = None) -> None:
        """Close the clients, waiting at most `timeout` seconds (default: the call timeout) for a
        call still running; a stuck call is left to its daemon thread."""
        wait = self._timeout if timeout is None else timeout
        try:
            self._thread.submit(self._close).result(wait)
        except (concurrent.futures.TimeoutError, RuntimeError):
            log.debug("kafka observer: a call is still running; not waiting for it to close")
        self._thread.shutdown(wait=False, cancel_futures=True)
        self._thread.join(wait)

    def use(self, settings: KafkaSettings) -> None:
        """Connect with `settings` from the next call on (a rotated password or certificate): the
        clients are closed on the observer's thread, in turn with the calls, and made again."""
        def switch() -> None:
            self._close()
            self._partitions.clear()
            self._topics = None
            self._groups.forget_answers()
            self.connection, self.bootstrap = settings, settings.bootstrap
            with self._state:
                self._down = None

        self._thread.submit(switch)

    def connect_ahead(self) -> None:
        """Start connecting now, on the observer's thread, without waiting: the first status
        refreshes come seconds later, and a broker's bootstrap (metadata, API versions) within a
        call's timeout is what a loaded start-up missed, reporting Kafka as not answering for a
        round. A failure here is left to the first call to report."""
        def connect() -> None:
            try:
                self._guarded(self._client)
            except Exception as error:  # reported by the first call that needs Kafka
                log.debug("kafka observer: connecting ahead failed: %s", type(error).__name__)

        self._thread.submit(connect)

    def end_offsets(self, topic: str) -> dict[int, int] | None:
        """The next offset of every partition of `topic`; None when the topic does not exist."""
        return self._call(f"cannot read the end offsets of {topic!r}", lambda: self._end_offsets(topic), topic=topic)

    def group_members(self, group: str) -> int:
        """How many consumers are members of `group` now (0 for an empty or unknown group)."""
        return self._call(f"cannot describe consumer group {group!r}", lambda: self._group_members(group),
                          group=group)

    def expect_groups(self, groups: Iterable[str]) -> None:
        """The consumer groups about to be asked for, in order (the next status refreshes'): the
        next ask that describes its group describes these with it. No request is made here."""
        self._groups.expect(groups)

    def dead_letters(self, topic: str) -> Counter[tuple[str, str]]:
        """Dead letters in `topic` so far, by (`<namespace>/<name>`, store)."""
        return self._call(f"cannot read dead letters from {topic!r}", lambda: self._dead_letters(topic), topic=topic)

    # -- the bounded call --------------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T], *, topic: str | None = None, group: str | None = None) -> T:
        with self._state:
            down = self._down
        if down is not None and self._clock() < down[0]:
            raise KafkaUnavailable(down[1])
        from kafka.errors import KafkaError

        future = self._thread.submit(fn)
        try:
            result = future.result(self._timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise self._outage(f"no answer within {self._timeout:g} s") from None
        except KafkaError as error:
            refused = from_kafka_python(error, self.connection, operation="DESCRIBE", topic=topic, group=group)
            if refused is not None:  # credentials, an ACL or TLS: named, not an outage
                raise refused from None
            name = type(error).__name__
            if name in _UNREACHABLE:
                raise self._outage(name) from None
            raise KafkaUnavailable(f"{what}: {name}") from None
        with self._state:
            if self._down is not None:
                log.info("Kafka at %s answers again", self.bootstrap)
            self._down = None
        return result

    def _outage(self, detail: str) -> KafkaUnavailable:
        # One message for the whole outage, whatever failed first: it ends up in every product's
        # status, which must not change from one refresh to the next while nothing else does.
        message = f"Kafka at {self.bootstrap} is unavailable"
        with self._state:
            if self._down is None:
                log.warning("%s (%s); not asking it again for %g s", message, detail, self._retry_after)
            self._down = (self._clock() + self._retry_after, message)
        return KafkaUnavailable(message)

    # -- on the observer's thread --------------------------------------------------------------------------

    def _end_offsets(self, topic: str) -> dict[int, int] | None:
        """The topic's end offsets, asked of each partition's leader as last described (within
        `_PARTITIONS_TTL_S`): kafka-python's own lookup fetched the topic's metadata before each
        ListOffsets, a second request per read. A leader that moved since is asked the way
        kafka-python does it, with the topic described afresh."""
        from kafka import TopicPartition
        from kafka.admin import OffsetSpec
        from kafka.errors import KafkaError

        leaders = self._topic_leaders(topic)
        if not leaders:
            return None
        if all(leader >= 0 for leader in leaders.values()):
            try:
                return self._guarded(lambda: self._offsets_from_leaders(topic, leaders))
            except KafkaError as error:
                if type(error).__name__ not in _LEADER_MOVED:
                    raise
            self._partitions.pop(topic, None)
            leaders = self._topic_leaders(topic)
            if not leaders:  # deleted meanwhile
                return None
        offsets = self._guarded(lambda: self._client().list_partition_offsets(
            {TopicPartition(topic, p): OffsetSpec.LATEST for p in leaders}))
        return {tp.partition: int(result.offset) for tp, result in offsets.items()}

    def _offsets_from_leaders(self, topic: str, leaders: dict[int, int]) -> dict[int, int]:
        """One ListOffsets (latest) per leader, sent to it directly, through kafka-python's
        request building and response reading (the calls `list_partition_offsets` makes itself)."""
        from kafka import TopicPartition
        from kafka.admin import OffsetSpec

        admin = self._client()
        by_leader: dict[int, dict[Any, Any]] = {}
        for partition, leader in leaders.items():
            by_leader.setdefault(leader, {})[TopicPartition(topic, partition)] = OffsetSpec.LATEST
        offsets: dict[int, int] = {}
        for leader, specs in by_leader.items():
            request = admin._list_partition_offsets_request(specs, _READ_UNCOMMITTED)

            async def send(request: Any = request, leader: int = leader) -> Any:
                return await admin._manager.send(request, node_id=leader)

            answer = admin._list_partition_offsets_process_response(admin._manager.run(send))
            offsets.update({tp.partition: int(result.offset) for tp, result in answer.items()})
        return offsets

    def _group_members(self, group: str) -> int:
        """Members of `group`, described together with the groups about to be asked for (see
        `provisioner.stream.group_batch`). A batch that fails is followed by a description of
        `group` alone, so a refusal is charged to the group it concerns (an ACL may cover some
        groups only)."""
        now = self._clock()
        ahead = self._groups.answer(group, now)
        if ahead is not None:
            return ahead
        batch = self._groups.batch(group, now)
        from kafka.errors import KafkaError

        try:
            described = self._guarded(lambda: self._describe_groups(batch))
        except KafkaError:
            if len(batch) == 1:
                self._groups.failed([group], now)
                raise
            try:
                described = self._guarded(lambda: self._describe_groups([group]))
            except KafkaError:
                self._groups.failed([group], now)
                raise
            self._groups.failed(batch[1:], now)
            batch = [group]
        self._groups.keep({other: members for other in batch[1:]
                           if (members := _members(described, other)) is not None}, now)
        return _members(described, group) or 0

    def _describe_groups(self, groups: list[str]) -> Any:
        """DescribeGroups, asked again while the broker says the groups' coordinator is moving or
        still loading (a broker just started, a partition of its offsets topic changing leader):
        retriable by the protocol, and otherwise a round of statuses saying Kafka did not answer."""
        from kafka.errors import KafkaError

        for attempt in range(_COORDINATOR_TRIES):
            try:
                described = self._client().describe_groups(groups)
                _raise_group_error(described, groups[0])
                return described
            except KafkaError as error:
                if type(error).__name__ not in _COORDINATOR_MOVING or attempt == _COORDINATOR_TRIES - 1:
                    raise
                if type(error).__name__ not in _ANSWERED:
                    self._reset()  # the coordinators it knows may be the ones that moved
                time.sleep(_COORDINATOR_PAUSE_S)
        raise AssertionError("unreachable")

    def _dead_letters(self, topic: str) -> Counter[tuple[str, str]]:
        reader = self._dead_letter_readers.get(topic)
        if reader is None:
            reader = self._dead_letter_readers[topic] = _DeadLetterReader(
                self.connection, topic, self._timeout * _CLIENT_SHARE)
        partitions = self._dead_letter_partitions(topic)
        if not partitions:
            return Counter()
        return reader.catch_up(partitions, budget=self._timeout / 2)

    def _dead_letter_partitions(self, topic: str) -> list[int]:
        """A dead-letter topic's partitions, from a listing of every topic at most
        `_TOPICS_TTL_S` old: most dead-letter topics do not exist (no record failed), and asking
        for each by name was a request per status refresh. A topic created since shows at the
        next listing. Beyond `_TOPICS_LISTED_MAX` topics, a listing costs more than it saves:
        each is asked for by name."""
        now = self._clock()
        if self._topics is None or now - self._topics[0] >= _TOPICS_TTL_S:
            described = self._guarded(lambda: self._client().describe_topics())
            listed = {d["name"]: sorted(p["partition_index"] for p in d["partitions"])
                      for d in described if d["error_code"] == 0}
            self._topics = (now, listed if len(listed) <= _TOPICS_LISTED_MAX else None)
        listed_now = self._topics[1]
        return self._topic_partitions(topic) if listed_now is None else listed_now.get(topic, [])

    def _close(self) -> None:
        for reader in self._dead_letter_readers.values():
            reader.close()
        self._dead_letter_readers.clear()
        self._reset()

    def _guarded(self, request: Callable[[], T]) -> T:
        """A request on the admin client, dropping the client when it fails (it reconnects next
        time), unless the broker answered with a refusal or a "moved" of its own: the connection
        is sound then, and making it again costs more than the request."""
        from kafka.errors import KafkaError

        try:
            return request()
        except KafkaError as error:
            if type(error).__name__ not in _ANSWERED:
                self._reset()
            raise

    def _client(self) -> Any:
        from kafka import KafkaAdminClient

        if self._admin is None:
            timeout_ms = int(self._timeout * _CLIENT_SHARE * 1000)
            self._admin = _construct(KafkaAdminClient, **kafka_python_config(self.connection),
                                     client_id=f"{CLIENT_ID}-observer", request_timeout_ms=timeout_ms,
                                     bootstrap_timeout_ms=timeout_ms)
        return self._admin

    def _reset(self) -> None:
        if self._admin is not None:
            try:
                self._admin.close()
            finally:
                self._admin = None

    def _topic_partitions(self, topic: str) -> list[int]:
        return sorted(self._topic_leaders(topic))

    def _topic_leaders(self, topic: str) -> dict[int, int]:
        """The topic's partitions and each one's leader (-1: none now), as described at most
        `_PARTITIONS_TTL_S` ago (a topic that does not exist is asked for again each time), so
        partitions added to a topic show within that long."""
        cached = self._partitions.get(topic)
        now = self._clock()
        if cached is not None and now - cached[0] < _PARTITIONS_TTL_S and cached[1]:
            return cached[1]
        described = self._guarded(lambda: self._client().describe_topics([topic]))
        leaders = {p["partition_index"]: int(p.get("leader_id", -1)) for d in described if d["error_code"] == 0
                   for p in sorted(d["partitions"], key=lambda p: int(p["partition_index"]))}
        self._partitions[topic] = (now, leaders)
        return leaders


def _members(described: Any, group: str) -> int | None:
    """Members of `group` in a DescribeGroups answer: 0 for an unknown group, None when the
    broker answered for this group with an error (its coordinator moving, a refusal)."""
    info = described.get(group) if isinstance(described, dict) else None
    if not info:
        return 0
    if _group_error(info) is not None:
        return None
    return len(info.get("members") or [])


def _group_error(info: Any) -> int | None:
    """The error code a group's entry in a DescribeGroups answer carries; None for none, or for
    an unknown group (newer brokers say GROUP_ID_NOT_FOUND: a group with no member yet)."""
    text = info.get("error") if isinstance(info, dict) else None
    if not text:
        return None
    match = re.match(r"\[Error (-?\d+)\]", str(text))
    code = int(match.group(1)) if match else -1
    return None if code == _GROUP_ID_NOT_FOUND else code


def _raise_group_error(described: Any, group: str) -> None:
    """kafka-python reports a group's own error in its entry of the answer: raised here as the
    error it stands for, so a loading coordinator is asked again and a refusal named."""
    info = described.get(group) if isinstance(described, dict) else None
    code = _group_error(info)
    if code is not None and info is not None:
        from kafka.errors import for_code

        raise for_code(code)(str(info["error"]))


def _construct(cls: Any, **config: Any) -> Any:
    """A kafka-python client. They connect in their constructor, and one that fails there leaves
    its network thread and sockets running: stopped here, or each probe of a broker that is down
    would leak them."""
    client = cls.__new__(cls)
    try:
        client.__init__(**config)
    except BaseException:
        for part, stop in (("_client", "close"), ("_net", "stop")):
            with contextlib.suppress(Exception):
                getattr(getattr(client, part), stop)()
        raise
    return client


class _DeadLetterReader:
    """Reads one dead-letter topic from the start, once, and counts by product and store."""

    def __init__(self, connection: KafkaSettings, topic: str, timeout: float) -> None:
        self.topic = topic
        self._connection = connection
        self._timeout_ms = int(timeout * 1000)
        self._consumer: Any = None
        self._assigned: list[int] = []
        self.counts: Counter[tuple[str, str]] = Counter()

    def catch_up(self, partitions: list[int], budget: float) -> Counter[tuple[str, str]]:
        """Count what arrived since the last call, for at most `budget` seconds (a long backlog is
        counted over several calls)."""
        from kafka import KafkaConsumer, TopicPartition
        from kafka.errors import KafkaError

        try:
            if self._consumer is None:
                self._consumer = _construct(KafkaConsumer, **kafka_python_config(self._connection),
                                            client_id=f"{CLIENT_ID}-dlq-counter", enable_auto_commit=False,
                                            group_id=None, auto_offset_reset="earliest", consumer_timeout_ms=1000,
                                            bootstrap_timeout_ms=self._timeout_ms)
            if partitions != self._assigned:
                known = {tp.partition: self._consumer.position(tp) for tp in self._consumer.assignment()}
                assignment = [TopicPartition(self.topic, p) for p in partitions]
                self._consumer.assign(assignment)
                for tp in assignment:
                    if tp.partition in known:
                        self._consumer.seek(tp, known[tp.partition])
                    else:
                        self._consumer.seek_to_beginning(tp)
                self._assigned = partitions
            assignment = [TopicPartition(self.topic, p) for p in partitions]
            ends = self._consumer.end_offsets(assignment, timeout_ms=self._timeout_ms)
            deadline = time.monotonic() + budget
            while any(self._consumer.position(tp, timeout_ms=self._timeout_ms) < ends[tp] for tp in assignment):
                batches = self._consumer.poll(timeout_ms=200, max_records=5000)
                for records in batches.values():
                    for record in records:
                        headers = dict(record.headers or [])
                        product = headers.get("provisioner.product", b"").decode("utf-8", "replace")
                        store = headers.get("provisioner.store", b"").decode("utf-8", "replace")
                        self.counts[(product, store)] += 1
                if time.monotonic() > deadline:
                    break
        except KafkaError:
            self.close()
            raise
        return Counter(self.counts)

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
            self._assigned = []
            self.counts = Counter()
