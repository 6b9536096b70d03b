"""Kafka client errors in the package's terms: the one place that knows both libraries' errors.

A broker that refuses us says so in its library's words (librdkafka's error codes and log-style
strings, kafka-python's exception classes). Here each becomes a `ProvisionerError` whose message
names the principal's problem and nothing else: `KafkaAuthentication` (wrong credentials, a
refused mechanism), `KafkaAuthorization` (not allowed to READ or WRITE topic X, or READ group Y),
`KafkaTLS` (a certificate not trusted for host Z, or ours refused). All are retryable: the consumer
backs off and keeps running until a rotated password or a granted ACL lets it in. No library text
is quoted for those, so nothing it might print (a config dump, a server's banner) reaches a log or
a status. The rest of a library's failures become `KafkaUnavailable` (retry) or stay what they
are (a bug or a bad setting).
"""

from __future__ import annotations

import re
import sys
from typing import Any

from provisioner.errors import AuthenticationError, AuthorizationError, ProvisionerError, TLSError, UnavailableError
from provisioner.stream.settings import KafkaSettings

__all__ = [
    "KafkaAuthentication",
    "KafkaAuthorization",
    "KafkaTLS",
    "KafkaUnavailable",
    "from_confluent",
    "from_kafka_python",
]


class KafkaUnavailable(UnavailableError):
    """Kafka could not be reached, or a produce, topic or offset request failed: try again later."""


class KafkaAuthentication(AuthenticationError):
    """The broker did not accept our SASL credentials."""


class KafkaAuthorization(AuthorizationError):
    """The broker's ACLs do not allow our principal an operation on a topic or group."""


class KafkaTLS(TLSError):
    """The TLS handshake with a broker failed."""


_BROKER = re.compile(r"\b(?:sasl_ssl|ssl|sasl_plaintext|plaintext)://([^/\s,]+)", re.IGNORECASE)


def _host(text: str, settings: KafkaSettings) -> str:
    """The broker a librdkafka message is about (`ssl://host:port/id: ...`), else the bootstrap."""
    found = _BROKER.search(text)
    return found.group(1) if found else settings.bootstrap


def authentication(settings: KafkaSettings, detail: str = "") -> KafkaAuthentication:
    if "mechanism" in detail.lower() and ("unsupported" in detail.lower() or "not enabled" in detail.lower()):
        return KafkaAuthentication(f"Kafka at {settings.bootstrap} does not accept SASL mechanism "
                                   f"{settings.sasl_mechanism} (check sasl.mechanism)")
    return KafkaAuthentication(f"Kafka at {settings.bootstrap} refused {settings.principal} "
                               f"({settings.sasl_mechanism or settings.security_protocol}): wrong user name or "
                               f"password, or the user does not exist")


def authorization(settings: KafkaSettings, operation: str, kind: str, name: str | None) -> KafkaAuthorization:
    what = f"{kind} {name!r}" if name else f"the {kind}"
    return KafkaAuthorization(f"{settings.principal} is not allowed to {operation} {what} on Kafka at "
                              f"{settings.bootstrap} (grant the ACL)")


def tls(settings: KafkaSettings, detail: str) -> KafkaTLS:
    host = _host(detail, settings)
    text = detail.lower()
    if any(sign in text for sign in ("alert bad certificate", "certificate required", "alert unknown ca",
                                     "certificate unknown")):
        return KafkaTLS(f"Kafka at {host} refused our client certificate"
                        f" ({settings.ssl_certificate_location or 'none given'}): not signed by a CA it trusts")
    if "hostname" in text or "host name" in text or "ip address mismatch" in text:
        return KafkaTLS(f"the broker's certificate is not valid for host {host} "
                        f"(host-name verification is on; check bootstrap.servers)")
    trusted = settings.ssl_ca_location or "the system's CAs"
    return KafkaTLS(f"the broker's certificate is not trusted for host {host} (not signed by {trusted}, "
                    f"or not issued for that host)")


def from_confluent(error: Any, settings: KafkaSettings, *, operation: str = "READ", topic: str | None = None,
                   group: str | None = None) -> ProvisionerError | None:
    """A confluent-kafka `KafkaError` (or `KafkaException` holding one) as our error; None when it
    is none of authentication, authorization or TLS (the caller decides on those)."""
    confluent = sys.modules.get("confluent_kafka")
    if confluent is None:
        return None
    if isinstance(error, confluent.KafkaException):
        error = error.args[0] if error.args else None
    if not isinstance(error, confluent.KafkaError):
        return None
    code = error.code()
    codes = confluent.KafkaError
    if code in (codes._AUTHENTICATION, codes.SASL_AUTHENTICATION_FAILED, codes.UNSUPPORTED_SASL_MECHANISM,
                codes.ILLEGAL_SASL_STATE):
        return authentication(settings, error.str())
    if code == codes._SSL:
        return tls(settings, error.str())
    if code == codes.TOPIC_AUTHORIZATION_FAILED:
        return authorization(settings, operation, "topic", topic)
    if code == codes.GROUP_AUTHORIZATION_FAILED:
        return authorization(settings, "READ", "group", group)
    if code == codes.CLUSTER_AUTHORIZATION_FAILED:
        return authorization(settings, operation, "cluster", None)
    text = error.str().lower()
    # TLS 1.3 refuses a client certificate after the handshake: the next read fails with the alert.
    if code == codes._TRANSPORT and ("ssl routines" in text or "ssl handshake" in text):
        return tls(settings, error.str())
    return None


def from_kafka_python(error: BaseException, settings: KafkaSettings, *, operation: str = "READ",
                      topic: str | None = None, group: str | None = None) -> ProvisionerError | None:
    """A kafka-python error (or the `ssl` error under it) as our error; None as for `from_confluent`."""
    import ssl

    from kafka import errors

    if isinstance(error, errors.TopicAuthorizationFailedError):
        return authorization(settings, operation, "topic", topic)
    if isinstance(error, errors.GroupAuthorizationFailedError):
        return authorization(settings, "READ", "group", group)
    if isinstance(error, errors.ClusterAuthorizationFailedError):
        return authorization(settings, operation, "cluster", None)
    if isinstance(error, errors.SaslAuthenticationFailedError | errors.UnsupportedSaslMechanismError
                  | errors.IllegalSaslStateError):
        return authentication(settings, str(error))
    if isinstance(error, ssl.SSLError):
        return tls(settings, str(error))
    cause = error.__cause__ or error.__context__
    if cause is not None and cause is not error:
        return from_kafka_python(cause, settings, operation=operation, topic=topic, group=group)
    return None
