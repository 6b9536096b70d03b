"""What to run for a set of data products, wherever it runs: the shared plan.

Pure (no I/O): from DataProducts to the consumers to run (one per product and store), the stores to
provision (those without a `connection`) and the Kafka topics that must exist. The local runtime
(`provisioner up`) places the plan on this machine as processes and embedded servers; the
Kubernetes side (`render`, the operator) places the same plan in a cluster as Deployments and
StatefulSets. Neither decides on its own what a product needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from provisioner.spec.models import DataProduct, StoreSpec

__all__ = ["ConsumerPlan", "Plan", "plan"]


@dataclass(frozen=True, slots=True)
class ConsumerPlan:
    """One store's consumer: which product and store it hydrates, and what it reads."""

    product: DataProduct
    store: StoreSpec

    @property
    def namespace(self) -> str:
        return self.product.metadata.namespace

    @property
    def kind(self) -> Literal["redis", "postgres"]:
        return self.store.kind

    @property
    def managed(self) -> bool:
        return self.store.managed

    @property
    def consumer_group(self) -> str:
        return self.product.consumer_group(self.store)

    @property
    def topic(self) -> str:
        return self.product.spec.source.topic

    @property
    def label(self) -> str:
        """How people name it: `product/store`."""
        return f"{self.product.name}/{self.store.name}"


@dataclass(frozen=True, slots=True)
class Plan:
    consumers: tuple[ConsumerPlan, ...]
    topics: tuple[str, ...]  # source topics and dead-letter topics, sorted

    @property
    def managed(self) -> tuple[ConsumerPlan, ...]:
        """The consumers whose store provisioner provisions."""
        return tuple(c for c in self.consumers if c.managed)

    @property
    def managed_kinds(self) -> frozenset[str]:
        return frozenset(c.kind for c in self.managed)


def plan(products: Iterable[DataProduct]) -> Plan:
    """The consumers, managed stores and topics `products` need, in spec order.

    Topics include the dead-letter topic of every product that sends dead letters: a broker may not
    create topics on first use, so they are created up front.
    """
    consumers: list[ConsumerPlan] = []
    topics: set[str] = set()
    for product in products:
        topics.add(product.spec.source.topic)
        if product.spec.errors.mode == "deadLetter":
            topics.add(product.dead_letter_topic)
        consumers.extend(ConsumerPlan(product, store) for store in product.spec.stores)
    return Plan(tuple(consumers), tuple(sorted(topics)))
