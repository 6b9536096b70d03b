"""Dead-letter production: the original record plus `provisioner.*` headers, acknowledged by Kafka.

Each store's consumer has its own producer, so a record refused by two stores is sent twice, and
the `provisioner.product` (`<namespace>/<name>`) and `provisioner.store` headers say which store
refused it (spec.md, "Per-record semantics"); a rebuild's dead letters also carry
`provisioner.version`, the fingerprint of the version being built.

The consumer calls `send_all` before committing the batch that passes the dead letters, and it only
commits when every send was acknowledged (acks=all), so a dead letter is never lost. A batch that is
then discarded (fencing, store outage) is processed again, so a dead letter may arrive twice: the
`provisioner.source.*` headers identify duplicates.

Brokers commonly refuse to auto-create topics, so the topic is created (broker defaults for
partitions and replication) the first time a dead letter needs it.

The producer uses the process's Kafka client (`stream.client`: confluent-kafka by default,
kafka-python when chosen) and its connection settings; a broker that refuses it (credentials, no
WRITE on the dead-letter topic, TLS) raises the mapped error from `failures`, which the consumer
backs off on, so the batch waits and nothing is lost.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, cast

from provisioner.errors import ProvisionerError
from provisioner.pipeline.ops import DeadLetter, RecordLike
from provisioner.stream.failures import KafkaUnavailable, from_confluent, from_kafka_python
from provisioner.stream.settings import (
    KafkaSettings,
    KafkaTarget,
    kafka_python_config,
    rdkafka_config,
    settings_of,
)

MAX_MESSAGE_BYTES = 4096
MAX_DEAD_LETTER_BYTES = 900_000
"""Most bytes of key, value and headers one dead letter carries. A refused record may be as large
as the broker takes (about 1 MiB by default) and the dead letter adds headers, which would put it
over the producer's and the broker's limits: it would then never be sent and its batch never
committed. So the value (then the key) of a larger record is cut to fit, and the dead letter says
so in `provisioner.value.truncated` / `provisioner.key.truncated` (the original length in bytes)."""
TRUNCATED_VALUE_HEADER = "provisioner.value.truncated"
TRUNCATED_KEY_HEADER = "provisioner.key.truncated"
# How long a send may wait for metadata or buffer space: an unreachable broker surfaces as an
# error the consumer backs off on, instead of a consumer stuck for the client's default minute.
MAX_BLOCK_MS = 10_000


def dead_letter_headers(
    record: RecordLike, dead_letter: DeadLetter, product: str, store: str, version: str | None = None
) -> list[tuple[str, bytes]]:
    """The original headers plus the seven `provisioner.*` headers of spec.md; `product` is
    `<namespace>/<name>`, `store` the name of the store whose consumer refused the record.

    A rebuild's consumer (a new version of the store hydrated beside the live one) adds an eighth,
    `provisioner.version`: the fingerprint of the spec it builds, so its dead letters can be told
    from the live version's (the same record may be refused by both)."""
    # A message may quote the bad value itself, lone surrogates included: never fail on it.
    message = dead_letter.message.encode("utf-8", "backslashreplace")[:MAX_MESSAGE_BYTES]
    headers = [
        *((name, value) for name, value in record.headers if not name.startswith("provisioner.")),
        ("provisioner.error.stage", dead_letter.stage.encode()),
        ("provisioner.error.message", message),
        ("provisioner.source.topic", record.topic.encode()),
        ("provisioner.source.partition", str(record.partition).encode()),
        ("provisioner.source.offset", str(record.offset).encode()),
        ("provisioner.product", product.encode()),
        ("provisioner.store", store.encode()),
    ]
    if version is not None:
        headers.append(("provisioner.version", version.encode()))
    return headers


class DeadLetterProducer:
    """An idempotent, acks=all producer for one dead-letter topic, on behalf of one store of one
    product (`product` is `<namespace>/<name>`), through `client` (`stream.client.KAFKA_CLIENTS`)."""

    def __init__(self, bootstrap: KafkaTarget, topic: str, client_id: str, *, product: str, store: str,
                 version: str | None = None, client: str = "confluent") -> None:
        self.topic = topic
        self.product = product
        self.store = store
        self.version = version
        connection = settings_of(bootstrap)
        self._sender: _Sender = (_ConfluentSender(connection, topic, client_id) if client == "confluent"
                                 else _KafkaPythonSender(connection, topic, client_id))

    def send_all(self, items: Sequence[tuple[RecordLike, DeadLetter]], timeout: float = 30.0) -> None:
        """Send and wait for every acknowledgement; raises (a Kafka error, or a refusal as ours)
        if any send failed."""
        self._sender.send_all(
            [fit((record.key, record.value, dead_letter_headers(record, dl, self.product, self.store, self.version)))
             for record, dl in items], timeout)

    def close(self) -> None:
        self._sender.close()


_Message = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


def fit(message: _Message, limit: int = MAX_DEAD_LETTER_BYTES) -> _Message:
    """`message` with its value, then its key, cut so the whole is at most `limit` bytes, each cut
    recorded in a header; a message that fits is returned as it is."""
    key, value, headers = message
    size = len(key or b"") + len(value or b"") + sum(len(name) + len(raw) for name, raw in headers)
    if size <= limit:
        return message
    headers = list(headers)
    over = size - limit + 64  # room for the headers added here
    if value is not None and over > 0:
        cut = min(len(value), over)
        headers.append((TRUNCATED_VALUE_HEADER, str(len(value)).encode()))
        value, over = value[:len(value) - cut], over - cut
    if key is not None and over > 0:
        cut = min(len(key), over)
        headers.append((TRUNCATED_KEY_HEADER, str(len(key)).encode()))
        key = key[:len(key) - cut]
    return key, value, headers


class _Sender(Protocol):
    def send_all(self, messages: Sequence[_Message], timeout: float) -> None: ...

    def close(self) -> None: ...


class _ConfluentSender:
    """librdkafka's producer and admin client. Its errors arrive in callbacks: a refusal reported
    to `error_cb` while a flush waits is raised once the flush gives up."""

    def __init__(self, connection: KafkaSettings, topic: str, client_id: str) -> None:
        from confluent_kafka import Producer

        from provisioner.stream.confluent import LIBRDKAFKA_LOGGER

        self._connection = connection
        self._topic = topic
        self._client_id = client_id
        self._topic_ready = False
        self._refused: ProvisionerError | None = None
        self._config = rdkafka_config(connection)
        self._producer = Producer({
            **self._config, "client.id": client_id, "acks": "all", "enable.idempotence": True,
            "linger.ms": 5, "message.timeout.ms": 30_000, "log.connection.close": False,
            "error_cb": self._on_error, "logger": LIBRDKAFKA_LOGGER,
        })

    def _on_error(self, error: Any) -> None:
        refused = from_confluent(error, self._connection, operation="WRITE", topic=self._topic)
        if refused is not None:
            self._refused = refused

    def _ensure_topic(self, timeout: float) -> None:
        if self._topic_ready:
            return
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

        from provisioner.stream.confluent import LIBRDKAFKA_LOGGER

        config: dict[str, Any] = {**self._config, "client.id": f"{self._client_id}-admin", "logger": LIBRDKAFKA_LOGGER}
        admin = AdminClient(config)
        future = admin.create_topics([NewTopic(self._topic)], request_timeout=MAX_BLOCK_MS / 1000)[self._topic]
        try:
            future.result(timeout=timeout)
        except KafkaException as error:
            cause = error.args[0] if error.args else None
            code = cause.code() if isinstance(cause, KafkaError) else None
            # A user allowed to WRITE a topic the platform made, but not to CREATE topics: producing
            # says whether the topic is there.
            if code not in (KafkaError.TOPIC_ALREADY_EXISTS, KafkaError.TOPIC_AUTHORIZATION_FAILED,
                            KafkaError.CLUSTER_AUTHORIZATION_FAILED):
                refused = from_confluent(error, self._connection, operation="CREATE", topic=self._topic)
                raise refused or self._refused or KafkaUnavailable(
                    f"cannot create dead-letter topic {self._topic!r}: {cause.str() if cause else error}") from None
        self._topic_ready = True

    def send_all(self, messages: Sequence[_Message], timeout: float) -> None:
        self._ensure_topic(timeout)
        failures: list[Any] = []

        def delivered(error: Any, message: Any) -> None:
            if error is not None:
                failures.append(error)

        for key, value, headers in messages:
            self._producer.produce(self._topic, key=key, value=value, on_delivery=delivered,
                                   headers=cast("list[tuple[str, str | bytes | None]]", headers))
        left = self._producer.flush(timeout)
        if failures:
            refused = from_confluent(failures[0], self._connection, operation="WRITE", topic=self._topic)
            raise refused or KafkaUnavailable(f"dead letters to {self._topic!r} not acknowledged: {failures[0].str()}")
        if left:
            refused, self._refused = self._refused, None
            raise refused or KafkaUnavailable(f"{left} dead letters to {self._topic!r} not acknowledged in "
                                              f"{timeout:.0f}s")

    def close(self) -> None:
        self._producer.flush(5)


class _KafkaPythonSender:
    """kafka-python's producer and admin client."""

    def __init__(self, connection: KafkaSettings, topic: str, client_id: str) -> None:
        from kafka import KafkaProducer

        self._connection = connection
        self._topic = topic
        self._client_id = client_id
        self._topic_ready = False
        with self._mapped("WRITE"):
            self._producer = KafkaProducer(
                **kafka_python_config(connection), acks="all", enable_idempotence=True, linger_ms=5,
                client_id=client_id, retries=5, max_block_ms=MAX_BLOCK_MS,
            )

    @contextmanager
    def _mapped(self, operation: str) -> Iterator[None]:
        """A refusal by the broker (credentials, an ACL on the dead-letter topic, TLS) raised as ours."""
        from kafka.errors import KafkaError

        try:
            yield
        except (KafkaError, OSError) as error:
            refused = from_kafka_python(error, self._connection, operation=operation, topic=self._topic)
            if refused is None:
                raise
            raise refused from None

    def _ensure_topic(self) -> None:
        if self._topic_ready:
            return
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        with self._mapped("CREATE"):
            admin = KafkaAdminClient(**kafka_python_config(self._connection), client_id=f"{self._client_id}-admin",
                                     request_timeout_ms=MAX_BLOCK_MS)
            try:
                admin.create_topics([NewTopic(self._topic, num_partitions=-1, replication_factor=-1)])
            except TopicAlreadyExistsError:
                pass
            finally:
                admin.close()
        self._topic_ready = True

    def send_all(self, messages: Sequence[_Message], timeout: float) -> None:
        self._ensure_topic()
        with self._mapped("WRITE"):
            futures = [self._producer.send(self._topic, key=key, value=value, headers=headers)
                       for key, value, headers in messages]
            self._producer.flush(timeout=timeout)
            for future in futures:
                future.get(timeout=timeout)

    def close(self) -> None:
        self._producer.close(timeout=5)
