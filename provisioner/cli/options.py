"""Options several commands share, declared once so their names, defaults and environment
variables never drift apart."""

from __future__ import annotations

from pathlib import Path

import typer

STATE_DIR_OPTION = typer.Option(
    Path(".provisioner"), "--state-dir", envvar="PROVISIONER_STATE_DIR",
    help="Where local state lives: consumers, embedded stores, the dev broker.",
)
BOOTSTRAP_OPTION = typer.Option(
    None, "--bootstrap", envvar="PROVISIONER_KAFKA_BOOTSTRAP",
    help="Kafka bootstrap servers (default: the dev broker).",
)
