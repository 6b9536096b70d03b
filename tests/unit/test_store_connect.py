"""The store connection modules' pure parts: TLS parameters masked, URL parameters checked, and driver
failures sorted into authentication, authorization, TLS or a plain retryable store error, each one
line without a secret. (Real servers refuse for real in tests/integration/test_store_tls.py.)"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import redis
from psycopg import errors

from provisioner.errors import AccessError, is_retryable
from provisioner.stores import postgres_connect, redis_connect
from provisioner.stores.access import StoreAuthentication, StoreAuthorization, StoreTLS
from provisioner.stores.base import StoreError, mask_url, scrub_secrets

PG = "postgresql://app:s3cret@db.internal:5432/x?sslmode=verify-full&sslrootcert=/ca.pem&sslpassword=k3y"
REDIS = "rediss://app:s3cret@cache.internal:6380/0?ssl_ca_certs=/ca.pem&ssl_password=k3y"


@pytest.mark.parametrize(("url", "masked"), [
    (PG, "postgresql://app:***@db.internal:5432/x?sslmode=verify-full&sslrootcert=/ca.pem&sslpassword=***"),
    (REDIS, "rediss://app:***@cache.internal:6380/0?ssl_ca_certs=/ca.pem&ssl_password=***"),
    ("host=db user=app password=s3cret sslpassword=k3y sslmode=verify-full",
     "host=db user=app password=*** sslpassword=*** sslmode=verify-full"),
])
def test_mask_url_hides_tls_key_passphrases_too(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize("url", [PG, REDIS, "host=db user=app password=s3cret sslpassword='k3y'"])
def test_scrub_secrets_removes_passphrases_quoted_bare(url: str) -> None:
    scrubbed = scrub_secrets("could not use key k3y of user app (s3cret)", url)
    assert "k3y" not in scrubbed and "s3cret" not in scrubbed


PG_FAILURES = [
    (psycopg.OperationalError('connection to server at "10.0.0.5", port 5432 failed: FATAL:  password '
                              'authentication failed for user "app"'),
     StoreAuthentication, "authentication: user 'app' was refused"),
    (psycopg.OperationalError('connection to server at "10.0.0.5", port 5432 failed: server certificate for '
                              '"other.example" does not match host name "db.internal"'),
     StoreTLS, "TLS: the server's certificate is not valid for host db.internal"),
    (psycopg.OperationalError('connection to server at "10.0.0.5", port 5432 failed: SSL error: certificate '
                              'verify failed'),
     StoreTLS, "TLS: the server's certificate for host db.internal is not signed by a trusted CA"),
    (psycopg.OperationalError('connection to server at "10.0.0.5", port 5432 failed: FATAL:  no pg_hba.conf '
                              'entry for host "10.0.0.9", user "app", database "x", no encryption'),
     StoreTLS, "TLS: db.internal accepts only TLS connections"),
    (psycopg.OperationalError('connection to server at "10.0.0.5", port 5432 failed: root certificate file '
                              '"/ca.pem" does not exist'),
     StoreTLS, 'TLS: root certificate file "/ca.pem" does not exist'),
    (psycopg.OperationalError('connection to server at "10.0.0.5", port 5432 failed: FATAL:  connection requires '
                              'a valid client certificate'),
     StoreTLS, "TLS: the server requires a client certificate (set sslcert and sslkey)"),
    (errors.InsufficientPrivilege("permission denied for schema app"),
     StoreAuthorization, "authorization: permission denied for schema app"),
    (psycopg.OperationalError('connection to server at "10.0.0.5", port 5432 failed: Connection refused'),
     StoreError, "cannot connect: connection to server at"),
]


@pytest.mark.parametrize(("error", "kind", "expected"), PG_FAILURES)
def test_postgres_failures_are_sorted_and_named(error: Exception, kind: type[StoreError], expected: str) -> None:
    mapped = postgres_connect.failure(PG, "cannot connect", error)
    assert type(mapped) is kind
    assert expected in str(mapped)
    assert str(mapped).startswith("postgres postgresql://app:***@db.internal:5432/x?")
    assert "s3cret" not in str(mapped) and "k3y" not in str(mapped)
    assert is_retryable(mapped)  # a rotated password or a granted privilege lets the consumer in
    assert isinstance(mapped, AccessError) == (kind is not StoreError)


def _ssl_failure(message: str) -> redis.ConnectionError:
    return redis.ConnectionError(f"Error 1 connecting to cache.internal:6380. {message}.")


REDIS_FAILURES = [
    (redis.AuthenticationError("invalid username-password pair or user is disabled."),
     StoreAuthentication, "authentication: user 'app' was refused"),
    (redis.exceptions.NoPermissionError("this user has no permissions to run the 'evalsha' command"),
     StoreAuthorization, "authorization: this user has no permissions to run the 'evalsha' command"),
    (_ssl_failure("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: Hostname mismatch, certificate is "
                  "not valid for 'cache.internal'. (_ssl.c:1006)"),
     StoreTLS, "TLS: the server's certificate is not valid for host cache.internal"),
    (_ssl_failure("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate in "
                  "certificate chain (_ssl.c:1006)"),
     StoreTLS, "TLS: the server's certificate for host cache.internal is not signed by a trusted CA"),
    (_ssl_failure("[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca (_ssl.c:2580)"),
     StoreTLS, "TLS: the server refused our client certificate"),
    (_ssl_failure("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"),
     StoreTLS, "does not speak TLS on that port"),
    (redis.ConnectionError("Error 111 connecting to cache.internal:6380. Connection refused."),
     StoreError, "Connection refused"),
]


@pytest.mark.parametrize(("error", "kind", "expected"), REDIS_FAILURES)
def test_redis_failures_are_sorted_and_named(error: Exception, kind: type[StoreError], expected: str) -> None:
    mapped = redis_connect.failure(REDIS, "ping failed", error)
    assert type(mapped) is kind
    assert expected in str(mapped)
    assert str(mapped).startswith("redis rediss://app:***@cache.internal:6380/0?")
    assert "s3cret" not in str(mapped) and "k3y" not in str(mapped)
    assert is_retryable(mapped)


def test_redis_urls_name_an_unknown_parameter_and_tls_files_without_tls() -> None:
    with pytest.raises(redis_connect.RedisUrlError, match="unknown URL parameter 'ssl_ca_cert'"):
        redis_connect.client("rediss://cache:6380/0?ssl_ca_cert=/ca.pem", timeout=1)
    with pytest.raises(redis_connect.RedisUrlError, match="ssl_ca_certs needs TLS: write the URL as rediss://"):
        redis_connect.client("redis://:s3cret@cache:6379/0?ssl_ca_certs=/ca.pem", timeout=1)


def test_a_redis_client_carries_the_tls_files_timeouts_and_keepalives() -> None:
    client = redis_connect.client(REDIS, timeout=3, read_timeout=120)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["ssl_ca_certs"] == "/ca.pem" and kwargs["username"] == "app"
    assert kwargs["socket_connect_timeout"] == 3 and kwargs["socket_timeout"] == 120
    assert kwargs["socket_keepalive"] is True
    assert client.get_retry() is not None and client.get_retry().get_retries() == 0  # the caller backs off
    client.close()


def test_a_unix_socket_client_gets_the_timeouts_without_tcp_keepalives(tmp_path: Path) -> None:
    client = redis_connect.client(f"unix://{tmp_path}/redis.sock?db=2", timeout=3)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["path"] == f"{tmp_path}/redis.sock" and kwargs["db"] == 2
    assert kwargs["socket_timeout"] == 3 and "socket_keepalive" not in kwargs
    with pytest.raises(StoreError, match=r"redis unix://.*: ping failed: .*No such file"):
        try:
            client.ping()
        except redis.RedisError as error:
            raise redis_connect.failure(f"unix://{tmp_path}/redis.sock?db=2", "ping failed", error) from None
    client.close()
