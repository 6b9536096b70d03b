"""Credentials of managed stores, derived, never stored in a spec.

A managed store's password is HMAC-SHA256(key, "<namespace>/<product>/<store>/<kind>"), printed as
hex. The key is a secret of the platform, not of the spec: `provisioner render --with-secrets`
reads it from PROVISIONER_CREDENTIALS_KEY or a key file (created with a random key on first use),
and the operator keeps its own. So the same product renders the same password every time, on every
reconcile and every render made with the same key, and a restarted store keeps accepting its
consumers; a different key (another cluster) gives different passwords. Rotating means changing the
key, which changes every managed store's password at once (the stores must then be re-created or
their password changed by hand).

Called by `provisioner.kube.render`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

__all__ = ["KEY_BYTES", "StoreCredentials", "derive_credentials", "new_key"]

KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class StoreCredentials:
    username: str
    password: str
    database: str


def new_key() -> bytes:
    """A fresh random key (for a key file created on first use)."""
    return secrets.token_bytes(KEY_BYTES)


def derive_credentials(key: bytes, namespace: str, product: str, store: str, kind: str) -> StoreCredentials:
    """The credentials of one managed store: the same for the same key, namespace, product and store."""
    if len(key) < 16:
        raise ValueError("the credentials key must be at least 16 bytes")
    message = f"{namespace}/{product}/{store}/{kind}".encode()
    password = hmac.new(key, message, hashlib.sha256).hexdigest()  # URL-safe: hex digits only
    if kind == "redis":
        return StoreCredentials(username="default", password=password, database="0")
    return StoreCredentials(username="provisioner", password=password, database="provisioner")
