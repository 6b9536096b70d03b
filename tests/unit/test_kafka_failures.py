"""Both Kafka clients' refusals (authentication, authorization, TLS) become our retryable errors,
with messages that name the principal's problem and quote neither the library nor a secret."""

from __future__ import annotations

import ssl

import pytest
from confluent_kafka import KafkaError, KafkaException
from kafka import errors as kafka_errors

from provisioner.errors import AccessError, is_retryable
from provisioner.stream.failures import (
    KafkaAuthentication,
    KafkaAuthorization,
    KafkaTLS,
    from_confluent,
    from_kafka_python,
)
from provisioner.stream.kafka import is_transient
from provisioner.stream.settings import KafkaSettings

CANARY = "pw-canary-19ab"
SCRAM = KafkaSettings(bootstrap="kafka:9093", security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                      sasl_username="orders", sasl_password=CANARY, ssl_ca_location="/etc/kafka/ca.pem")
MTLS = KafkaSettings(bootstrap="kafka:9094", security_protocol="SSL", ssl_ca_location="/ca.pem",
                     ssl_certificate_location="/client.pem", ssl_key_location="/client.key")

RDKAFKA_AUTH = ("sasl_ssl://kafka:9093/bootstrap: SASL authentication error: Authentication failed during "
                "authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 3ms in state "
                "AUTH_REQ)")
RDKAFKA_UNTRUSTED = ("ssl://kafka-2:9094/2: SSL handshake failed: error:0A000086:SSL routines::certificate verify "
                     "failed: broker certificate could not be verified, verify that ssl.ca.location is correctly "
                     "configured (after 4ms in state SSL_HANDSHAKE)")
RDKAFKA_REFUSED_CERT = ("ssl://kafka:9094/bootstrap: SSL handshake failed: error:0A000418:SSL routines::tlsv1 alert "
                        "unknown ca (after 2ms in state SSL_HANDSHAKE)")

RDKAFKA_TLS13_REFUSED = ("ssl://kafka:9094/bootstrap: Receive failed: error:0A000412:SSL routines::ssl/tls alert bad "
                         "certificate: SSL alert number 42 (after 3ms in state APIVERSION_QUERY)")


@pytest.mark.parametrize(("error", "settings", "kind", "message"), [
    (KafkaError(KafkaError._AUTHENTICATION, RDKAFKA_AUTH), SCRAM, KafkaAuthentication,
     "Kafka at kafka:9093 refused user 'orders' (SCRAM-SHA-512): wrong user name or password"),
    (KafkaError(KafkaError._SSL, RDKAFKA_UNTRUSTED), SCRAM, KafkaTLS,
     "the broker's certificate is not trusted for host kafka-2:9094 (not signed by /etc/kafka/ca.pem"),
    (KafkaError(KafkaError._SSL, RDKAFKA_REFUSED_CERT), MTLS, KafkaTLS,
     "Kafka at kafka:9094 refused our client certificate (/client.pem)"),
    (KafkaError(KafkaError._TRANSPORT, RDKAFKA_TLS13_REFUSED), MTLS, KafkaTLS,
     "Kafka at kafka:9094 refused our client certificate (/client.pem)"),
    (KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED), SCRAM, KafkaAuthorization,
     "user 'orders' is not allowed to READ topic 'orders'"),
    (KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED), MTLS, KafkaAuthorization,
     "the certificate in /client.pem is not allowed to READ group 'orders-redis'"),
])
def test_confluent_refusals(error: KafkaError, settings: KafkaSettings, kind: type[AccessError],
                            message: str) -> None:
    for raised in (error, KafkaException(error)):
        mapped = from_confluent(raised, settings, topic="orders", group="orders-redis")
        assert isinstance(mapped, kind)
        assert message in str(mapped)
        assert "SSL routines" not in str(mapped) and "state" not in str(mapped) and CANARY not in str(mapped)
        assert is_retryable(mapped) and is_transient(mapped)


def test_other_confluent_errors_are_left_to_the_caller() -> None:
    assert from_confluent(KafkaError(KafkaError._TRANSPORT, "connection refused"), SCRAM) is None
    assert from_confluent(RuntimeError("x"), SCRAM) is None


def test_kafka_python_refusals() -> None:
    write = from_kafka_python(kafka_errors.TopicAuthorizationFailedError(), SCRAM, operation="WRITE",
                              topic="orders.dlq")
    assert isinstance(write, KafkaAuthorization)
    assert "user 'orders' is not allowed to WRITE topic 'orders.dlq'" in str(write)
    assert isinstance(from_kafka_python(kafka_errors.GroupAuthorizationFailedError(), SCRAM, group="g"),
                      KafkaAuthorization)
    assert isinstance(from_kafka_python(kafka_errors.SaslAuthenticationFailedError("bad"), SCRAM),
                      KafkaAuthentication)
    verify = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    wrapped = kafka_errors.KafkaConnectionError("connect failed")
    wrapped.__cause__ = verify
    tls = from_kafka_python(wrapped, SCRAM)
    assert isinstance(tls, KafkaTLS) and "not trusted for host kafka:9093" in str(tls)
    assert from_kafka_python(kafka_errors.KafkaTimeoutError(), SCRAM) is None


def test_settings_in_messages_show_the_address_only() -> None:
    assert str(SCRAM) == "kafka:9093"
    assert CANARY not in repr(SCRAM)
