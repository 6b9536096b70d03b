"""Where a store lives: an explicit URL, or the spec's `connection.url` with `${ENV}` expanded.

Expansion happens at run time, in the consumer's process, so a password kept in an environment
variable never lands in a spec, a status file or a rendered manifest.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from provisioner.errors import ConfigurationError
from provisioner.spec.models import StoreSpec
from provisioner.stores.base import mask_url

__all__ = ["StoreUrlError", "expand_env", "mask_url", "store_url"]

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class StoreUrlError(ConfigurationError):
    """The store's URL cannot be determined (missing variable, managed store without a URL)."""


def expand_env(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace each ${NAME} with the variable's value; a missing variable is an error (by name)."""
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise StoreUrlError(f"environment variable {name} is not set (referenced by the store's connection.url)")
        return env[name]

    return _ENV_REFERENCE.sub(substitute, text)


def store_url(store: StoreSpec, explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The URL to connect the store with: `explicit` wins, then the spec's connection.url."""
    if explicit:
        return explicit
    spec = store.redis or store.postgres
    connection = spec.connection if spec is not None else None
    if connection is None:
        raise StoreUrlError(
            f"store {store.name!r} is managed (no connection): run it with `provisioner up`, or pass --store-url"
        )
    if connection.url is None:
        raise StoreUrlError(
            f"store {store.name!r} reads its URL from a Kubernetes Secret: set PROVISIONER_STORE_URL or --store-url"
        )
    return expand_env(connection.url, environ)
