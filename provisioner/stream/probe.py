"""What a Kafka principal may do, asked of the broker without writing anything: `provisioner doctor`.

Each call is one bounded request through librdkafka's admin client with the process's one
connection (`KafkaSettings`), so a wrong password, an untrusted certificate or a missing ACL is the
same `failures` error a consumer would meet. Permissions come from the broker itself: describe
requests with `include_authorized_operations` return the operations the broker's authorizer
allows this principal on that topic, group or cluster (every operation when it runs none). That
answers "may it WRITE the dead-letter topic" honestly without producing a record.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicCollection

from provisioner.stream.confluent_admin import _Admin
from provisioner.stream.failures import KafkaUnavailable, authorization
from provisioner.stream.settings import KafkaSettings

__all__ = ["GroupAccess", "KafkaProbe", "TopicAccess"]

CLIENT_ID = "provisioner-doctor"
_COORDINATOR_MOVING = (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE,
                       KafkaError.COORDINATOR_LOAD_IN_PROGRESS)


@dataclass(frozen=True, slots=True)
class TopicAccess:
    """A topic as the principal sees it: whether it exists, its partitions, what it may do on it."""

    topic: str
    exists: bool
    partitions: int = 0
    operations: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class GroupAccess:
    """A consumer group as the principal sees it: its state (`DEAD`/`EMPTY` before anyone joined)."""

    group: str
    state: str
    operations: frozenset[str] = frozenset()


def _names(operations: Any) -> frozenset[str]:
    return frozenset(getattr(operation, "name", str(operation)) for operation in operations or ())


class KafkaProbe:
    """Bounded look-ups for one connection; `close()` when done."""

    def __init__(self, settings: KafkaSettings, *, timeout: float = 10.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self._admin: _Admin | None = None

    def _client(self) -> _Admin:
        if self._admin is None:
            self._admin = _Admin(self.settings, CLIENT_ID)
        return self._admin

    def reachable(self) -> str:
        """The first bootstrap address that accepts a TCP connection; KafkaUnavailable if none does."""
        tried: list[str] = []
        for address in self.settings.bootstrap.split(","):
            host, _, port = address.strip().rpartition(":")
            host = host.strip("[]")
            try:
                with socket.create_connection((host, int(port)), timeout=min(self.timeout, 5.0)):
                    return address.strip()
            except (OSError, ValueError) as error:
                tried.append(f"{address.strip()} ({error.strerror if isinstance(error, OSError) else error})")
        raise KafkaUnavailable(f"no broker answers at {', '.join(tried)}")

    def cluster(self) -> frozenset[str]:
        """The operations allowed on the cluster (CREATE: topics may be created). Authenticates:
        a refused login or handshake is raised as such."""
        admin = self._client()
        try:
            described = admin.client.describe_cluster(include_authorized_operations=True,
                                                      request_timeout=self.timeout).result()
        except KafkaException as error:
            raise admin.failure(error, f"cannot reach Kafka at {self.settings.bootstrap}", "") from None
        if admin.refused is not None:
            raise admin.refused
        return _names(described.authorized_operations)

    def topic(self, topic: str) -> TopicAccess:
        admin = self._client()
        future = admin.client.describe_topics(TopicCollection([topic]), include_authorized_operations=True,
                                              request_timeout=self.timeout)[topic]
        try:
            described = future.result()
        except KafkaException as error:
            cause = error.args[0] if error.args else None
            if isinstance(cause, KafkaError) and cause.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                return TopicAccess(topic, exists=False)
            raise admin.failure(error, f"cannot describe topic {topic!r}", topic) from None
        return TopicAccess(topic, True, len(described.partitions), _names(described.authorized_operations))

    def group(self, group: str) -> GroupAccess:
        """The group's state and allowed operations. A broker whose group coordinator is still
        loading (its offsets topic is made on the first look-up) is asked again until `timeout`."""
        admin = self._client()
        deadline = time.monotonic() + self.timeout
        while True:
            future = admin.client.describe_consumer_groups([group], include_authorized_operations=True,
                                                           request_timeout=self.timeout)[group]
            try:
                described = future.result()
                break
            except KafkaException as error:
                cause = error.args[0] if error.args else None
                code = cause.code() if isinstance(cause, KafkaError) else None
                if code == KafkaError.GROUP_AUTHORIZATION_FAILED:
                    raise authorization(self.settings, "READ", "group", group) from None
                if code not in _COORDINATOR_MOVING or time.monotonic() > deadline:
                    raise admin.failure(error, f"cannot describe group {group!r}", "") from None
                time.sleep(0.5)
        state = getattr(described.state, "name", str(described.state))
        return GroupAccess(group, state, _names(described.authorized_operations))

    def close(self) -> None:
        self._admin = None  # librdkafka's admin client has no close: dropping it ends its threads
