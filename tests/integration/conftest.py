"""Fixtures for integration tests: a real Kafka broker and real embedded Redis and PostgreSQL.

Everything is started by the fixtures themselves (jars and binaries come from the project's own
cache and dependencies), once per session, under temporary state directories, and stopped at the
end. Set PROVISIONER_KAFKA_BOOTSTRAP to run against an existing broker instead of the dev broker.
Every test in this folder is marked `integration`. A test module that uses `kafka_client` (the
consumer suites: `pytest.mark.usefixtures("kafka_client")`) runs each test once per Kafka client;
one that takes `kafka` reaches the plaintext dev broker, or the secured one where it is parametrized
so (`secured.each_link`).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.local import devbroker, embedded, securebroker
from provisioner.stream.client import KAFKA_CLIENT_ENV, KAFKA_CLIENTS
from tests.integration.secured import USERS, KafkaLink, running_secure_broker, secured_link

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)


class ServerHandle:
    """An embedded server the tests may stop and start again (same data dir, same URL if the port
    is still free) to simulate an outage."""

    def __init__(self, kind: str, state_dir: Path) -> None:
        self.kind = kind
        self.state_dir = state_dir
        self.server = self._start()

    def _start(self) -> embedded.EmbeddedServer:
        starter = embedded.start_redis if self.kind == "redis" else embedded.start_postgres
        return starter(self.state_dir)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> str:
        self.server = self._start()
        return self.server.url

    def stop(self) -> None:
        embedded.stop(self.server)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get(devbroker.BOOTSTRAP_ENV, "").strip()
    if configured:
        devbroker.wait_ready(configured, timeout=30)
        yield configured
        return
    state_dir = tmp_path_factory.mktemp("kafka-state")
    bootstrap = devbroker.up(state_dir, port=0)  # any free port: a developer's broker may hold 9092
    try:
        yield bootstrap
    finally:
        devbroker.down(state_dir, purge=True)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    handle = ServerHandle("redis", tmp_path_factory.mktemp("redis-state"))
    try:
        yield handle
    finally:
        embedded.stop_all(handle.state_dir)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    handle = ServerHandle("postgres", tmp_path_factory.mktemp("postgres-state"))
    try:
        yield handle
    finally:
        embedded.stop_all(handle.state_dir)


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    """A fresh topic name (not created): the test's name plus a random suffix."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return f"it.{slug}.{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=KAFKA_CLIENTS)
def kafka_client(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each Kafka client in turn (in the test id), also set in PROVISIONER_KAFKA_CLIENT so that
    consumer processes started by the test use it."""
    client = str(request.param)
    monkeypatch.setenv(KAFKA_CLIENT_ENV, client)
    return client


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[securebroker.SecureBroker]:
    """The secured dev broker (SASL_SSL with the SCRAM users of `secured.USERS`, ACLs enforced), per
    module: a few tests use it, and its JVM is not kept running through the rest of the session."""
    with running_secure_broker(tmp_path_factory.mktemp("secure-kafka"), USERS) as broker:
        yield broker


@pytest.fixture
def kafka(request: pytest.FixtureRequest, kafka_bootstrap: str, tmp_path: Path) -> KafkaLink:
    """The plaintext dev broker, or the secured one when parametrized `"secured"`."""
    if getattr(request, "param", "plaintext") == "secured":
        return secured_link(request.getfixturevalue("secure_broker"), tmp_path)
    return KafkaLink(kafka_bootstrap, kafka_bootstrap)
