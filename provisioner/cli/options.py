"""Options several commands share, declared once so their names, defaults and environment
variables never drift apart."""

from __future__ import annotations

from pathlib import Path

import typer

from provisioner.stream.settings import KafkaSettings, load_kafka_settings

STATE_DIR_OPTION = typer.Option(
    Path(".provisioner"), "--state-dir", envvar="PROVISIONER_STATE_DIR",
    help="Where local state lives: consumers, embedded stores, the dev broker.",
)
BOOTSTRAP_OPTION = typer.Option(
    None, "--bootstrap", envvar="PROVISIONER_KAFKA_BOOTSTRAP",
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


def kafka_connection(config: Path | None, bootstrap: str | None, state_dir: Path) -> KafkaSettings:
    """The one Kafka connection of a command: the properties file with `--bootstrap` over its
    address, or a plaintext `--bootstrap`, or else the dev broker of `state_dir`."""
    from provisioner.local.devbroker import resolve_bootstrap

    settings = load_kafka_settings(config, bootstrap)
    return settings if settings is not None else KafkaSettings(bootstrap=resolve_bootstrap(None, state_dir))
