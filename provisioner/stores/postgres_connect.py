"""Every Postgres connection provisioner opens: the store, its versions and its rebuilder election.

One place, so all of them get the same connect timeout, TCP keepalives and TLS: the URL is libpq's
(a `postgresql://` URL or `key=value` pairs) and its standard parameters carry TLS (`sslmode`,
`sslrootcert`, `sslcert`, `sslkey`, `sslpassword`); nothing here overrides them. `failure` sorts a
driver error into the error hierarchy: authentication, authorization and TLS refusals get their own
classes and a message of our own; anything else is a retryable `StoreError` with the driver's text,
scrubbed of the URL's secrets.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict

from provisioner.stores.access import StoreAuthentication, StoreAuthorization, StoreTLS, tls_problem
from provisioner.stores.base import StoreError, mask_url, scrub_secrets

__all__ = ["connect", "failure"]

# TCP keepalives turn a silently dead server into an error within ~30 s instead of a call that
# waits forever (libpq ignores them on Unix sockets).
_KEEPALIVES: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
_USER = re.compile(r'for user "([^"]*)"')
_SERVER_HOST = re.compile(r'connection to server at "([^"]+)"')
_CERT_HOST = re.compile(r'does not match host name "([^"]+)"')


def connect(url: str, *, timeout: float, application_name: str) -> psycopg.Connection[Any]:
    """An autocommit connection to `url` (callers open transactions explicitly); raises `failure`'s
    errors. `application_name` lets the server (and `_end_stuck_sessions`) tell our sessions apart."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=max(1, round(timeout)),
                               application_name=application_name[:63], **_KEEPALIVES)
    except psycopg.Error as error:
        raise failure(url, "cannot connect", error) from None


def failure(url: str, doing: str, error: BaseException) -> StoreError:
    """`error` as one line naming what went wrong, prefixed by the masked URL and what we were doing."""
    text = str(error).strip() or type(error).__name__
    where = f"postgres {mask_url(url)}: {doing}"
    host = _host(url, text)
    if isinstance(error, errors.InsufficientPrivilege):
        return StoreAuthorization(f"{where}: authorization: {_last_part(scrub_secrets(text, url))} "
                                  "(grant the privilege to the URL's user)")
    lowered = text.lower()
    if "password authentication failed" in lowered or "certificate authentication failed" in lowered \
            or "no password supplied" in lowered:
        user = _USER.search(text)
        who = f"user {user.group(1)!r}" if user else "the URL's user"
        return StoreAuthentication(f"{where}: authentication: {who} was refused (wrong password, or no such user)")
    if "no encryption" in lowered and "pg_hba.conf" in lowered:
        return StoreTLS(f"{where}: TLS: {host} accepts only TLS connections (set sslmode=verify-full and sslrootcert)")
    if "requires a valid client certificate" in lowered:
        return StoreTLS(f"{where}: TLS: the server requires a client certificate (set sslcert and sslkey)")
    if "server does not support ssl" in lowered:
        return StoreTLS(f"{where}: TLS: {host} does not offer TLS, but the URL's sslmode requires it")
    if "root certificate file" in lowered or "could not read certificate" in lowered \
            or "could not load private key" in lowered or "certificate present, but not private key" in lowered:
        return StoreTLS(f"{where}: TLS: {_last_part(scrub_secrets(text, url))}")
    problem = tls_problem(text, host)
    if problem is not None:
        return StoreTLS(f"{where}: TLS: {problem}")
    return StoreError(f"{where}: {scrub_secrets(text, url)}")


def _host(url: str, text: str) -> str:
    """The host the URL names (what the certificate is checked against), else the one libpq names."""
    try:
        host = conninfo_to_dict(url).get("host")
    except psycopg.Error:
        host = None
    if host:
        return str(host).split(",")[0]
    found = _CERT_HOST.search(text) or _SERVER_HOST.search(text)
    return found.group(1) if found else "the server"


def _last_part(text: str) -> str:
    """libpq's own reason, without the `connection to server at ... failed:` preamble."""
    line = text.splitlines()[0] if text else text
    return line.rsplit(" failed: ", 1)[-1].strip()
