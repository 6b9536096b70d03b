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
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from provisioner.pipeline.ops import DeadLetter, RecordLike
from provisioner.stream.failures import from_kafka_python
from provisioner.stream.settings import KafkaTarget, kafka_python_config, settings_of

MAX_MESSAGE_BYTES = 4096
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
    product (`product` is `<namespace>/<name>`)."""

    def __init__(self, bootstrap: KafkaTarget, topic: str, client_id: str, *, product: str, store: str,
                 version: str | None = None) -> None:
        self.topic = topic
        self.product = product
        self.store = store
        self.version = version
        self._connection = settings_of(bootstrap)
        self._client_id = client_id
        self._topic_ready = False
        with self._mapped("WRITE"):
            self._producer = KafkaProducer(
                **kafka_python_config(self._connection),
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                client_id=client_id,
                retries=5,
                max_block_ms=MAX_BLOCK_MS,
            )

    @contextmanager
    def _mapped(self, operation: str) -> Iterator[None]:
        """A refusal by the broker (credentials, an ACL on the dead-letter topic, TLS) raised as ours."""
        try:
            yield
        except (KafkaError, OSError) as error:
            refused = from_kafka_python(error, self._connection, operation=operation, topic=self.topic)
            if refused is None:
                raise
            raise refused from None

    def _ensure_topic(self) -> None:
        if self._topic_ready:
            return
        with self._mapped("CREATE"):
            admin = KafkaAdminClient(**kafka_python_config(self._connection), client_id=f"{self._client_id}-admin",
                                     request_timeout_ms=MAX_BLOCK_MS)
            try:
                admin.create_topics([NewTopic(self.topic, num_partitions=-1, replication_factor=-1)])
            except TopicAlreadyExistsError:
                pass
            finally:
                admin.close()
        self._topic_ready = True

    def send_all(self, items: Sequence[tuple[RecordLike, DeadLetter]], timeout: float = 30.0) -> None:
        """Send and wait for every acknowledgement; raises (KafkaError, or a refusal as ours) if
        any send failed."""
        self._ensure_topic()
        with self._mapped("WRITE"):
            futures: list[Any] = [
                self._producer.send(
                    self.topic, key=record.key, value=record.value,
                    headers=dead_letter_headers(record, dl, self.product, self.store, self.version),
                )
                for record, dl in items
            ]
            self._producer.flush(timeout=timeout)
            for future in futures:
                future.get(timeout=timeout)

    def close(self) -> None:
        self._producer.close(timeout=5)
