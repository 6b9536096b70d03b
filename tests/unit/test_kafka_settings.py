"""The Kafka client properties file: parsing, errors that name file:line without a secret, and the
two clients' spellings of the same connection."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.errors import ConfigurationError
from provisioner.stream.settings import (
    KafkaConfigError,
    KafkaSettings,
    kafka_python_config,
    load_kafka_settings,
    rdkafka_config,
    settings_of,
)

CANARY = "pw-canary-7c1f"


@pytest.fixture
def pem(tmp_path: Path) -> Path:
    for name in ("ca.pem", "client.pem", "client.key", "chain.pem"):
        (tmp_path / name).write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    return tmp_path


def load(folder: Path, text: str, bootstrap: str | None = None, **environ: str) -> KafkaSettings:
    path = folder / "client.properties"
    path.write_text(text)
    settings = load_kafka_settings(path, bootstrap, environ=environ)
    assert settings is not None
    return settings


def test_scram_over_tls_with_username_and_password(pem: Path) -> None:
    settings = load(pem, f"""
# as handed out by the platform team
bootstrap.servers=kafka-1:9093,kafka-2:9093
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.username=orders
sasl.password={CANARY}
ssl.ca.location=ca.pem
""")
    assert settings.bootstrap == "kafka-1:9093,kafka-2:9093"
    assert (settings.security_protocol, settings.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (settings.sasl_username, settings.sasl_password) == ("orders", CANARY)
    assert settings.ssl_ca_location == str(pem / "ca.pem")
    assert settings.verify_hostname
    assert CANARY not in repr(settings) and CANARY not in str(settings)
    assert rdkafka_config(settings) == {
        "bootstrap.servers": "kafka-1:9093,kafka-2:9093", "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "orders", "sasl.password": CANARY,
        "ssl.endpoint.identification.algorithm": "https", "ssl.ca.location": str(pem / "ca.pem"),
    }
    assert kafka_python_config(settings) == {
        "bootstrap_servers": "kafka-1:9093,kafka-2:9093", "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "orders", "sasl_plain_password": CANARY,
        "ssl_check_hostname": True, "ssl_cafile": str(pem / "ca.pem"),
    }


def test_java_jaas_config_continued_over_lines(pem: Path) -> None:
    settings = load(pem, """bootstrap.servers=b:9093
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-256
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\
    username="svc" password="p=w;0rd";
ssl.truststore.location=ca.pem
ssl.truststore.type=PEM
""")
    assert (settings.sasl_username, settings.sasl_password) == ("svc", "p=w;0rd")
    assert settings.ssl_ca_location == str(pem / "ca.pem")


def test_plain_module_and_plaintext_sasl(tmp_path: Path) -> None:
    settings = load(tmp_path, "bootstrap.servers: b:9092\nsecurity.protocol = SASL_PLAINTEXT\n"
                              "sasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security.plain."
                              "PlainLoginModule required username=alice password=\"s3\";\n")
    assert (settings.sasl_username, settings.sasl_password) == ("alice", "s3")
    assert "ssl.ca.location" not in rdkafka_config(settings)
    assert rdkafka_config(settings)["security.protocol"] == "sasl_plaintext"


def test_mutual_tls_with_librdkafka_and_java_pem_names(pem: Path) -> None:
    librdkafka = load(pem, "bootstrap.servers=b:9094\nsecurity.protocol=SSL\nssl.ca.location=ca.pem\n"
                           "ssl.certificate.location=client.pem\nssl.key.location=client.key\n"
                           "ssl.endpoint.identification.algorithm=\n")
    assert not librdkafka.verify_hostname
    assert rdkafka_config(librdkafka)["ssl.certificate.location"] == str(pem / "client.pem")
    assert rdkafka_config(librdkafka)["ssl.key.location"] == str(pem / "client.key")
    assert rdkafka_config(librdkafka)["ssl.endpoint.identification.algorithm"] == "none"
    assert kafka_python_config(librdkafka)["ssl_check_hostname"] is False
    assert "sasl_mechanism" not in kafka_python_config(librdkafka)
    java = load(pem, "bootstrap.servers=b:9094\nsecurity.protocol=SSL\nssl.truststore.type=PEM\n"
                     "ssl.truststore.location=ca.pem\nssl.keystore.type=PEM\nssl.keystore.location=chain.pem\n")
    assert java.ssl_certificate_location == java.ssl_key_location == str(pem / "chain.pem")
    assert kafka_python_config(java)["ssl_certfile"] == str(pem / "chain.pem")
    assert java.principal == f"the certificate in {pem / 'chain.pem'}"


def test_environment_references_and_bootstrap_override(tmp_path: Path) -> None:
    settings = load(tmp_path, "bootstrap.servers=${KAFKA}\nsecurity.protocol=SASL_PLAINTEXT\n"
                              "sasl.mechanism=SCRAM-SHA-512\nsasl.username=u\nsasl.password=${KAFKA_PASSWORD}\n",
                    "override:1", KAFKA="file:1", KAFKA_PASSWORD=CANARY)
    assert settings.bootstrap == "override:1"
    assert settings.sasl_password == CANARY


def test_a_bare_address_is_plaintext() -> None:
    assert settings_of("h:1") == KafkaSettings(bootstrap="h:1")
    assert load_kafka_settings(None, "h:1", environ={}) == KafkaSettings(bootstrap="h:1")
    assert load_kafka_settings(None, None, environ={}) is None
    assert rdkafka_config(settings_of("h:1")) == {"bootstrap.servers": "h:1", "security.protocol": "plaintext"}


@pytest.mark.parametrize(("text", "message"), [
    ("bootstrap.servers=b\nsecurity.protocol=SASL\n", "client.properties:2: security.protocol: 'SASL' is not one of"),
    ("bootstrap.servers=b\nsecurity.protocol=SASL_SSL\nsasl.mechanism=GSSAPI\n",
     "client.properties:3: sasl.mechanism: 'GSSAPI' is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
    ("bootstrap.servers=b\nsecurity.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.username=u\n",
     "needs sasl.username and sasl.password"),
    ("bootstrap.servers=b\nsecurity.protocol=SSL\nssl.ca.location=missing.pem\n",
     "client.properties:3: ssl.ca.location: no such file"),
    ("bootstrap.servers=b\nsecurity.protocol=SSL\nssl.truststore.location=ca.pem\n",
     "client.properties:3: ssl.truststore.location: only PEM files are read; set ssl.truststore.type=PEM"),
    ("bootstrap.servers=b\nssl.ca.location=ca.pem\n",
     "client.properties:2: ssl.ca.location is set but security.protocol is PLAINTEXT"),
    ("bootstrap.servers=b\nsecurity.protocol=SSL\nssl.certificate.location=client.pem\n",
     "needs both ssl.certificate.location and ssl.key.location"),
    ("bootstrap.servers=b\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
     f"sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=u password={CANARY};\n",
     "client.properties:4: sasl.jaas.config: PlainLoginModule does not do sasl.mechanism SCRAM-SHA-512"),
    ("bootstrap.servers=b\nsecurity.protocol=SASL_SSL\nsasl.mechanism=PLAIN\n"
     f"sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=u pass={CANARY};\n",
     "client.properties:4: sasl.jaas.config: no password"),
    ("bootstrap.servers=b\nsecurity.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.username=u\n"
     "sasl.password=${NOT_SET}\n", "client.properties:5: sasl.password: environment variable NOT_SET is not set"),
    ("security.protocol=PLAINTEXT\n", "no bootstrap.servers"),
])
def test_errors_name_file_and_line_never_the_secret(pem: Path, text: str, message: str) -> None:
    with pytest.raises(KafkaConfigError) as raised:
        load(pem, text)
    assert message in str(raised.value)
    assert str(raised.value).startswith(str(pem / "client.properties"))
    assert CANARY not in str(raised.value)
    assert isinstance(raised.value, ConfigurationError) and not raised.value.retryable


def test_an_unreadable_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(KafkaConfigError, match="cannot read the Kafka client properties"):
        load_kafka_settings(tmp_path / "absent.properties", None, environ={})


def test_local_consumers_get_the_file_path_never_its_content(tmp_path: Path) -> None:
    from types import SimpleNamespace
    from typing import cast

    from provisioner.local.supervisor import LocalConsumer, consumer_env

    settings = load(tmp_path, f"bootstrap.servers=b:9093\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
                              f"sasl.username=u\nsasl.password={CANARY}\n")
    consumer = cast(LocalConsumer, SimpleNamespace(managed_url=None))
    env = consumer_env(consumer, settings, base={"PROVISIONER_KAFKA_CONFIG": "/elsewhere.properties"})
    assert env["PROVISIONER_KAFKA_CONFIG"] == str(tmp_path / "client.properties")
    assert env["PROVISIONER_KAFKA_BOOTSTRAP"] == "b:9093"
    assert CANARY not in "".join(env.values())
    # A plain address: an inherited properties file must not point the consumer elsewhere.
    plain = consumer_env(consumer, "h:1", base={"PROVISIONER_KAFKA_CONFIG": "/elsewhere.properties"})
    assert "PROVISIONER_KAFKA_CONFIG" not in plain and plain["PROVISIONER_KAFKA_BOOTSTRAP"] == "h:1"
