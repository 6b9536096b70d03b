"""A store that refused us, in the package's terms: who we are, what we may do, or whom we trust.

The connection modules of both backends (`redis_connect`, `postgres_connect`) sort a driver's
failure into one of these, so a consumer's status (`StoreTLS: ...`) and `provisioner doctor` say
which of the three it is in one line. Like every `StoreError` they are retryable: a rotated
password, a granted privilege or a renewed certificate lets the consumer in without a restart.
The messages are written here, not quoted from the driver, so no server banner or secret leaks.
"""

from __future__ import annotations

from provisioner.errors import AuthenticationError, AuthorizationError, TLSError
from provisioner.stores.base import StoreError

__all__ = ["StoreAuthentication", "StoreAuthorization", "StoreTLS", "tls_problem"]


class StoreAuthentication(StoreError, AuthenticationError):
    """The store did not accept our user name and password (or our client certificate as a login)."""


class StoreAuthorization(StoreError, AuthorizationError):
    """The store's user may not run a command or touch a table the consumer needs."""


class StoreTLS(StoreError, TLSError):
    """The TLS handshake with the store failed, or the server and the URL disagree about TLS."""


def tls_problem(text: str, host: str) -> str | None:
    """What a TLS failure's library text means, in words for the user; None when it is not one.

    Both drivers end in OpenSSL, so its phrases are the common ground: a host-name mismatch, a
    certificate not signed by a trusted CA, our client certificate refused by the server."""
    lowered = text.lower()
    if ("hostname mismatch" in lowered or "ip address mismatch" in lowered or "does not match host name" in lowered
            or "doesn't match" in lowered):
        return f"the server's certificate is not valid for host {host} (host-name verification is on)"
    if any(sign in lowered for sign in ("alert unknown ca", "alert bad certificate", "certificate required",
                                        "alert certificate unknown")):
        return "the server refused our client certificate (not signed by a CA it trusts, or none given)"
    if "certificate verify failed" in lowered or "self-signed certificate" in lowered or "self signed" in lowered:
        return f"the server's certificate for host {host} is not signed by a trusted CA (check the CA file)"
    if "no certificate or crl found" in lowered or "no start line" in lowered:
        return "a certificate file the URL names holds no PEM certificate (check the CA file's content)"
    if "wrong version number" in lowered or "record layer failure" in lowered or "packet length too long" in lowered:
        return f"{host} does not speak TLS on that port (use the server's TLS port, or a plain URL)"
    if "ssl" in lowered and ("handshake" in lowered or "eof occurred" in lowered or "unexpected eof" in lowered):
        return f"the TLS handshake with {host} failed"
    return None
