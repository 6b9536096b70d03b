"""`provisioner doctor`'s sorting of answers into checks: which check fails, which are skipped after
it, which hint each failure carries. The answers here are what a broker or a store would give
(real ones answer in tests/integration/test_doctor.py and test_store_tls.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from provisioner.errors import ProvisionerError
from provisioner.runtime.doctor import StoreTarget, failed, kafka_checks, store_checks
from provisioner.spec.loader import load_products
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.stores.access import StoreTLS
from provisioner.stores.probe import StoreProbe
from provisioner.stream.failures import KafkaAuthentication, KafkaUnavailable
from provisioner.stream.probe import GroupAccess, TopicAccess
from provisioner.stream.settings import KafkaSettings

SETTINGS = KafkaSettings(bootstrap="kafka:9093", security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                         sasl_username="orders", sasl_password="s3cret")
ALL = frozenset({"READ", "WRITE", "DESCRIBE", "CREATE"})


@pytest.fixture
def product(tmp_path: Path) -> DataProduct:
    path = tmp_path / "orders.yaml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct",
        "metadata": {"name": "orders", "namespace": "shop"},
        "spec": {"source": {"topic": "shop.orders", "format": "json"}, "fields": {"id": "event.id"}, "key": "id",
                 "stores": [{"name": "cache", "redis": {"keyPrefix": "o:"}}]},
    }))
    return load_products([path])[0].product


class Broker:
    """Answers as a broker would, from a table; an exception in it is raised."""

    def __init__(self, *, reachable: str | Exception = "kafka:9093", cluster: frozenset[str] | Exception = ALL,
                 topics: dict[str, TopicAccess] | None = None, groups: dict[str, GroupAccess] | None = None) -> None:
        self._reachable, self._cluster = reachable, cluster
        self._topics, self._groups = topics or {}, groups or {}
        self.asked: list[str] = []

    def reachable(self) -> str:
        self.asked.append("reachable")
        if isinstance(self._reachable, Exception):
            raise self._reachable
        return self._reachable

    def cluster(self) -> frozenset[str]:
        self.asked.append("cluster")
        if isinstance(self._cluster, Exception):
            raise self._cluster
        return self._cluster

    def topic(self, topic: str) -> TopicAccess:
        self.asked.append(topic)
        return self._topics.get(topic, TopicAccess(topic, exists=False))

    def group(self, group: str) -> GroupAccess:
        self.asked.append(group)
        return self._groups.get(group, GroupAccess(group, "DEAD", ALL))


def statuses(checks: list) -> dict[str, str]:  # type: ignore[type-arg]
    return {check.name: check.status for check in checks}


def test_a_healthy_broker_passes_and_a_missing_dead_letter_topic_is_created_later(product: DataProduct) -> None:
    broker = Broker(topics={"shop.orders": TopicAccess("shop.orders", True, 6, ALL)})
    checks = kafka_checks(SETTINGS, [product], broker)
    assert statuses(checks) == {
        "kafka broker answers": "ok", "kafka authentication": "ok", "kafka topic shop.orders readable": "ok",
        "kafka dead-letter topic orders.dlq writable": "ok", "kafka group provisioner.shop.orders.cache joinable": "ok"}
    assert not failed(checks)
    assert "created at the first dead letter" in checks[3].detail


def test_a_refused_login_fails_once_and_skips_what_it_hides(product: DataProduct) -> None:
    refused = KafkaAuthentication("Kafka at kafka:9093 refused user 'orders' (SCRAM-SHA-512)")
    broker = Broker(cluster=refused)
    checks = kafka_checks(SETTINGS, [product], broker)
    assert statuses(checks) == {
        "kafka broker answers": "ok", "kafka authentication": "fail", "kafka topic shop.orders readable": "skip",
        "kafka dead-letter topic orders.dlq writable": "skip",
        "kafka group provisioner.shop.orders.cache joinable": "skip"}
    assert "sasl.password" in checks[1].hint
    assert broker.asked == ["reachable", "cluster"]


def test_an_unreachable_broker_is_named_with_its_address_hint(product: DataProduct) -> None:
    checks = kafka_checks(SETTINGS, [product], Broker(reachable=KafkaUnavailable("no broker answers at kafka:9093")))
    assert checks[0].status == "fail" and "bootstrap.servers" in checks[0].hint
    assert {c.status for c in checks[1:]} == {"skip"}


def test_missing_permissions_name_the_grant(product: DataProduct) -> None:
    broker = Broker(
        cluster=frozenset({"DESCRIBE"}),
        topics={"shop.orders": TopicAccess("shop.orders", True, 3, frozenset({"DESCRIBE"}))},
        groups={"provisioner.shop.orders.cache": GroupAccess("provisioner.shop.orders.cache", "EMPTY",
                                                             frozenset({"DESCRIBE"}))})
    checks = {c.name: c for c in kafka_checks(SETTINGS, [product], broker)}
    assert checks["kafka topic shop.orders readable"].hint == "grant READ on topic shop.orders to User:orders"
    dead = checks["kafka dead-letter topic orders.dlq writable"]
    assert dead.status == "warn" and "grant CREATE and WRITE on topic orders.dlq to User:orders" in dead.hint
    group = checks["kafka group provisioner.shop.orders.cache joinable"]
    assert group.status == "fail" and "grant READ on group provisioner.shop.orders.cache" in group.hint


def test_store_checks_sort_verified_unverified_refused_and_unresolved(product: DataProduct) -> None:
    store: StoreSpec = product.spec.stores[0]
    answers: dict[str, StoreProbe | ProvisionerError] = {
        "rediss://ok": StoreProbe(True, True, "TLS, certificate and host name verified (rediss://)"),
        "redis://plain": StoreProbe(False, False, "not encrypted (redis://)"),
        "rediss://other-host": StoreTLS("redis rediss://other-host: cannot connect: TLS: not valid for host"),
    }

    def probe(product: DataProduct, store: StoreSpec, url: str) -> StoreProbe:
        answer = answers[url]
        if isinstance(answer, ProvisionerError):
            raise answer
        return answer

    targets = [StoreTarget(product, store, url, url) for url in answers]
    targets += [StoreTarget(product, store, None, "", problem=ProvisionerError("environment variable DB is not set")),
                StoreTarget(product, store, None, "managed", skip="managed store")]
    checks = store_checks(targets, probe)
    assert [c.status for c in checks] == ["ok", "warn", "fail", "fail", "skip"]
    assert "sslrootcert" in checks[2].hint and "--store-url" in checks[3].hint
    assert failed(checks)
