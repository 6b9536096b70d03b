"""`provisioner consume --kafka-config` against the secured dev broker (SASL_SSL with SCRAM-SHA-512
users, a CA made with openssl, ACLs enforced by StandardAuthorizer): a real store hydrated exactly
with dead letters over the same connection; a wrong password, an untrusted CA and a missing ACL
each a clear status while the consumer stays up, retries and sends no dead letter; the granted
ACL resumes it; and the password appears in no log line or status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AclOperation, ResourceType  # type: ignore[attr-defined]

from provisioner.local import embedded, securebroker
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.stream.failures import KafkaAuthentication, KafkaAuthorization, KafkaTLS
from provisioner.stream.kafka import KafkaUnavailable, OutgoingRecord, end_offsets, ensure_topic, produce_records
from provisioner.stream.observe import KafkaObserver
from provisioner.stream.settings import load_kafka_settings
from tests.integration import harness as h
from tests.integration.secured import CANARY, USERS, grant, grant_product, properties
from tests.integration.test_consumer_stores import STORES, assert_contents, reset_store, unique_name

pytestmark = pytest.mark.integration


def prepare(broker: securebroker.SecureBroker, tmp_path: Path, topic: str,
            redis_server: Any) -> tuple[DataProduct, StoreSpec, str]:
    path = h.order_spec(tmp_path, name=unique_name(topic), topic=topic, stores=[STORES["redis-hash"]])
    product = h.load_product(path)
    store_spec = product.spec.stores[0]
    url = str(redis_server.url)
    reset_store(product, store_spec, url)
    ensure_topic(broker.admin(), topic)
    return product, store_spec, url


def consumer(broker: securebroker.SecureBroker, tmp_path: Path, product: DataProduct, config: Path,
             url: str, name: str) -> h.ConsumerProcess:
    spec = tmp_path / f"{product.name}.yaml"
    return h.ConsumerProcess(spec, product.spec.stores[0].name, broker.scram_bootstrap, url, tmp_path, name,
                             env={"PROVISIONER_KAFKA_CONFIG": str(config)})


def dead_letters_sent(broker: securebroker.SecureBroker, product: DataProduct) -> int:
    try:
        return sum(end_offsets(broker.admin(), product.dead_letter_topic).values())
    except KafkaUnavailable:
        return 0  # the topic was never created: nothing was sent


def assert_no_secret(process: h.ConsumerProcess) -> None:
    assert CANARY not in process.log()
    assert CANARY not in process.status_path.read_text()
    assert "Traceback" not in process.log()


def wait_for_error(process: h.ConsumerProcess, prefix: str) -> str:
    def says() -> bool:
        assert process.alive(), process.log()[-3000:]
        return str(process.status().get("last_error") or "").startswith(prefix)

    h.wait_for(says, 120, f"status to say {prefix}", on_timeout=lambda: json.dumps(process.status())
               + process.log()[-3000:])
    return str(process.status()["last_error"])


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_consume_hydrates_redis_over_sasl_ssl_with_dead_letters(
    secure_broker: securebroker.SecureBroker, tmp_path: Path, redis_server: Any, client: str,
) -> None:
    product, store_spec, url = prepare(secure_broker, tmp_path, f"secured.orders.{client}", redis_server)
    grant_product(secure_broker, "orders", product, store_spec)
    admin = secure_broker.admin()
    events = h.order_events(600, seed=16, keys=150)
    poison = h.poison_events()
    h.produce(admin, product.spec.source.topic, [*events[:300], poison["decode"], *events[300:], poison["fields"]])
    # A Java client's file, pasted as it is: the JAAS line and a PEM trust store.
    config = properties(tmp_path, f"""# orders team, SCRAM over TLS
bootstrap.servers={secure_broker.scram_bootstrap}
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\
    username="orders" password="${{ORDERS_PASSWORD}}";
ssl.truststore.type=PEM
ssl.truststore.location={secure_broker.ca}
""")
    process = consumer(secure_broker, tmp_path, product, config, url, "hydrate")
    process.env["ORDERS_PASSWORD"] = CANARY
    process.env["PROVISIONER_KAFKA_CLIENT"] = client
    process.start()
    try:
        ends = h.end_offsets(admin, product.spec.source.topic)
        h.wait_caught_up(product, store_spec, url, ends, 180, [process])
        records = h.read_topic(admin, product.spec.source.topic)
        assert_contents("redis-hash", product, store_spec, url, h.expected_for(product, store_spec, records))
        dead = h.read_dead_letters(admin, product.dead_letter_topic, 2)
        assert sorted(dict(d.headers)["provisioner.error.stage"] for d in dead) == [b"decode", b"fields"]
        assert process.status()["last_error"] is None
        # The operator's status reader, with the same settings.
        observer = KafkaObserver(admin)
        try:
            assert observer.end_offsets(product.spec.source.topic) == ends
            assert observer.dead_letters(product.dead_letter_topic) == {(f"itest/{product.name}", "cache"): 2}
        finally:
            observer.close()
    finally:
        assert process.stop() == 0
    assert_no_secret(process)


@pytest.mark.parametrize("failure", ["wrong password", "untrusted CA"])
def test_a_refused_connection_is_a_clear_status_and_the_consumer_stays_up(
    secure_broker: securebroker.SecureBroker, tmp_path: Path, redis_server: Any, failure: str,
) -> None:
    topic = "secured.refused." + failure.split(maxsplit=1)[0]
    product, store_spec, url = prepare(secure_broker, tmp_path, topic, redis_server)
    grant_product(secure_broker, "orders", product, store_spec)
    h.produce(secure_broker.admin(), topic, [h.poison_events()["decode"], *h.order_events(20, seed=3)])
    if failure == "wrong password":
        text, expected = secure_broker.scram_properties("orders", "not-" + CANARY), (
            "KafkaAuthentication: Kafka at", "refused user 'orders' (SCRAM-SHA-512): wrong user name or password")
    else:
        other_ca, _ = securebroker.make_ca(tmp_path, "other-ca", "some other CA")
        text, expected = secure_broker.scram_properties("orders", CANARY, ca=other_ca), (
            "KafkaTLS: the broker's certificate is not trusted for host 127.0.0.1", str(other_ca))
    process = consumer(secure_broker, tmp_path, product, properties(tmp_path, text), url, "refused").start()
    try:
        message = wait_for_error(process, expected[0])
        assert expected[1] in message
        assert process.status()["state"] in ("backoff", "running")
        assert process.status()["records"] == 0 and process.status()["dead_letters"] == 0
    finally:
        assert process.stop() == 0
    assert dead_letters_sent(secure_broker, product) == 0
    assert_no_secret(process)


def test_a_missing_acl_names_the_topic_and_granting_it_resumes(
    secure_broker: securebroker.SecureBroker, tmp_path: Path, redis_server: Any,
) -> None:
    product, store_spec, url = prepare(secure_broker, tmp_path, "secured.acl", redis_server)
    grant_product(secure_broker, "stranger", product, store_spec, topic=False)
    admin = secure_broker.admin()
    h.produce(admin, product.spec.source.topic, h.order_events(300, seed=5, keys=80))
    config = properties(tmp_path, secure_broker.scram_properties("stranger", USERS["stranger"]))
    process = consumer(secure_broker, tmp_path, product, config, url, "acl").start()
    try:
        message = wait_for_error(process, "KafkaAuthorization:")
        assert f"user 'stranger' is not allowed to READ topic '{product.spec.source.topic}'" in message
        assert process.status()["dead_letters"] == 0
        grant(secure_broker, "stranger", ResourceType.TOPIC, product.spec.source.topic, AclOperation.READ)
        ends = h.end_offsets(admin, product.spec.source.topic)
        h.wait_caught_up(product, store_spec, url, ends, 180, [process])
        records = h.read_topic(admin, product.spec.source.topic)
        assert_contents("redis-hash", product, store_spec, url, h.expected_for(product, store_spec, records))
        assert process.status()["dead_letters"] == 0
    finally:
        assert process.stop() == 0
    assert dead_letters_sent(secure_broker, product) == 0
    assert "Traceback" not in process.log()


def cli(state: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVISIONER_KAFKA")}
    # Files, not pipes: the embedded servers `up` starts outlive it and would hold a pipe open.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.run([sys.executable, "-m", "provisioner", *args, "--state-dir", str(state)],
                                 stdout=out, stderr=err, stdin=subprocess.DEVNULL, env={**env, "COLUMNS": "200"},
                                 timeout=timeout, check=False, cwd=str(h.ROOT))
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(process.args, process.returncode, out.read(), err.read())
    assert CANARY not in result.stdout + result.stderr
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def test_produce_up_status_replay_down_with_one_properties_file(
    secure_broker: securebroker.SecureBroker, tmp_path: Path,
) -> None:
    folder, state = tmp_path / "specs", tmp_path / "state"
    folder.mkdir()
    path = h.order_spec(folder, name="secured-up", topic="secured.up", stores=[STORES["redis-hash"]])
    product = h.load_product(path)
    store_spec = product.spec.stores[0]
    grant_product(secure_broker, "orders", product, store_spec)
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps({"key": key.decode(), "value": json.loads(value)}) + "\n"
                              for key, value, _ in h.order_events(400, seed=9, keys=60, tombstones=False)))
    cli(state, "dev", "produce", "secured.up", str(events), "--kafka-config", str(secure_broker.admin_properties))
    config = properties(tmp_path, secure_broker.scram_properties("orders", CANARY))
    try:
        cli(state, "up", str(folder), "--kafka-config", str(config), "--until-caught-up", "--timeout", "240")
        report = json.loads(cli(state, "status", "-o", "json").stdout)
        [store] = report["stores"]
        assert store["lag"] == 0 and store["position"] == store["end_offset"] == 400
        expected = h.expected_for(product, store_spec, h.read_topic(secure_broker.admin(), "secured.up"))
        server = embedded.find("redis", state)
        assert server is not None and ":***@" in store["store_url"]  # status shows the URL masked
        url = embedded.space_url(server, product.metadata.namespace, product.name)
        assert_contents("redis-hash", product, store_spec, url, expected)
        # A replay reads its start offsets and rebuilds in a new consumer group, over the same connection.
        assert "rebuilt" in cli(state, "replay", product.name, "--store", store_spec.name, "--timeout", "120").stdout
        assert_contents("redis-hash", product, store_spec, url, expected)
    finally:
        cli(state, "down")
    leaked = [p for p in state.rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]
    assert not leaked
    cli(state, "down", "--purge")


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_topic_look_ups_name_a_missing_acl(secure_broker: securebroker.SecureBroker, tmp_path: Path,
                                           client: str) -> None:
    topic = f"secured.lookup.{client}"
    ensure_topic(secure_broker.admin(), topic)
    assert set(end_offsets(secure_broker.admin(), topic, client=client)) == {0, 1, 2}
    stranger = properties(tmp_path, secure_broker.scram_properties("stranger", USERS["stranger"]))
    settings = load_kafka_settings(stranger, None)
    assert settings is not None
    with pytest.raises(KafkaAuthorization, match=f"user 'stranger' is not allowed to DESCRIBE topic '{topic}'"):
        end_offsets(settings, topic, client=client)


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_producing_without_write_names_the_topic_and_with_it_lands(secure_broker: securebroker.SecureBroker,
                                                                   tmp_path: Path, client: str) -> None:
    topic = f"secured.produce.{client}"
    ensure_topic(secure_broker.admin(), topic, client=client)
    stranger = load_kafka_settings(properties(tmp_path, secure_broker.scram_properties("stranger",
                                                                                        USERS["stranger"])), None)
    assert stranger is not None
    records = [OutgoingRecord(value=b"{}", key=f"k{n}") for n in range(10)]
    with pytest.raises(KafkaAuthorization, match=f"user 'stranger' is not allowed to WRITE topic '{topic}'"):
        produce_records(stranger, topic, records, client=client)
    assert sum(end_offsets(secure_broker.admin(), topic, client=client).values()) == 0
    grant(secure_broker, "stranger", ResourceType.TOPIC, topic, AclOperation.WRITE)
    assert produce_records(stranger, topic, records, client=client) == 10
    assert sum(end_offsets(secure_broker.admin(), topic, client=client).values()) == 10


def test_librdkafka_look_ups_name_wrong_credentials_and_an_untrusted_ca(
    secure_broker: securebroker.SecureBroker, tmp_path: Path,
) -> None:
    ensure_topic(secure_broker.admin(), "secured.lookup.refused")
    wrong = load_kafka_settings(properties(tmp_path, secure_broker.scram_properties("orders", "wrong")), None)
    assert wrong is not None
    with pytest.raises(KafkaAuthentication, match="refused user 'orders'"):
        end_offsets(wrong, "secured.lookup.refused", client="confluent")
    with pytest.raises(KafkaAuthentication, match="refused user 'orders'"):
        produce_records(wrong, "secured.lookup.refused", [OutgoingRecord(value=b"{}")], client="confluent")
    other_ca, _ = securebroker.make_ca(tmp_path, "other-ca", "some other CA")
    untrusted = load_kafka_settings(properties(tmp_path, secure_broker.scram_properties("orders", CANARY,
                                                                                         ca=other_ca)), None)
    assert untrusted is not None
    with pytest.raises(KafkaTLS, match=r"not trusted for host 127\.0\.0\.1") as raised:
        end_offsets(untrusted, "secured.lookup.refused", client="confluent")
    assert CANARY not in str(raised.value)


def test_mutual_tls_reads_with_the_certificates_acl_and_refuses_a_certificate_from_another_ca(
    secure_broker: securebroker.SecureBroker, tmp_path: Path,
) -> None:
    topic = "secured.mtls"
    ensure_topic(secure_broker.admin(), topic)
    grant(secure_broker, f"CN={securebroker.CLIENT_CN}", ResourceType.TOPIC, topic, AclOperation.READ)
    mtls = load_kafka_settings(secure_broker.mtls_properties, None)
    assert mtls is not None
    for client in ("confluent", "kafka-python"):
        assert set(end_offsets(mtls, topic, client=client)) == {0, 1, 2}
    other = securebroker.make_ca(tmp_path, "other-ca", "some other CA")
    certificate, key = securebroker.make_certificate(tmp_path, "intruder", securebroker.CLIENT_CN, other)
    intruder = load_kafka_settings(properties(tmp_path, (
        f"bootstrap.servers={secure_broker.mtls_bootstrap}\nsecurity.protocol=SSL\nssl.ca.location={secure_broker.ca}\n"
        f"ssl.certificate.location={certificate}\nssl.key.location={key}\n")), None)
    assert intruder is not None
    with pytest.raises(KafkaTLS, match="refused our client certificate"):
        end_offsets(intruder, topic, client="confluent")
