"""Find a product, its Kafka and its stores from what a person types: a spec file, or the name of a
product `provisioner up` started.

Who calls it: `provisioner deadletters`, `explain` and `test --dead-letters`. A name is looked up in
the state directory's registry (its spec file, Kafka settings and store URLs, embedded ones
included); a path is loaded as a spec, and its stores reached through their `connection` (against
a cluster: the same URL the consumers use). Kafka is the one given (`--kafka-config`,
`--bootstrap`), else the one `up` ran with, else the dev broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from provisioner.errors import ConfigurationError
from provisioner.local.devbroker import resolve_bootstrap
from provisioner.local.session import LocalSession, NotStartedError
from provisioner.runtime.connection import store_url
from provisioner.spec.loader import load_products
from provisioner.spec.models import DataProduct
from provisioner.stream.settings import KafkaSettings, KafkaTarget

__all__ = ["Located", "locate", "locate_spec"]


@dataclass(frozen=True, slots=True)
class Located:
    """A product, the Kafka to read its topics from, and the local session that runs it (if any)."""

    product: DataProduct
    kafka: KafkaTarget
    session: LocalSession | None

    def store_url(self, store: str) -> str:
        """The URL of one of the product's stores: the session's (embedded stores too), else the
        spec's connection (`${ENV}` expanded here)."""
        spec = self.product.store(store)
        if self.session is not None:
            known = self.session.targets(self.product.name, store)
            if known and known[0].product is not None:
                return self.session.store_url(known[0])
        return store_url(spec)


def _session(state_dir: Path) -> LocalSession | None:
    try:
        return LocalSession.open(state_dir)
    except NotStartedError:
        return None


def _kafka(explicit: KafkaSettings | None, session: LocalSession | None, state_dir: Path) -> KafkaTarget:
    if explicit is not None:
        return explicit
    if session is not None:
        return session.kafka
    return resolve_bootstrap(None, state_dir)


def locate_spec(product: DataProduct, state_dir: Path, explicit: KafkaSettings | None) -> Located:
    """A product loaded from a spec file: Kafka and stores as `locate` finds them."""
    session = _session(state_dir)
    known = session is not None and any(e.matches(product.name) and e.namespace == product.metadata.namespace
                                        for e in session.registry.stores)
    return Located(product, _kafka(explicit, session, state_dir), session if known else None)


def locate(reference: str, state_dir: Path, explicit: KafkaSettings | None) -> Located:
    """The product `reference` names: a spec file holding one product, or a product `up` started."""
    path = Path(reference)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        loaded = load_products([path])
        if len(loaded) != 1:
            names = ", ".join(spec.product.name for spec in loaded)
            raise ConfigurationError(f"{reference} defines {len(loaded)} data products ({names}): "
                                     "name one that `provisioner up` started, or give a file with one")
        return locate_spec(loaded[0].product, state_dir, explicit)
    session = _session(state_dir)
    if session is None:
        raise ConfigurationError(f"{reference!r} is not a spec file and nothing was started with state dir "
                                 f"{state_dir}: give the spec file, or run `provisioner up` first")
    target = session.targets(reference)[0]
    return Located(target.require_product(), _kafka(explicit, session, state_dir), session)
