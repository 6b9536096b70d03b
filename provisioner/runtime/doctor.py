"""`provisioner doctor`'s checks: from the settings the consumers use, is everything they need there?

One `Check` per question, in the order a consumer meets them: the broker answers, it accepts our
credentials, each source topic exists and may be READ, each dead-letter topic may be written (or,
missing, created), each consumer group may be joined, each store connects (TLS verified) and may be
written. A check that cannot be asked because an earlier one failed is `skip`ped, not failed twice.
Every failure carries a hint saying what to change. The I/O is behind two callables (`stream.probe`
and `stores.probe` in production), so the sorting here is tested without servers.

Honest limits: "may WRITE the dead-letter topic" is the broker's own answer to which operations the
principal holds on it (no record is produced); a missing dead-letter topic whose creation the
cluster-wide ACLs do not allow is a warning, since a CREATE ACL on that topic alone cannot be seen
without creating it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Literal, Protocol

from provisioner.errors import AuthenticationError, AuthorizationError, ProvisionerError, TLSError
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.stores.probe import StoreProbe
from provisioner.stream.probe import GroupAccess, TopicAccess
from provisioner.stream.settings import KafkaSettings

__all__ = ["Check", "KafkaQuestions", "StoreTarget", "failed", "kafka_checks", "store_checks"]

Status = Literal["ok", "warn", "fail", "skip"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    hint: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class StoreTarget:
    """A store to check: its URL as the consumer would resolve it, or why it is not checked."""

    product: DataProduct
    store: StoreSpec
    url: str | None
    shown: str  # the URL masked, or what stands for it
    skip: str | None = None  # why it is not checked (a managed store no `up` runs)
    problem: ProvisionerError | None = None  # why its URL cannot be had (a variable not set)


class KafkaQuestions(Protocol):
    """What `kafka_checks` asks the broker (`stream.probe.KafkaProbe`)."""

    def reachable(self) -> str: ...
    def cluster(self) -> frozenset[str]: ...
    def topic(self, topic: str) -> TopicAccess: ...
    def group(self, group: str) -> GroupAccess: ...


def failed(checks: Sequence[Check]) -> bool:
    return any(check.status == "fail" for check in checks)


def _acl_principal(settings: KafkaSettings) -> str:
    """How an ACL names us, for hints."""
    if settings.uses_sasl and settings.sasl_username:
        return f"User:{settings.sasl_username}"
    if settings.ssl_certificate_location:
        return "User:<the certificate's DN>"
    return "User:ANONYMOUS"


def _kafka_hint(error: ProvisionerError, settings: KafkaSettings) -> str:
    if isinstance(error, AuthenticationError):
        return "check sasl.username, sasl.password and sasl.mechanism in the Kafka client properties (--kafka-config)"
    if isinstance(error, TLSError):
        return ("check ssl.ca.location (the CA that signed the broker's certificate), the host names in "
                "bootstrap.servers, and for mutual TLS ssl.certificate.location / ssl.key.location")
    if isinstance(error, AuthorizationError):
        return f"ask the Kafka admins to grant the ACL to {_acl_principal(settings)}"
    return "check bootstrap.servers (--bootstrap) and that the broker runs and is reachable from here"


def kafka_checks(settings: KafkaSettings, products: Sequence[DataProduct], probe: KafkaQuestions, *,
                 store: str | None = None) -> list[Check]:
    """The Kafka checks for `products` (their groups: of the store named `store` only, if given)."""
    checks: list[Check] = []
    groups = [p.consumer_group(s) for p in products for s in p.spec.stores if store is None or s.name == store]

    def asked(name: str, question: Callable[[], Any]) -> tuple[bool, Any]:
        try:
            return True, question()
        except ProvisionerError as error:
            checks.append(Check(name, "fail", str(error), _kafka_hint(error, settings)))
            return False, None

    later = [*(f"kafka topic {p.spec.source.topic} readable" for p in products),
             *(f"kafka dead-letter topic {p.dead_letter_topic} writable" for p in products
               if p.spec.errors.mode == "deadLetter"),
             *(f"kafka group {group} joinable" for group in groups)]
    answered, address = asked("kafka broker answers", probe.reachable)
    if answered:
        checks.append(Check("kafka broker answers", "ok", f"{address} accepts connections"))
        answered, cluster_operations = asked("kafka authentication", probe.cluster)
        if answered:
            checks.append(Check("kafka authentication", "ok",
                                f"{settings.principal} connected over {settings.security_protocol}"))
    if not answered:
        return [*checks, *(Check(name, "skip", "Kafka is not usable: see above") for name in dict.fromkeys(later))]
    principal = _acl_principal(settings)
    for topic in dict.fromkeys(p.spec.source.topic for p in products):
        name = f"kafka topic {topic} readable"
        ok, access = asked(name, partial(probe.topic, topic))
        if ok:
            checks.append(_source_check(name, topic, access, settings.principal, principal))
    for topic in dict.fromkeys(p.dead_letter_topic for p in products if p.spec.errors.mode == "deadLetter"):
        name = f"kafka dead-letter topic {topic} writable"
        ok, access = asked(name, partial(probe.topic, topic))
        if ok:
            checks.append(_dead_letter_check(name, topic, access, cluster_operations, settings.principal, principal))
    for group in groups:
        name = f"kafka group {group} joinable"
        ok, found = asked(name, partial(probe.group, group))
        if not ok:
            continue
        if "READ" in found.operations:
            checks.append(Check(name, "ok", f"READ allowed (group {found.state.lower()})"))
        else:
            checks.append(Check(name, "fail", f"{settings.principal} may not READ group {group!r}",
                                f"grant READ on group {group} (a prefixed ACL covers rebuilds' groups) to {principal}"))
    return checks


def _source_check(name: str, topic: str, access: Any, user: str, principal: str) -> Check:
    if not access.exists:
        return Check(name, "fail", f"topic {topic!r} does not exist", "create it, or correct source.topic in the spec")
    if "READ" not in access.operations:
        return Check(name, "fail", f"{user} may not READ topic {topic!r}",
                     f"grant READ on topic {topic} to {principal}")
    return Check(name, "ok", f"{access.partitions} partitions, READ allowed")


def _dead_letter_check(name: str, topic: str, access: Any, cluster_operations: Any, user: str,
                       principal: str) -> Check:
    if access.exists and "WRITE" in access.operations:
        return Check(name, "ok", "WRITE allowed (no record was written)")
    if access.exists:
        return Check(name, "fail", f"{user} may not WRITE topic {topic!r}",
                     f"grant WRITE on topic {topic} to {principal}")
    if "CREATE" in cluster_operations:
        return Check(name, "ok", "does not exist yet: created at the first dead letter (CREATE allowed)")
    return Check(name, "warn",
                 f"topic {topic!r} does not exist, and the cluster's ACLs do not let {user} create topics",
                 f"create it, or grant CREATE and WRITE on topic {topic} to {principal}")


def _store_hint(error: ProvisionerError) -> str:
    if isinstance(error, AuthenticationError):
        return "check the user name and password in the store's URL (connection.url, --store-url)"
    if isinstance(error, TLSError):
        return ("check the URL's TLS parameters: Postgres sslmode=verify-full and sslrootcert (the CA file); "
                "Redis rediss:// with ssl_ca_certs; and that the host name is the one in the server's certificate")
    if isinstance(error, AuthorizationError):
        return "grant the URL's user the rights to create and write the store's tables or keys"
    return "check the URL's host and port and that the server runs and is reachable from here"


def store_checks(targets: Sequence[StoreTarget],
                 probe: Callable[[DataProduct, StoreSpec, str], StoreProbe]) -> list[Check]:
    checks: list[Check] = []
    for target in targets:
        name = f"store {target.product.metadata.namespace}/{target.product.name}/{target.store.name}"
        if target.problem is not None:
            checks.append(Check(name, "fail", str(target.problem),
                                "set what the store's connection.url refers to, or pass --store-url"))
            continue
        if target.url is None:
            checks.append(Check(name, "skip", target.skip or "no URL"))
            continue
        try:
            found = probe(target.product, target.store, target.url)
        except ProvisionerError as error:
            checks.append(Check(name, "fail", str(error), _store_hint(error)))
            continue
        detail = f"{target.shown}: connected, {found.tls}, written and undone"
        if found.verified:
            checks.append(Check(name, "ok", detail))
        else:
            checks.append(Check(name, "warn", detail,
                                "verify the server: Postgres sslmode=verify-full with sslrootcert, Redis rediss:// "
                                "with ssl_ca_certs" if not found.encrypted else
                                "turn verification on: Postgres sslmode=verify-full, Redis ssl_cert_reqs=required"))
    return checks
