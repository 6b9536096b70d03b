"""The secured dev broker for integration tests: its users, ACL grants, and `KafkaLink`, which lets
one test body run against either the plaintext dev broker or the secured one (SASL_SSL, SCRAM-SHA-512,
ACLs enforced), its consumer processes given `--kafka-config` with a client.properties file."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from provisioner.local import securebroker
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.stream.client import KAFKA_CLIENTS
from provisioner.stream.settings import KafkaTarget, rdkafka_config
from tests.integration import harness as h

# A password that must never be seen outside the properties file.
CANARY = "canary-" + secrets.token_hex(8)
USERS = {"orders": CANARY, "stranger": "stranger-" + secrets.token_hex(4)}


@contextmanager
def running_secure_broker(state_dir: Path, users: dict[str, str]) -> Iterator[securebroker.SecureBroker]:
    """The secured dev broker with SCRAM `users` (name -> password), removed afterwards."""
    broker = securebroker.up(state_dir, users=users)
    try:
        yield broker
    finally:
        securebroker.down(state_dir, purge=True)


def grant(broker: securebroker.SecureBroker, user: str, kind: Any, name: str, *operations: Any,
          pattern: Any = ResourcePatternType.LITERAL) -> None:
    admin = AdminClient(rdkafka_config(broker.admin()))
    bindings = [AclBinding(kind, name, pattern, f"User:{user}", "*", operation, AclPermissionType.ALLOW)
                for operation in operations]
    for future in admin.create_acls(bindings).values():
        future.result(timeout=30)


def grant_product(broker: securebroker.SecureBroker, user: str, product: DataProduct, store_spec: StoreSpec,
                  *, topic: bool = True) -> None:
    """The ACLs a product's Kafka user needs: READ its topic and its store's groups (a rebuild's
    group adds a suffix: hence a prefix), WRITE its dead-letter topic."""
    if topic:
        grant(broker, user, ResourceType.TOPIC, product.spec.source.topic, AclOperation.READ)
    grant(broker, user, ResourceType.GROUP, product.consumer_group(store_spec), AclOperation.READ,
          pattern=ResourcePatternType.PREFIXED)
    grant(broker, user, ResourceType.TOPIC, product.dead_letter_topic, AclOperation.WRITE, AclOperation.CREATE)


def properties(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "client.properties"
    path.write_text(text)
    path.chmod(0o600)
    return path


@dataclass(frozen=True)
class KafkaLink:
    """How a test reaches Kafka: `admin` for its own calls (create, produce, read back), and what its
    consumer processes are given: `--bootstrap` and, on the secured broker, `--kafka-config` with
    the `orders` user, who may touch only what `allow` grants."""

    admin: KafkaTarget
    bootstrap: str
    config: Path | None = None
    broker: securebroker.SecureBroker | None = None

    def allow(self, product: DataProduct, store_spec: StoreSpec) -> None:
        """Grant the consumers' user what `product`'s store needs (everything is allowed in plaintext)."""
        if self.broker is not None:
            grant_product(self.broker, "orders", product, store_spec)

    def consumer(self, spec: Path, store: str, url: str, workdir: Path, name: str,
                 env: dict[str, str] | None = None) -> h.ConsumerProcess:
        return h.ConsumerProcess(spec, store, self.bootstrap, url, workdir, name, env=env, kafka_config=self.config)


def secured_link(broker: securebroker.SecureBroker, tmp_path: Path) -> KafkaLink:
    config = properties(tmp_path, broker.scram_properties("orders", USERS["orders"]))
    return KafkaLink(broker.admin(), broker.scram_bootstrap, config, broker)


def each_link(kinds: Sequence[str], secured_kind: str) -> pytest.MarkDecorator:
    """Parametrize `kind`, `kafka_client` and `kafka`: each store kind with each client over the
    plaintext dev broker, and `secured_kind` with the confluent client over the secured broker."""
    cases = [pytest.param(kind, client, "plaintext", id=f"{kind}-{client}") for kind in kinds
             for client in KAFKA_CLIENTS]
    cases.append(pytest.param(secured_kind, "confluent", "secured", id=f"{secured_kind}-confluent-sasl_ssl"))
    return pytest.mark.parametrize(("kind", "kafka_client", "kafka"), cases, indirect=["kafka_client", "kafka"])
