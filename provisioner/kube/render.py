"""A data product's Kubernetes objects, rendered from the jinja2 templates in templates/.

`render(products, options)` places the shared plan (`provisioner.plan`) in a cluster, per product:

- a ConfigMap holding the spec the consumers run (the pods run as the namespace's `default`
  ServiceAccount with no API token mounted: they talk to no Kubernetes API, so a ServiceAccount of
  their own would only cost the operator one more object per product);
- per managed store (no `connection`): a StatefulSet with a PVC template, a headless Service, a
  NetworkPolicy (only the store's consumers and pods labelled `reads.provisioner.dev/<product>:
  "true"` may connect) and a Secret with derived credentials (`provisioner.kube.credentials`);
- per store: a consumer Deployment running `provisioner consume`, its store URL read from a Secret
  through PROVISIONER_STORE_URL (never in the ConfigMap, never on a command line), and an egress
  NetworkPolicy letting it reach DNS, Kafka's ports and its store only;
- with a Kafka client Secret (the product's `source.credentials.secretRef`, else the platform's
  `RenderOptions.kafka_secret`): that Secret mounted read-only into each consumer, and
  PROVISIONER_KAFKA_CONFIG naming its `client.properties` (`provisioner.kube.kafka_secret`). It is
  never rendered, only listed among the Secrets to create: its content is the platform's or the
  team's, not the spec's.
- per store with a `connection` (a `secretRef`, or the Secret rendered for a `url`): the Secret
  holding the URL mounted read-only at `STORE_FILES_DIR/<secret>` and PROVISIONER_STORE_FILES
  naming that folder, so the certificate files the URL names by a key of that Secret
  (`sslrootcert=ca.pem`) are found there (`provisioner.stores.url_files`).

Secrets are rendered only with `with_secrets`; otherwise each Rendered lists the Secrets left for
the user to create (name and keys). A store whose connection is a `secretRef` reads that Secret
directly. `${NAME}` in a connection URL is expanded only from `RenderOptions.environ`, the variables
the person rendering chose (`render --env NAME`); a reference to any other variable is refused
(`VariableRefused`), never read from the process environment: the spec's author does not get to
pick what of the renderer's environment (the operator's credentials key, a CI job's tokens) lands
in a Secret of the spec's namespace. The output is a pure function of the products and options:
rendering twice gives the same bytes.

Ownership: every object carries `app.kubernetes.io/managed-by: provisioner`, `part-of: <product>`,
`instance` and `component` labels; `RenderOptions.owner` (an ownerReference, set by the operator to
the DataProduct) is added to every object. Plain renders for GitOps have no owner: the GitOps tool
owns what it applies.

Called by `provisioner render` and the operator.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2
import yaml

from provisioner import __version__
from provisioner.kube import plain_yaml, shapes
from provisioner.kube.credentials import derive_credentials
from provisioner.kube.kafka_secret import MOUNT_DIR, PROPERTIES_FILE, PROPERTIES_KEY, kafka_secret_of
from provisioner.plan import ConsumerPlan, plan
from provisioner.spec.findings import format_path
from provisioner.spec.models import DataProduct
from provisioner.stores.url_files import files_named, secret_key

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_POSTGRES_IMAGE",
    "DEFAULT_REDIS_IMAGE",
    "METRICS_PORT",
    "READER_LABEL_PREFIX",
    "SERVICE_ACCOUNT",
    "STORE_FILES_DIR",
    "RenderOptions",
    "RenderRefused",
    "Rendered",
    "SecretToCreate",
    "VariableRefused",
    "expand_variables",
    "object_name",
    "render",
    "to_yaml",
]

DEFAULT_IMAGE = f"provisioner:{__version__}"
DEFAULT_REDIS_IMAGE = "redis:7.4.2"
DEFAULT_POSTGRES_IMAGE = "postgres:17.2"
METRICS_PORT = 9102
SPEC_DIR = "/etc/provisioner"
SPEC_FILE = "product.yaml"
STORE_FILES_DIR = "/etc/provisioner-stores"  # + /<secret>: the Secret holding a store's URL and its files
READER_LABEL_PREFIX = "reads.provisioner.dev/"
# The pods' ServiceAccount: named explicitly, so a workload rendered under an older per-product
# account is moved onto it (and that account pruned) rather than left pointing at a deleted one.
SERVICE_ACCOUNT = "default"
_URL_KEY = "url"  # the key of a connection Secret that holds the store's URL
_PORTS = {"redis": 6379, "postgres": 5432}
_NAME_MAX = 47  # leaves room for suffixes and StatefulSet revision labels within 63 characters
_RESOURCES = {
    "consumer": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
    "redis": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
    "postgres": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
}


OPERATOR_NAMESPACE = "provisioner-system"
OPERATOR_POD_LABELS = {"app.kubernetes.io/name": "provisioner-operator"}  # operators/deployment.yaml's pods


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """What the platform decides, not the spec: Kafka, images, storage, secrets, the owner."""

    kafka_bootstrap: str
    namespace: str | None = None  # overrides every product's metadata.namespace
    image: str = DEFAULT_IMAGE
    redis_image: str = DEFAULT_REDIS_IMAGE
    postgres_image: str = DEFAULT_POSTGRES_IMAGE
    storage_size: str = "1Gi"
    with_secrets: bool = False
    credentials_key: bytes | None = None  # needed with with_secrets when a store is managed
    # With with_secrets and no key: list managed stores' credentials as derived by the operator
    # (`provisioner plan` without the key) instead of refusing to render.
    leave_derived: bool = False
    owner: dict[str, Any] | None = None  # an ownerReference added to every object
    # The only variables ${NAME} in a connection URL may expand to (chosen by whoever renders);
    # None or empty: every reference is refused.
    environ: Mapping[str, str] | None = field(default=None, repr=False)
    operator_namespace: str = OPERATOR_NAMESPACE  # the operator's pods may reach managed stores (positions)
    # The platform's Kafka client Secret, by name, in each product's namespace (None: a bootstrap
    # address only); a product's source.credentials.secretRef replaces it.
    kafka_secret: str | None = None
    # That Secret's resourceVersion as the operator last read it: a pod-template annotation, so a
    # rotated Secret rolls the consumers onto its new content (None: not known, no annotation).
    kafka_secret_version: str | None = None
    # False while that Secret is missing or its file would be refused: the consumers wait at 0
    # replicas instead of crash-looping (the operator's status says why).
    kafka_secret_usable: bool = True


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")  # as the consumer expands them


class RenderRefused(ValueError):
    """A spec render will not turn into objects; `parts`/`path` are the field to blame."""

    def __init__(self, parts: tuple[str | int, ...], message: str) -> None:
        self.parts = parts
        self.path = format_path(parts)
        super().__init__(message)


class VariableRefused(RenderRefused):
    """A connection URL names a variable the renderer was not given; `path` is the URL's field."""

    def __init__(self, parts: tuple[str | int, ...], variable: str) -> None:
        self.variable = variable
        super().__init__(parts, f"${{{variable}}} is not expanded here: only variables named by whoever renders "
                                "are (provisioner render --env NAME); the operator expands none, so keep the URL "
                                "in a Secret and use connection.secretRef")


def expand_variables(url: str, environ: Mapping[str, str] | None, parts: tuple[str | int, ...]) -> str:
    """`url` with each ${NAME} replaced by `environ[NAME]`; VariableRefused for a name not in it."""
    allowed = environ or {}

    def substitute(match: re.Match[str]) -> str:
        if match.group(1) not in allowed:
            raise VariableRefused(parts, match.group(1))
        return allowed[match.group(1)]

    return _VARIABLE.sub(substitute, url)


@dataclass(frozen=True, slots=True)
class SecretToCreate:
    """A Secret the objects read but render left out (no --with-secrets)."""

    namespace: str
    name: str
    keys: tuple[str, ...]
    hint: str
    # Named by the spec or the platform (shared by products), not a name render derives for this product.
    referenced: bool = False

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name} (keys: {', '.join(self.keys)}): {self.hint}"


@dataclass(frozen=True, slots=True)
class Rendered:
    """The objects of one product, in apply order."""

    product: str
    namespace: str
    objects: tuple[dict[str, Any], ...]
    secrets_to_create: tuple[SecretToCreate, ...]

    def yaml(self) -> str:
        header = [f"# Kubernetes objects of data product {self.namespace}/{self.product}, rendered by provisioner."]
        if self.secrets_to_create:
            header.append("# Create these Secrets before applying (--with-secrets renders the stores' ones):")
            header.extend(f"#   {secret}" for secret in self.secrets_to_create)
        return "\n".join(header) + "\n" + to_yaml(self.objects)


def object_name(*parts: str) -> str:
    """A name for an object: the parts joined by '-', shortened with a hash when longer than 47
    characters, and starting with a letter (Service names must)."""
    base = "-".join(parts)
    if len(base) <= _NAME_MAX and base[0].isalpha():
        return base
    digest = hashlib.sha256(base.encode()).hexdigest()[:8]
    head = base if base[0].isalpha() else f"dp-{base}"
    return f"{head[: _NAME_MAX - 9].rstrip('-')}-{digest}"


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(objects: Iterable[dict[str, Any]]) -> str:
    """Objects as one multi-document YAML text (keys in template order)."""
    return yaml.dump_all(list(objects), Dumper=_Dumper, sort_keys=False, width=120, explicit_start=True)


@functools.cache
def _environment() -> jinja2.Environment:
    """The templates, loaded and compiled once per process (the operator renders on every reconcile)."""
    folder = importlib.resources.files("provisioner.templates")
    sources = {item.name: item.read_text(encoding="utf-8") for item in folder.iterdir() if item.name.endswith(".j2")}
    environment = jinja2.Environment(
        # YAML, not HTML: every value enters a template through `tojson`, which quotes it.
        loader=jinja2.DictLoader(sources), undefined=jinja2.StrictUndefined, autoescape=False,  # noqa: S701
        keep_trailing_newline=True,
    )
    environment.filters["tojson"] = shapes.tojson  # the same output; placeholders for `shapes`
    return environment


def render(products: Iterable[DataProduct], options: RenderOptions) -> list[Rendered]:
    """The objects of each product, in the order given."""
    environment = _environment()
    by_product: dict[int, list[ConsumerPlan]] = {}
    order: list[DataProduct] = []
    for consumer in plan(products).consumers:
        if id(consumer.product) not in by_product:
            order.append(consumer.product)
        by_product.setdefault(id(consumer.product), []).append(consumer)
    return [_render_product(environment, product, by_product[id(product)], options) for product in order]


def _render_product(environment: jinja2.Environment, product: DataProduct, consumers: list[ConsumerPlan],
                    options: RenderOptions) -> Rendered:
    namespace = options.namespace or product.metadata.namespace
    name = product.name
    common = {
        "app.kubernetes.io/managed-by": "provisioner",
        "app.kubernetes.io/part-of": name,
    }
    product_labels = {**common, "app.kubernetes.io/name": "provisioner", "app.kubernetes.io/instance": name,
                      "app.kubernetes.io/component": "data-product"}
    stores: list[dict[str, Any]] = []
    secrets_to_create: list[SecretToCreate] = []
    for consumer in consumers:
        store, secret = _store_context(product, consumer, namespace, common, options)
        stores.append(store)
        if secret is not None:
            secrets_to_create.append(secret)
    kafka_secret = kafka_secret_of(product, options.kafka_secret)
    kafka_waits = kafka_secret is not None and not options.kafka_secret_usable  # no crash loop on a bad Secret
    if kafka_secret is not None:
        hint = ("the product's Kafka client properties" if product.spec.source.credentials
                else "the platform's Kafka client properties")
        secrets_to_create.append(SecretToCreate(
            namespace, kafka_secret, (PROPERTIES_KEY,),
            f"{hint} and, as further keys, the PEM files it names relative to it (e.g. ca.pem, client.pem, "
            "client.key); never rendered", referenced=True))
    spec_yaml = _consumer_spec(product, namespace, stores)
    spec_hash = hashlib.sha256(spec_yaml.encode()).hexdigest()[:16]
    for store in stores:
        store["pod_annotations"] = {
            "prometheus.io/scrape": "true", "prometheus.io/port": str(METRICS_PORT), "prometheus.io/path": "/metrics",
            "provisioner.dev/spec-hash": spec_hash,
        }
        if kafka_secret is not None and options.kafka_secret_version is not None:
            store["pod_annotations"]["provisioner.dev/kafka-secret-version"] = options.kafka_secret_version
    context = {
        "namespace": namespace,
        "owner": options.owner,
        "product_labels": product_labels,
        "service_account": SERVICE_ACCOUNT,
        "spec_config_map": object_name(name, "spec"),
        "spec_file": SPEC_FILE,
        "spec_dir": SPEC_DIR,
        "spec_yaml": spec_yaml,
        "reader_label": READER_LABEL_PREFIX + name,
        "operator_namespace": options.operator_namespace,
        "operator_pod_labels": OPERATOR_POD_LABELS,
        "images": {"consumer": options.image, "redis": options.redis_image, "postgres": options.postgres_image},
        "resources": _RESOURCES,
        "storage_size": options.storage_size,
        "kafka_bootstrap": options.kafka_bootstrap,
        "kafka": None if kafka_secret is None else {"secret": kafka_secret, "dir": MOUNT_DIR,
                                                     "file": PROPERTIES_FILE},
        "metrics_port": METRICS_PORT,
        "replicas": 0 if kafka_waits else product.spec.consumer.replicas,
        "kafka_ports": [{"port": port, "protocol": "TCP"} for port in _kafka_ports(options.kafka_bootstrap)],
        "outside": _OUTSIDE,
    }
    objects = _objects(environment, "configmap.yaml.j2", context)
    names: dict[tuple[str, str], str] = {}  # (kind, name) -> the store it was rendered for
    for index, store in enumerate(stores):
        scoped = {**context, "store": store}
        templates = ["secret.yaml.j2"] if store["secret_data"] is not None else []
        if store["managed"]:
            templates += ["store-service.yaml.j2", "store-networkpolicy.yaml.j2",
                          f"{store['kind']}-statefulset.yaml.j2"]
        for template in [*templates, "consumer-deployment.yaml.j2", "consumer-networkpolicy.yaml.j2"]:
            for obj in _objects(environment, template, scoped):
                key = (obj["kind"], obj["metadata"]["name"])
                if names.setdefault(key, store["name"]) != store["name"]:
                    raise RenderRefused(("spec", "stores", index, "name"),
                                        f"{key[0]} {key[1]} is also rendered for store {names[key]!r} (object names "
                                        "join product and store names with '-'): rename one of the stores")
                if obj["kind"] == "Deployment" and product.spec.consumer.autoscale == "external":
                    del obj["spec"]["replicas"]  # server-side apply then leaves them to the HPA or KEDA
                objects.append(obj)
    return Rendered(name, namespace, tuple(objects), tuple(secrets_to_create))


def _objects(environment: jinja2.Environment, template: str, context: dict[str, Any]) -> list[dict[str, Any]]:
    return shapes.render_objects(environment.get_template(template), context)


def _store_context(product: DataProduct, consumer: ConsumerPlan, namespace: str, common: dict[str, str],
                   options: RenderOptions) -> tuple[dict[str, Any], SecretToCreate | None]:
    """Names, labels and the connection Secret of one store and its consumer."""
    store = consumer.store
    base = object_name(product.name, store.name)
    instance = {**common, "app.kubernetes.io/instance": base, "provisioner.dev/store": store.name}
    store_selector = {"app.kubernetes.io/part-of": product.name, "app.kubernetes.io/instance": base,
                      "app.kubernetes.io/component": "store"}
    consumer_selector = {"app.kubernetes.io/part-of": product.name, "app.kubernetes.io/instance": base,
                         "app.kubernetes.io/component": "consumer"}
    context: dict[str, Any] = {
        "name": store.name,
        "kind": store.kind,
        "managed": store.managed,
        "service_name": base,
        "consumer_name": object_name(product.name, store.name, "consumer"),
        "egress_name": object_name(product.name, store.name, "consumer-egress"),
        "external_port": _url_port(store.connection.url if store.connection else None, _PORTS[store.kind]),
        "port": _PORTS[store.kind],
        "store_selector": store_selector,
        "consumer_selector": consumer_selector,
        "store_labels": {**instance, "app.kubernetes.io/name": store.kind, "app.kubernetes.io/component": "store"},
        "consumer_labels": {**instance, "app.kubernetes.io/name": "provisioner-consumer",
                            "app.kubernetes.io/component": "consumer"},
        "secret_labels": {**instance, "app.kubernetes.io/name": store.kind,
                          "app.kubernetes.io/component": "credentials"},
        "args": ["consume", "--spec", f"{SPEC_DIR}/{SPEC_FILE}", "--store", store.name, "--product", product.name,
                 "--metrics-port", str(METRICS_PORT)],
        "secret_data": None,
        "files_dir": None,  # where the Secret holding an unmanaged store's URL is mounted
        "username": "",
        "database": "",
    }
    connection = store.connection
    if connection is not None and connection.secret_ref is not None:
        name, key = connection.secret_ref.name, connection.secret_ref.key
        context.update(secret_name=name, secret_key=key, files_dir=f"{STORE_FILES_DIR}/{name}")
        return context, SecretToCreate(namespace, name, (key,), (
            f"the {store.kind} URL of store {store.name!r} and, as further keys, the certificate files it names by "
            "key (e.g. sslrootcert=ca.pem)"), referenced=True)
    if connection is not None:
        assert connection.url is not None
        parts = ("spec", "stores", product.spec.stores.index(store), store.kind, "connection", "url")
        name = object_name(product.name, store.name, "store-url")
        context.update(secret_name=name, secret_key=_URL_KEY, files_dir=f"{STORE_FILES_DIR}/{name}")
        files = tuple(_store_files(store.kind, connection.url, parts))
        if options.with_secrets and files:
            raise RenderRefused(parts, f"the URL names the file {files[0]}: a rendered Secret holds the URL only; "
                                       "keep the URL and its certificate files in one Secret and use "
                                       "connection.secretRef")
        if options.with_secrets:
            context["secret_data"] = {"url": expand_variables(connection.url, options.environ, parts)}
            return context, None
        return context, SecretToCreate(namespace, name, (_URL_KEY, *files),
                                       f"the {store.kind} URL of store {store.name!r} (its spec's connection.url)"
                                       + (" and the files it names, by those keys" if files else ""))
    # A managed store: its credentials Secret is read by the StatefulSet and the consumer alike.
    host = f"{base}.{namespace}.svc"
    if store.kind == "redis":
        username, database = "default", "0"
        url_shape = f"redis://:PASSWORD@{host}:6379/0"
    else:
        username, database = "provisioner", "provisioner"
        url_shape = f"postgresql://{username}:PASSWORD@{host}:5432/{database}"
    context.update(secret_name=object_name(product.name, store.name, "credentials"), secret_key=_URL_KEY,
                   username=username, database=database)
    if not options.with_secrets:
        return context, SecretToCreate(namespace, context["secret_name"], ("password", "url"),
                                       f"a password (hex digits) and the URL {url_shape} with it")
    if options.credentials_key is None and options.leave_derived:
        return context, SecretToCreate(namespace, context["secret_name"], ("password", "url"),
                                       "derived by the operator from its credentials key")
    if options.credentials_key is None:
        raise ValueError("rendering the Secrets of managed stores needs a credentials key")
    credentials = derive_credentials(options.credentials_key, namespace, product.name, store.name, store.kind)
    url = url_shape.replace("PASSWORD", credentials.password)
    context["secret_data"] = {"username": credentials.username, "password": credentials.password,
                              "database": credentials.database, "url": url}
    return context, None


# Any address but link-local (the cloud metadata service, 169.254.169.254, lives there).
_OUTSIDE = [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}},
            {"ipBlock": {"cidr": "::/0", "except": ["fe80::/10"]}}]


def _kafka_ports(bootstrap: str) -> list[int]:
    """The ports of the bootstrap servers (9092 when one names none); brokers share them in practice."""
    ports = set()
    for server in bootstrap.split(","):
        _, _, port = server.strip().rpartition(":")
        ports.add(int(port) if port.isdigit() and 0 < int(port) < 65536 else 9092)
    return sorted(ports)


def _store_files(kind: str, url: str, parts: tuple[str | int, ...]) -> list[str]:
    """The Secret keys a spec's connection URL names as files; RenderRefused for a path that
    cannot be one (a ${NAME} in a path is left for whoever creates the Secret)."""
    keys = []
    for parameter, path in files_named(kind, url).items():
        if "${" in path:
            continue
        key = secret_key(path)
        if key is None:
            raise RenderRefused(parts, f"the URL's {parameter} is {path!r}: in a cluster a certificate file is a "
                                       f"key of the Secret holding the URL, named by that key alone "
                                       f"(e.g. {parameter}=ca.pem)")
        keys.append(key)
    return keys


def _url_port(url: str | None, default: int) -> int:
    """A connection URL's port, else the store kind's default (a secretRef's URL is not known here)."""
    if url is None:
        return default
    try:
        return urllib.parse.urlsplit(url).port or default
    except ValueError:  # a port that is a ${NAME} or out of range
        return default


def _consumer_spec(product: DataProduct, namespace: str, stores: list[dict[str, Any]]) -> str:
    """The spec as the consumers read it from their ConfigMap: the product's namespace, no offline
    tests, no source.credentials (mounted instead), and every unmanaged store's connection replaced
    by the Secret its URL comes from."""
    document = product.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    document["metadata"]["namespace"] = namespace
    document["spec"].pop("tests", None)
    # The consumers get their own Kafka credentials as a mounted file, not through the spec.
    document["spec"]["source"].pop("credentials", None)
    for store_document, store in zip(document["spec"]["stores"], stores, strict=True):
        if not store["managed"]:
            store_document[store["kind"]]["connection"] = {
                "secretRef": {"name": store["secret_name"], "key": store["secret_key"]},
            }
    return plain_yaml.dump(document)  # yaml.dump's text (CSafeDumper, sort_keys=False, width=120, allow_unicode)
