"""Stores over TLS: Postgres that accepts `hostssl` only and Redis with a TLS port only and ACL users,
both with a server certificate from a test CA made with the openssl CLI. A consumer hydrates each
exactly over `sslmode=verify-full` / `rediss://`; a certificate for another host, an untrusted CA,
a wrong password, a plain connection and a user without the rights are each one clear line naming
the kind (TLS, authentication, authorization), in an exception and in a running consumer's status,
never with the password."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner.errors import AccessError
from provisioner.kube.render import RenderOptions, render
from provisioner.local import securebroker
from provisioner.stores.access import StoreAuthentication, StoreAuthorization, StoreTLS
from provisioner.stores.registry import open_store
from provisioner.stores.versions import open_versions
from tests import podcontract
from tests.integration import harness as h
from tests.integration import tls_stores
from tests.integration.test_consumer_stores import STORES, assert_contents, unique_name

pytestmark = pytest.mark.integration

REDIS_USERS = {"app": "~* &* +@all", "reader": "~* +@read +@connection"}


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tls_stores.Certificates:
    return tls_stores.make_certificates(tmp_path_factory.mktemp("store-certs"))


@pytest.fixture(scope="module")
def tls_postgres(tmp_path_factory: pytest.TempPathFactory,
                 certificates: tls_stores.Certificates) -> Iterator[tls_stores.TlsPostgres]:
    with tls_stores.tls_postgres(tmp_path_factory.mktemp("tls-postgres"), certificates) as server:
        yield server


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory,
              certificates: tls_stores.Certificates) -> Iterator[tls_stores.TlsRedis]:
    with tls_stores.tls_redis(tmp_path_factory.mktemp("tls-redis"), certificates, REDIS_USERS) as server:
        yield server


def product_for(tmp_path: Path, topic: str, kind: str) -> tuple[Path, Any, Any]:
    spec = h.order_spec(tmp_path, name=unique_name(topic), topic=topic, stores=[STORES[kind]], batch_size=300)
    product = h.load_product(spec)
    return spec, product, product.spec.stores[0]


@pytest.mark.parametrize("kind", ["postgres-upsert", "redis-hash"])
def test_a_consumer_hydrates_a_store_exactly_over_verified_tls(
    kind: str, kafka_bootstrap: str, tls_postgres: tls_stores.TlsPostgres, tls_redis: tls_stores.TlsRedis,
    topic: str, tmp_path: Path,
) -> None:
    spec, product, store_spec = product_for(tmp_path, topic, kind)
    url = tls_postgres.url() if kind.startswith("postgres") else tls_redis.url("app")
    h.create_topic(kafka_bootstrap, topic, partitions=3)
    h.produce(kafka_bootstrap, topic, h.order_events(1500, seed=16, keys=300))
    consumer = h.ConsumerProcess(spec, store_spec.name, kafka_bootstrap, url, tmp_path, "tls").start()
    try:
        ends = h.end_offsets(kafka_bootstrap, topic)
        h.wait_caught_up(product, store_spec, url, ends, timeout=120, consumers=[consumer])
        assert_contents(kind, product, store_spec, url, h.expected_for(product, store_spec,
                                                                       h.read_topic(kafka_bootstrap, topic)))
        # The version record the consumer wrote went over the same verified connection.
        versions = open_versions(product, store_spec, url)
        try:
            assert versions.read() is not None
        finally:
            versions.close()
        assert consumer.stop() == 0
    finally:
        consumer.kill()
    assert consumer.status()["last_error"] is None
    assert "Traceback" not in consumer.log()


def test_a_client_certificate_in_the_url_lets_its_user_in(tls_postgres: tls_stores.TlsPostgres,
                                                          certificates: tls_stores.Certificates,
                                                          tmp_path: Path) -> None:
    _, product, store_spec = product_for(tmp_path, "tls.pg.mtls", "postgres-upsert")
    store = open_store(product, store_spec, tls_postgres.url(user=tls_stores.CERT_USER, client=certificates.client))
    try:
        store.ensure_schema()
        assert store.read_positions() == {}
    finally:
        store.close()


def refused(product: Any, store_spec: Any, url: str) -> AccessError:
    store = open_store(product, store_spec, url, timeout=5)
    try:
        with pytest.raises(AccessError) as raised:
            store.ensure_schema()
            store.read_positions()
    finally:
        store.close()
    return raised.value


POSTGRES_CASES = {
    "certificate for another host": ({"host": "127.0.0.1"}, StoreTLS,
                                     "TLS: the server's certificate is not valid for host 127.0.0.1"),
    "untrusted CA": ({"rootcert": "other"}, StoreTLS, "TLS: the server's certificate for host localhost is not "
                                                       "signed by a trusted CA"),
    "wrong password": ({"password": "wrong"}, StoreAuthentication,
                       "authentication: user 'postgres' was refused (wrong password"),
    "no TLS": ({"sslmode": "disable"}, StoreTLS, "TLS: localhost accepts only TLS connections"),
    "no client certificate": ({"user": tls_stores.CERT_USER}, StoreTLS,
                              "TLS: the server requires a client certificate (set sslcert and sslkey)"),
    "client certificate from another CA": ({"user": tls_stores.CERT_USER, "client": "intruder"}, StoreTLS,
                                           "TLS: the server refused our client certificate"),
}


@pytest.mark.parametrize("case", list(POSTGRES_CASES))
def test_postgres_refusals_are_one_clear_line(case: str, tls_postgres: tls_stores.TlsPostgres,
                                             certificates: tls_stores.Certificates, tmp_path: Path) -> None:
    _, product, store_spec = product_for(tmp_path, "tls.pg.refused", "postgres-upsert")
    arguments, kind, expected = POSTGRES_CASES[case]
    if arguments.get("rootcert") == "other":
        arguments = {**arguments, "rootcert": certificates.other_ca}
    if arguments.get("client") == "intruder":
        other = securebroker.make_ca(tmp_path, "intruder-ca", "an intruder's CA")
        arguments = {**arguments, "client": securebroker.make_certificate(tmp_path, "intruder",
                                                                          tls_stores.CERT_USER, other)}
    error = refused(product, store_spec, tls_postgres.url(**arguments))
    assert type(error) is kind
    assert expected in str(error)
    assert "\n" not in str(error)
    assert tls_postgres.password not in str(error) and "password=" not in str(error)


REDIS_CASES = {
    "certificate for another host": ("app", {"host": "127.0.0.1"}, StoreTLS,
                                     "TLS: the server's certificate is not valid for host 127.0.0.1"),
    "untrusted CA": ("app", {"ca": "other"}, StoreTLS,
                     "TLS: the server's certificate for host localhost is not signed by a trusted CA"),
    "wrong password": ("app", {"password": "wrong"}, StoreAuthentication,
                       "authentication: user 'app' was refused"),
    "read-only user": ("reader", {}, StoreAuthorization,
                       "authorization: this user has no permissions to run the 'evalsha' command"),
}


@pytest.mark.parametrize("case", list(REDIS_CASES))
def test_redis_refusals_are_one_clear_line(case: str, tls_redis: tls_stores.TlsRedis,
                                          certificates: tls_stores.Certificates, tmp_path: Path) -> None:
    _, product, store_spec = product_for(tmp_path, "tls.redis.refused", "redis-hash")
    user, arguments, kind, expected = REDIS_CASES[case]
    if arguments.get("ca") == "other":
        arguments = {**arguments, "ca": certificates.other_ca}
    url = tls_redis.url(user, **arguments)
    if case == "read-only user":
        store = open_store(product, store_spec, url, timeout=5)
        try:
            store.ensure_schema()  # PING is allowed: connecting and authenticating work
            with pytest.raises(AccessError) as raised:
                store.apply([], start={}, end={0: 1})
        finally:
            store.close()
        error: AccessError = raised.value
    else:
        error = refused(product, store_spec, url)
    assert type(error) is kind
    assert expected in str(error)
    assert "\n" not in str(error)
    assert all(password not in str(error) for password in tls_redis.users.values())


def test_a_consumer_refused_by_its_store_says_why_in_its_status_and_keeps_retrying(
    kafka_bootstrap: str, tls_postgres: tls_stores.TlsPostgres, topic: str, tmp_path: Path,
) -> None:
    spec, _product, store_spec = product_for(tmp_path, topic, "postgres-upsert")
    canary = "canary-" + secrets.token_hex(8)
    h.create_topic(kafka_bootstrap, topic, partitions=1)
    h.produce(kafka_bootstrap, topic, h.order_events(10, seed=2))
    consumer = h.ConsumerProcess(spec, store_spec.name, kafka_bootstrap, tls_postgres.url(password=canary),
                                 tmp_path, "refused").start()
    try:
        def says() -> bool:
            assert consumer.alive(), consumer.log()[-3000:]
            return str(consumer.status().get("last_error") or "").startswith("StoreAuthentication:")

        h.wait_for(says, 120, "the status to name the refusal",
                   on_timeout=lambda: json.dumps(consumer.status()) + consumer.log()[-3000:])
        status = consumer.status()
        assert "user 'postgres' was refused" in status["last_error"]
        assert status["records"] == 0
        assert consumer.stop() == 0
    finally:
        consumer.kill()
    assert canary not in consumer.log() and canary not in consumer.status_path.read_text()
    assert "Traceback" not in consumer.log()


def test_doctor_verifies_tls_stores_and_names_a_certificate_for_another_host(
    kafka_bootstrap: str, tls_postgres: tls_stores.TlsPostgres, tls_redis: tls_stores.TlsRedis, topic: str,
    tmp_path: Path,
) -> None:
    stores = [{**STORES["redis-hash"], "redis": {**STORES["redis-hash"]["redis"], "connection": {"url": "${CACHE}"}}},
              {**STORES["postgres-upsert"],
               "postgres": {**STORES["postgres-upsert"]["postgres"], "connection": {"url": "${DB}"}}}]
    spec = h.order_spec(tmp_path, name="doctor-tls", topic=topic, stores=stores)
    h.create_topic(kafka_bootstrap, topic)

    def doctor(cache: str, db: str) -> tuple[int, dict[str, Any]]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROVISIONER_")}
        result = subprocess.run(
            [sys.executable, "-m", "provisioner", "doctor", str(spec), "--bootstrap", kafka_bootstrap,
             "--state-dir", str(tmp_path / "state"), "-o", "json"],
            capture_output=True, text=True, env={**env, "CACHE": cache, "DB": db}, cwd=str(h.ROOT), timeout=300,
            check=False)
        assert tls_postgres.password not in result.stdout + result.stderr
        assert all(p not in result.stdout + result.stderr for p in tls_redis.users.values())
        return result.returncode, {c["name"]: c for c in json.loads(result.stdout)["checks"]}

    code, checks = doctor(tls_redis.url("app"), tls_postgres.url())
    assert code == 0
    assert checks["store itest/doctor-tls/cache"]["status"] == "ok"
    assert "TLS, certificate and host name verified (rediss://)" in checks["store itest/doctor-tls/cache"]["detail"]
    assert "TLS, certificate and host name verified (sslmode=verify-full)" in \
        checks["store itest/doctor-tls/db"]["detail"]
    code, checks = doctor(tls_redis.url("reader"), tls_postgres.url(host="127.0.0.1"))
    assert code == 1
    db, cache = checks["store itest/doctor-tls/db"], checks["store itest/doctor-tls/cache"]
    assert db["status"] == "fail" and "TLS: the server's certificate is not valid for host 127.0.0.1" in db["detail"]
    assert "sslrootcert" in db["hint"]
    assert cache["status"] == "fail" and "authorization: this user has no permissions to run the 'eval'" in \
        cache["detail"]


def test_a_rendered_consumer_finds_its_certificates_in_the_mounted_secret_holding_its_url(
    kafka_bootstrap: str, tls_postgres: tls_stores.TlsPostgres, certificates: tls_stores.Certificates, topic: str,
    tmp_path: Path,
) -> None:
    """The consumer Deployment as rendered, run as a kubelet would run it: the Secret holding the URL
    mounted, the URL naming the CA, client certificate and key by their keys in that Secret (the
    certificate user must present a client certificate)."""
    # Its own table: the module's other tests hydrate `orders` on the same server.
    store = {**STORES["postgres-upsert"], "postgres": {**STORES["postgres-upsert"]["postgres"], "table": "orders_mounted",
                                                       "connection": {"secretRef": {"name": "db-tls", "key": "url"}}}}
    product = h.load_product(h.order_spec(tmp_path, name=unique_name(topic), topic=topic, stores=[store],
                                          batch_size=300))
    store_spec = product.spec.stores[0]
    in_secret = tls_postgres.url(user=tls_stores.CERT_USER, rootcert=Path("ca.pem"),
                                 client=(Path("client.pem"), Path("client.key")))
    cluster = {"db-tls": {"url": in_secret, "ca.pem": certificates.ca.read_text(encoding="ascii"),
                          "client.pem": certificates.client[0].read_text(encoding="ascii"),
                          "client.key": certificates.client[1].read_text(encoding="ascii")}}
    (rendered,) = render([product], RenderOptions(kafka_bootstrap="kafka.platform:9092", with_secrets=True))
    objects = list(rendered.objects)
    (deployment,) = podcontract.consumer_deployments(objects)
    h.create_topic(kafka_bootstrap, topic, partitions=2)
    h.produce(kafka_bootstrap, topic, h.order_events(600, seed=23, keys=120))
    pod = podcontract.start(deployment, objects, tmp_path, cluster_secrets=cluster,
                            env_overrides={"PROVISIONER_KAFKA_BOOTSTRAP": kafka_bootstrap})
    url = tls_postgres.url(user=tls_stores.CERT_USER, client=certificates.client)  # the same files, from here
    try:
        ends = h.end_offsets(kafka_bootstrap, topic)
        try:
            h.wait_caught_up(product, store_spec, url, ends, timeout=120)
        except AssertionError:
            raise AssertionError(pod.log()[-3000:]) from None
        assert_contents("postgres-upsert", product, store_spec, url,
                        h.expected_for(product, store_spec, h.read_topic(kafka_bootstrap, topic)))
        assert pod.stop() == 0
    finally:
        pod.stop()
    log = pod.log()
    assert "Traceback" not in log and tls_postgres.password not in log
