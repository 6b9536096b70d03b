"""Options several commands share, declared once so their names, defaults, environment variables
and checks never drift apart, and what they resolve to (a Kafka connection, a cluster client, the
credentials key)."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import typer

from provisioner.spec.timestamps import parse_rfc3339
from provisioner.stream.settings import KafkaSettings, load_kafka_settings

if TYPE_CHECKING:
    from provisioner.kube.client import KubeClient

STATE_DIR_OPTION = typer.Option(
    Path(".provisioner"), "--state-dir", envvar="PROVISIONER_STATE_DIR",
    help="Where local state lives: consumers, embedded stores, the dev broker.",
)

# Kafka -------------------------------------------------------------------------------------------

BOOTSTRAP_ENV: Final = "PROVISIONER_KAFKA_BOOTSTRAP"
BOOTSTRAP_OPTION = typer.Option(
    None, "--bootstrap", envvar=BOOTSTRAP_ENV,
    help="Kafka bootstrap servers (default: the dev broker).",
)
KAFKA_CONFIG_OPTION = typer.Option(
    None, "--kafka-config", envvar="PROVISIONER_KAFKA_CONFIG", show_envvar=True,
    help="Kafka client properties (as for Kafka's tools' --command-config): security.protocol, SASL, "
         "TLS files. --bootstrap overrides its bootstrap.servers.",
)

KAFKA_SECRET_OPTION = typer.Option(
    None, "--kafka-secret", envvar="PROVISIONER_KAFKA_SECRET", show_envvar=True, metavar="NAME",
    help="The platform's Kafka client Secret (keys client.properties and the PEM files it names), by name, in "
         "each product's namespace: consumers mount it read-only. A product's source.credentials.secretRef "
         "replaces it.",
)


def kafka_secret_name(name: str | None) -> str | None:
    """`--kafka-secret` checked: a Secret name (an RFC 1123 label), or None."""
    from provisioner.cli.output import fail
    from provisioner.spec.names import check_rfc1123_label

    if name is None:
        return None
    try:
        check_rfc1123_label(name, 63)
    except ValueError as error:
        fail(f"--kafka-secret: {error}")
    return name


def platform_bootstrap_option(default: Any, help: str) -> Any:
    """The platform's Kafka address for the cluster commands (`--bootstrap`, as everywhere else;
    `--kafka-bootstrap` is the same option under its earlier name)."""
    return typer.Option(default, "--bootstrap", "--kafka-bootstrap", envvar=BOOTSTRAP_ENV, help=help)


def kafka_connection(config: Path | None, bootstrap: str | None, state_dir: Path) -> KafkaSettings:
    """The one Kafka connection of a command: the properties file with `--bootstrap` over its
    address, or a plaintext `--bootstrap`, or else the dev broker of `state_dir`."""
    from provisioner.local.devbroker import resolve_bootstrap

    settings = load_kafka_settings(config, bootstrap)
    return settings if settings is not None else KafkaSettings(bootstrap=resolve_bootstrap(None, state_dir))


# Times -------------------------------------------------------------------------------------------

def _instant(value: str | None) -> str | None:
    if value is not None:
        try:
            parse_rfc3339(value)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None
    return value


def _start(value: str) -> str:
    if value not in ("earliest", "latest"):
        try:
            parse_rfc3339(value)
        except ValueError:
            raise typer.BadParameter(f"{value!r} is not earliest, latest or an RFC 3339 timestamp with a time "
                                     "zone (e.g. 2026-01-31T00:00:00Z)") from None
    return value


def until_option(help: str, envvar: str | None = None) -> Any:
    """`--until`: an RFC 3339 instant with a time zone, checked before anything starts."""
    return typer.Option(None, "--until", envvar=envvar, callback=_instant, help=help)


START_FROM_OPTION = typer.Option("earliest", "--from", callback=_start,
                                 help="earliest, latest or an RFC 3339 timestamp.")

# Clusters ----------------------------------------------------------------------------------------

class Target(StrEnum):
    """Where a command looks: the local `provisioner up` or a cluster."""

    local = "local"
    k8s = "k8s"


TARGET_OPTION = typer.Option(Target.local, "--target", help="local (provisioner up) or k8s (a cluster).")
KUBECONFIG_OPTION = typer.Option(None, "--kubeconfig", envvar="KUBECONFIG",
                                 help="Default: ~/.kube/config, else the Pod's service account.")
CONTEXT_OPTION = typer.Option(None, "--context", help="The kubeconfig context to use.")
NAMESPACE_OPTION = typer.Option(None, "--namespace", "-n",
                                help="Namespace of products whose spec names none (default: the context's).")


def connect(kubeconfig: Path | None, context: str | None, namespace: str | None) -> tuple[KubeClient, str]:
    """A client for the kubeconfig and context, and the namespace to use."""
    from provisioner.kube.client import KubeClient

    client = KubeClient.from_kubeconfig(kubeconfig, context)
    return client, namespace or client.namespace


# What the cluster builds -------------------------------------------------------------------------

_IMAGES: Final = {
    "consumer": ("--image", "PROVISIONER_IMAGE", "The provisioner image the consumers run."),
    "redis": ("--redis-image", "PROVISIONER_REDIS_IMAGE", "Image of managed Redis stores."),
    "postgres": ("--postgres-image", "PROVISIONER_POSTGRES_IMAGE", "Image of managed Postgres stores."),
}


def image_option(kind: str, default: str) -> Any:
    """An image the operator and `render` put in the objects they build (`consumer`, `redis`,
    `postgres`); the default is the caller's, from `provisioner.kube.render`."""
    flag, envvar, help = _IMAGES[kind]
    return typer.Option(default, flag, envvar=envvar, help=help)


STORAGE_SIZE_OPTION = typer.Option("1Gi", "--storage-size", envvar="PROVISIONER_STORAGE_SIZE",
                                   help="Volume size of each managed store.")

KEY_ENV: Final = "PROVISIONER_CREDENTIALS_KEY"
MIN_KEY_LENGTH: Final = 16


def environment_key() -> bytes | None:
    """The managed stores' credentials key from the environment, if set (at least 16 characters)."""
    configured = os.environ.get(KEY_ENV, "")
    if not configured:
        return None
    if len(configured.encode()) < MIN_KEY_LENGTH:
        raise typer.BadParameter(f"must be at least {MIN_KEY_LENGTH} characters", param_hint=KEY_ENV)
    return configured.encode()
