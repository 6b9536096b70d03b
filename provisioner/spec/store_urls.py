"""The query parameters a store URL may carry, checked where the URL is written.

A Redis URL's parameters are redis-py's, limited to the ones provisioner passes on; a Postgres URL's
are libpq's connection keywords. The store clients refuse any other when they connect
(`stores.redis_connect`, libpq itself); `validate` refuses it at the URL in the spec already. A
parameter named by a `${VAR}` is known only at run time and is left to the client. Only the
parameter's name is ever said: the rest of a URL may hold a password.
"""

from __future__ import annotations

import difflib
from typing import Final
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["POSTGRES_URL_PARAMETERS", "REDIS_URL_PARAMETERS", "postgres_url_problem", "redis_url_problem"]

#: The query parameters a Redis store URL may carry (redis-py's names).
REDIS_URL_PARAMETERS: Final = frozenset({
    "db", "ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile", "ssl_password", "ssl_check_hostname",
    "ssl_cert_reqs", "ssl_min_version", "protocol", "health_check_interval", "client_name",
})

#: libpq's connection keywords (PostgreSQL 18), each of which a `postgresql://` URL may carry as a
#: query parameter; `ssl=true` is libpq's spelling of `sslmode=require` for JDBC's URLs.
POSTGRES_URL_PARAMETERS: Final = frozenset({
    "application_name", "channel_binding", "client_encoding", "connect_timeout", "dbname",
    "fallback_application_name", "gssdelegation", "gssencmode", "gsslib", "host", "hostaddr", "keepalives",
    "keepalives_count", "keepalives_idle", "keepalives_interval", "krbsrvname", "load_balance_hosts",
    "max_protocol_version", "min_protocol_version", "oauth_client_id", "oauth_client_secret", "oauth_issuer",
    "oauth_scope", "options", "passfile", "password", "port", "replication", "require_auth", "requirepeer",
    "scram_client_key", "scram_server_key", "service", "ssl_max_protocol_version", "ssl_min_protocol_version",
    "sslcert", "sslcertmode", "sslcompression", "sslcrl", "sslcrldir", "sslkey", "sslkeylogfile", "sslmode",
    "sslnegotiation", "sslpassword", "sslrootcert", "sslsni", "target_session_attrs", "tcp_user_timeout", "user",
})


def _query(url: str) -> str:
    """The query of a URL ('' for a value that is not one, or that no client could read either)."""
    if "://" not in url:
        return ""
    try:
        return urlsplit(url).query
    except ValueError:  # a broken [IPv6] host: the client says so when it connects
        return ""


def redis_url_problem(url: str) -> str | None:
    """Why provisioner's Redis client would refuse `url`'s parameters, or None."""
    names = sorted({name for name, _ in parse_qsl(_query(url), keep_blank_values=True) if "${" not in name})
    unknown = [name for name in names if name not in REDIS_URL_PARAMETERS]
    if unknown:
        return f"unknown URL parameter {unknown[0]!r} (known: {', '.join(sorted(REDIS_URL_PARAMETERS))})"
    scheme = url.partition("://")[0]
    tls = [name for name in names if name.startswith("ssl_")]
    if tls and "${" not in scheme and scheme.lower() != "rediss":
        return f"{tls[0]} needs TLS: write the URL as rediss://"
    return None


def postgres_url_problem(url: str) -> str | None:
    """Why libpq would refuse `url`'s query parameters, or None (a `key=value` string is libpq's
    to read). libpq splits at `&` (one at the end is allowed), then at `=`, and percent-decodes the
    name."""
    items = _query(url).split("&")
    for item in items[:-1] if items[-1] == "" else items:
        raw, separator, value = item.partition("=")
        name = unquote(raw)
        if "${" in name:
            continue
        if not separator:
            return f"URL parameter {name!r} has no value (write {name}=...)"
        if "=" in value:
            return f"URL parameter {name!r} has a second '=' (write it as %3D in a value)"
        if name == "ssl":
            if value == "true":
                continue
            return "URL parameter 'ssl' takes only true (libpq's sslmode=require): use sslmode"
        if name not in POSTGRES_URL_PARAMETERS:
            close = difflib.get_close_matches(name, POSTGRES_URL_PARAMETERS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return f"unknown URL parameter {name!r}: not a libpq connection parameter{hint}"
    return None
