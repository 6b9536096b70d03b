"""What products read and validated together must not share: a table, Redis keys, a dead-letter topic.

Each product checks its own stores; this module checks every pair of stores and products at once,
because two products that write one table, or Redis key prefixes of which one starts the other
(`""` starts every key), overwrite each other's rows, and a rebuild's switch deletes the other's
keys. Two stores are the same store when:

- both are managed, of the same kind, in the same namespace (a namespace's managed stores may be
  served by one server: `up` runs one embedded server per kind; in a cluster they are separate
  StatefulSets, and the check costs only a distinct name). Different namespaces never share one.
- both have a `connection` to the same place: the same host, port and database of a literal URL
  (user, password and parameters aside), the same text of a `${VAR}` URL, or the same Secret key
  in the same namespace. Secrets of different namespaces cannot be compared offline.

Dead-letter topics are Kafka topics, which have no namespace: two products anywhere that send dead
letters (`errors.mode: deadLetter`) must not share one (the default `<name>.dlq` collides for equal
names in two namespaces), and no product's dead letters may go to another product's source topic.
Consumer groups need no check here: they are `provisioner.<namespace>.<name>.<store>`, built of
RFC 1123 labels (no dots), so they differ whenever the products do, which the loader checks.

Pure: `overlap_findings` takes loaded specs and returns findings; the loader and `up` call it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from provisioner.spec.findings import Finding, format_path
from provisioner.spec.models import StoreSpec

if TYPE_CHECKING:
    from provisioner.spec.loader import LoadedSpec

Path = tuple[str | int, ...]
_DEFAULT_PORTS = {"redis": 6379, "postgres": 5432}


@dataclass(frozen=True, slots=True)
class _Claim:
    """One thing a store or product takes for itself, and where the spec says so."""

    spec: LoadedSpec
    path: Path
    at_key: bool
    value: str
    what: str

    def where(self) -> str:
        line, column = self.spec.document.locate(self.path, at_key=self.at_key)
        return f"{self.spec.file}:{line}:{column}"

    def finding(self, message: str) -> Finding:
        line, column = self.spec.document.locate(self.path, at_key=self.at_key)
        return Finding(self.spec.file, line, column, format_path(self.path), message)


def store_identity(namespace: str, store: StoreSpec) -> tuple[str, ...]:
    """What makes two stores the same server and database (see the module docstring)."""
    connection = store.connection
    if connection is None:
        return ("managed", store.kind, namespace)
    if connection.secret_ref is not None:
        return ("secret", store.kind, namespace, connection.secret_ref.name, connection.secret_ref.key)
    url = connection.url or ""
    if "${" in url:
        return ("text", store.kind, url)
    try:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        if parts.scheme == "unix":
            return ("url", store.kind, parts.path, "", query.get("db", ["0"])[0])
        host = (parts.hostname or query.get("host", ["localhost"])[0]).lower()
        port = parts.port or int(query.get("port", [_DEFAULT_PORTS[store.kind]])[0])
        database = unquote(parts.path.strip("/"))
        if store.kind == "redis":
            database = database or query.get("db", ["0"])[0]
        else:
            database = database or query.get("dbname", [unquote(parts.username or "")])[0]
    except ValueError:
        return ("text", store.kind, url)
    return ("url", store.kind, host, str(port), database)


def _store_claims(spec: LoadedSpec) -> Iterator[tuple[tuple[str, ...], _Claim]]:
    product = spec.product
    for index, store in enumerate(product.spec.stores):
        base: Path = ("spec", "stores", index)
        identity = store_identity(product.metadata.namespace, store)
        if store.postgres is not None:
            table = f"{store.postgres.db_schema}.{product.table(store)}"
            path: Path = (*base, "postgres", "table") if store.postgres.table else (*base, "postgres")
            yield identity, _Claim(spec, path, store.postgres.table is None, table, f"store {store.name!r}")
        elif store.redis is not None:
            prefix = product.key_prefix(store)
            path = (*base, "redis", "keyPrefix") if store.redis.key_prefix is not None else (*base, "redis")
            yield identity, _Claim(spec, path, store.redis.key_prefix is None, prefix, f"store {store.name!r}")


def _owner(claim: _Claim) -> str:
    return f"{claim.what} of product {claim.spec.product.name!r} ({claim.where()})"


def _stores(specs: Sequence[LoadedSpec]) -> Iterator[Finding]:
    groups: dict[tuple[str, ...], list[_Claim]] = {}
    for spec in specs:
        for identity, claim in _store_claims(spec):
            groups.setdefault(identity, []).append(claim)
    for identity, claims in groups.items():
        kind = identity[1]
        same = "the same managed store" if identity[0] == "managed" else "the same store"
        for later_index, later in enumerate(claims):
            for earlier in claims[:later_index]:
                if kind == "postgres" and later.value == earlier.value:
                    yield later.finding(f"table {later.value} is also written by {_owner(earlier)}, in {same}")
                elif kind == "redis" and (later.value.startswith(earlier.value)
                                          or earlier.value.startswith(later.value)):
                    relation = "is" if later.value == earlier.value else "overlaps"
                    yield later.finding(f"key prefix {later.value!r} {relation} {earlier.value!r} of "
                                        f"{_owner(earlier)}, in {same}: their keys would overwrite each other")


def _topics(specs: Sequence[LoadedSpec]) -> Iterator[Finding]:
    dead_letters: dict[str, _Claim] = {}
    sources: dict[str, _Claim] = {}
    for spec in specs:
        product = spec.product
        sources.setdefault(product.spec.source.topic, _Claim(
            spec, ("spec", "source", "topic"), False, product.spec.source.topic, "the source topic"))
    for spec in specs:
        product = spec.product
        if product.spec.errors.mode != "deadLetter":
            continue  # `skip` and `stop` send nothing to the topic
        explicit = product.spec.errors.dead_letter_topic is not None
        path: Path = ("spec", "errors", "deadLetterTopic") if explicit else ("metadata", "name")
        claim = _Claim(spec, path, False, product.dead_letter_topic, "the dead-letter topic")
        default = "" if explicit else " (the default, from metadata.name: set spec.errors.deadLetterTopic)"
        earlier = dead_letters.get(claim.value)
        if earlier is not None:
            yield claim.finding(f"dead-letter topic {claim.value!r}{default} is also {_owner(earlier)}")
        else:
            dead_letters[claim.value] = claim
        source = sources.get(claim.value)
        if source is not None and source.spec is not spec:
            yield claim.finding(f"dead-letter topic {claim.value!r}{default} is {_owner(source)}")


def overlap_findings(specs: Sequence[LoadedSpec]) -> list[Finding]:
    """Every table, Redis key range and dead-letter topic two of `specs` would share, as findings
    located at the later one and naming the earlier's file:line:column."""
    return [*_stores(specs), *_topics(specs)]
