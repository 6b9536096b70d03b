"""Object names two products would share: refused before they reach a cluster.

Rendered names join the product's and the store's names with '-' (`object_name`), and both may
contain '-', so product `a` with store `b-c` and product `a-b` with store `c` (both valid, one
namespace) would render the same Service, StatefulSet, Secret, NetworkPolicy and Deployment.
`name_clashes` renders every product (no Secrets' values are needed: names only) and reports each
(namespace, kind, name) that more than one product would own. The operator refuses to overwrite an
object another product owns whatever validate said (`reconcile.NameTakenError`); this check says
so earlier, in the words of the files.

Called by `provisioner validate` and the admission webhook.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from provisioner.kube.render import RenderOptions, render
from provisioner.spec.models import DataProduct

__all__ = ["Clash", "clash_message", "name_clashes", "object_names"]

_OPTIONS = RenderOptions(kafka_bootstrap="-")  # names depend on neither Kafka nor images


@dataclass(frozen=True, slots=True)
class Clash:
    """`product` would render `objects` ("Kind name") that `other` renders too, in `namespace`."""

    namespace: str
    objects: tuple[str, ...]
    product: DataProduct
    other: DataProduct

    def message(self) -> str:
        return clash_message(self.objects, [self.other.name])


def clash_message(objects: Iterable[str], others: Iterable[str]) -> str:
    """Why a product is refused: `objects` ("Kind name") are rendered for the products `others` too."""
    return (f"{', '.join(objects)} would also be rendered for product {', '.join(map(repr, others))} (object names "
            "join product and store names with '-'): rename this product or one of the stores")


def object_names(product: DataProduct) -> set[tuple[str, str, str]]:
    """(namespace, kind, name) of every object the product renders."""
    [rendered] = render([product], _OPTIONS)
    names = {(rendered.namespace, o["kind"], o["metadata"]["name"]) for o in rendered.objects}
    # A Secret the spec or the platform names (a store's URL, Kafka credentials) may serve many products.
    names |= {(rendered.namespace, "Secret", s.name) for s in rendered.secrets_to_create if not s.referenced}
    return names


def name_clashes(products: Iterable[DataProduct], others: Iterable[DataProduct] = ()) -> list[Clash]:
    """One Clash per pair of products rendering a same name: a product of `products` and an
    earlier one of `products`, or one of `others` (e.g. those already in the cluster). A product
    named like one of `others` replaces it (an update), so it is not compared with itself."""
    owners: dict[tuple[str, str, str], DataProduct] = {}
    incoming = list(products)
    replaced = {(p.metadata.namespace, p.name) for p in incoming}
    for other in others:
        if (other.metadata.namespace, other.name) not in replaced:
            for key in object_names(other):
                owners.setdefault(key, other)
    clashes: list[Clash] = []
    for product in incoming:
        shared: dict[int, tuple[DataProduct, list[str]]] = {}
        for key in sorted(object_names(product)):
            holder = owners.setdefault(key, product)
            if holder is not product:
                shared.setdefault(id(holder), (holder, []))[1].append(f"{key[1]} {key[2]}")
        clashes.extend(Clash(product.metadata.namespace, tuple(objects), product, holder)
                       for holder, objects in shared.values())
    return clashes
