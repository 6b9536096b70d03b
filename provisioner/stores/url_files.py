"""The certificate files a store URL names, and where they are found in a cluster.

A store URL carries TLS through its standard parameters (spec.md, "Connections"): libpq's
`sslrootcert`, `sslcert`, `sslkey`, `sslcrl` and `passfile`; redis-py's `ssl_ca_certs`,
`ssl_certfile` and `ssl_keyfile`. In a cluster the files come from the Secret that holds the URL:
each one is a further key of that Secret, named in the URL by that key alone (`sslrootcert=ca.pem`),
and the consumer's pod mounts the Secret read-only. `resolve` turns such a name into the mounted
file's path, so the drivers never depend on the process's working directory.

`problem` is the cluster's rule, checked by the operator on the Secret it reads (names only, never
a value): every file the URL names is a key of the same Secret. An absolute path is refused (a file
of the image, or of another mount, is nothing the Secret's owner controls), and so is a folder
parameter (`sslcrldir`, `ssl_ca_path`: a Secret's keys are files). libpq's `sslrootcert=system`
(the system's CAs) names no file and passes; so does a Redis URL without `ssl_ca_certs`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Collection, Mapping
from typing import Final
from urllib.parse import quote, unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

__all__ = ["FILE_PARAMETERS", "FOLDER_PARAMETERS", "files_named", "problem", "resolve", "secret_key"]

#: Per store kind, the URL parameters whose value is a file.
FILE_PARAMETERS: Final[Mapping[str, tuple[str, ...]]] = {
    "postgres": ("sslrootcert", "sslcert", "sslkey", "sslcrl", "passfile"),
    "redis": ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"),
}
#: Per store kind, the URL parameters whose value is a folder (no Secret can be one).
FOLDER_PARAMETERS: Final[Mapping[str, tuple[str, ...]]] = {"postgres": ("sslcrldir",), "redis": ("ssl_ca_path",)}
_KEYWORDS: Final = {"sslrootcert": ("system",)}  # values that are no file


def _is_url(url: str) -> bool:
    return "://" in url


def _parameters(kind: str, url: str) -> dict[str, str]:
    """Every parameter of the URL (query or libpq `key=value` pairs) that names a file or folder."""
    wanted = (*FILE_PARAMETERS[kind], *FOLDER_PARAMETERS[kind])
    if _is_url(url):
        _, _, query = url.partition("?")
        pairs = (piece.partition("=") for piece in query.split("#")[0].split("&") if piece)
        found = {unquote(name): unquote(value) for name, _, value in pairs}
    else:
        try:
            found = {name: str(value) for name, value in conninfo_to_dict(url).items() if value is not None}
        except psycopg.Error:
            return {}  # not libpq's syntax: the driver says so when it connects
    return {name: found[name] for name in wanted if found.get(name)}


def files_named(kind: str, url: str) -> dict[str, str]:
    """The file parameters `url` sets (parameter -> value as written), without libpq's keywords."""
    return {name: value for name, value in _parameters(kind, url).items()
            if name in FILE_PARAMETERS[kind] and value not in _KEYWORDS.get(name, ())}


def secret_key(path: str) -> str | None:
    """The Secret key a path in a URL names: a plain file name (a `./` in front is allowed), else None."""
    if posixpath.isabs(path):
        return None
    key = posixpath.normpath(path)
    return None if "/" in key or key in (".", "..") else key


def problem(kind: str, url: str, keys: Collection[str], where: str) -> str | None:
    """Why the files `url` names cannot come from the Secret with `keys` (`where` names it and
    the URL's key), or None when each is a key of it. Quotes parameter names and paths only."""
    for name in FOLDER_PARAMETERS[kind]:
        if name in _parameters(kind, url):
            return (f"{where}: the URL's {name} names a folder; in a cluster name files that are keys of the "
                    f"same Secret instead ({FILE_PARAMETERS[kind][0]}=ca.pem)")
    for name, path in files_named(kind, url).items():
        key = secret_key(path)
        if key is None:
            return (f"{where}: the URL's {name} is {path!r}; in a cluster a certificate file is a key of the same "
                    f"Secret, named by that key alone (e.g. {name}={posixpath.basename(path) or 'ca.pem'})")
        if key not in keys:
            return (f"{where}: the URL's {name} names {key!r}, which is not a key of the Secret: add the file "
                    "as that key")
    return None


def resolve(kind: str, url: str, folder: str) -> str:
    """`url` with each relative file or folder path made absolute under `folder` (a mounted Secret);
    absolute paths, libpq's keywords and every other part of the URL stay as written."""
    relative = {name: posixpath.normpath(posixpath.join(folder, path)) for name, path in _parameters(kind, url).items()
                if not posixpath.isabs(path) and path not in _KEYWORDS.get(name, ())}
    if not relative:
        return url
    if not _is_url(url):
        return make_conninfo(url, **relative)
    head, _, query = url.partition("?")
    query, hash_mark, fragment = query.partition("#")
    pieces = []
    for piece in query.split("&"):
        name, equals, _ = piece.partition("=")
        known = equals and unquote(name) in relative
        pieces.append(f"{name}={quote(relative[unquote(name)], safe='/')}" if known else piece)
    return f"{head}?{'&'.join(pieces)}{hash_mark}{fragment}"
