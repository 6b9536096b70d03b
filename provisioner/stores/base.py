"""The contract between the consumer loop and a store (Redis, Postgres).

A store applies a batch of changes together with the new positions in one atomic unit, fenced by
compare-and-set on the positions the batch started from (spec.md, "Stores"). Positions are the
offset of the *next* record to read for each partition of the source topic. A store opened with a
`VersionFence` also checks, in the same unit, that the store's version record still names the
version its spec builds, so no writer of a superseded spec writes after a switch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote

from provisioner.errors import ConflictError, IncompatibleChangeError, UnavailableError
from provisioner.pipeline.ops import Change, DeadLetter


class StoreError(UnavailableError):
    """A store failed in a way that retrying later may fix (connection lost, server down)."""


class StoreSchemaError(IncompatibleChangeError):
    """The store's existing schema is incompatible with the spec; retrying will not help."""


class PositionConflict(ConflictError):
    """The fencing check failed: another consumer moved a position since the batch started."""


class VersionMoved(StoreError):
    """The store switched to another version: this consumer's spec no longer builds it.

    Retryable on purpose: the consumer backs off while its runner notices the switch and stops it;
    nothing of the batch is written, so a replica still on the old spec never mixes its rows into
    the new version."""


@dataclass(frozen=True, slots=True)
class VersionFence:
    """The version (fingerprint, generation) the store's version record must hold for a batch to
    land: checked in the batch's own transaction or script, like the positions."""

    fingerprint: str
    generation: int = 0

    @property
    def text(self) -> str:
        return f"{self.fingerprint}:{self.generation}"


@dataclass(frozen=True, slots=True)
class Rejected:
    """A change the store cannot represent (e.g. a value that does not convert to its column type)."""

    change: Change
    dead_letter: DeadLetter


@dataclass(frozen=True, slots=True)
class Stale:
    """How many upserts and deletes of a batch a store skipped as older than their key's last
    applied op (`spec.order`)."""

    upserts: int = 0
    deletes: int = 0


class OrderedWrites(list[Any]):
    """The prepared writes of an ordered store (`spec.order`), with the changes already found stale
    within the batch (older than an earlier change of their key)."""

    stale: Stale = Stale()


class Store(Protocol):
    """What the consumer loop needs of a store. Implementations live beside this module."""

    def ensure_schema(self) -> None:
        """Create tables / position keys if missing; add columns for new fields; refuse the rest."""

    def prepare(self, changes: Sequence[Change]) -> tuple[list[Any], list[Rejected]]:
        """Convert changes to the store's representation without I/O, separating the ones it rejects.

        Called before dead letters are produced, so stage-`store` dead letters are acknowledged
        before the batch that passes them commits.
        """

    def read_positions(self) -> dict[int, int]:
        """The next offset to read per partition, as committed in the store (empty when new)."""

    def apply(
        self, prepared: Sequence[Any], start: Mapping[int, int | None], end: Mapping[int, int]
    ) -> Stale | None:
        """Apply prepared changes and set positions to `end` atomically.

        Raises PositionConflict unless every partition in `end` still has the position in `start`
        (None = no position stored yet); nothing is written in that case. An ordered store
        (`spec.order`) returns the batch's stale changes (not applied); others return None.
        """

    def inspect(self, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` rows (data only, no positions) for `provisioner inspect`."""

    def count(self) -> int:
        """How many rows (Redis: keys under the prefix) the store holds, for `provisioner status`."""

    def reset(self) -> None:
        """Wipe the store's data and positions, for `provisioner replay` (which then re-reads the topic).

        The store is left ready to apply (Postgres recreates the table from the current spec).
        """

    def close(self) -> None:
        """Release connections."""


_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)", re.IGNORECASE)


def _split_userinfo(url: str) -> tuple[str, str, str] | None:
    """(scheme + '://', userinfo, rest after '@'), or None when the URL has no userinfo.

    The last '@' before the query wins, so a password with an unescaped '@' or '/' is still found.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    before_query = rest.split("?", 1)[0]
    at = before_query.rfind("@")
    if at < 0:
        return None
    return scheme + sep, rest[:at], rest[at + 1 :]


def _url_password(url: str) -> str | None:
    parts = _split_userinfo(url)
    if parts is None:
        return None
    _, colon, password = parts[1].partition(":")
    return password if colon and password else None


def mask_url(url: str) -> str:
    """The URL with its password (userinfo or `password=` parameter) replaced by `***`, for messages."""
    masked = url
    parts = _split_userinfo(url)
    if parts is not None and _url_password(url) is not None:
        head, userinfo, tail = parts
        masked = f"{head}{userinfo.partition(':')[0]}:***@{tail}"
    return _KEYWORD_PASSWORD.sub(lambda m: m.group(1) + "***", masked)


def _url_secrets(url: str) -> set[str]:
    """The URL's password and every `...password` parameter's value (libpq's `sslpassword`,
    redis-py's `ssl_password`), raw and percent-decoded."""
    found: set[str] = set()
    password = _url_password(url)
    if password:
        found |= {password, unquote(password)}
    _, _, query = url.partition("?")
    for name, value in parse_qsl(query, keep_blank_values=False):
        if name.lower().endswith("password"):
            found |= {value, unquote(value)}
    for match in _KEYWORD_PASSWORD.finditer(url.partition("?")[0] if "://" in url else url):
        found.add(match.group(2).strip("'"))
    return {secret for secret in found if secret}


def scrub_secrets(message: str, url: str) -> str:
    """A driver's error message with any copy of the URL's secrets (raw or percent-decoded) removed."""
    for secret in sorted(_url_secrets(url), key=len, reverse=True):
        message = message.replace(secret, "***")
    return _KEYWORD_PASSWORD.sub(lambda m: m.group(1) + "***", message)
