"""`provisioner consume --spec FILE --store NAME`: run one store's consumer in the foreground.

The same entry point runs under `provisioner up`'s supervisor and in a Kubernetes pod. SIGTERM and
Ctrl-C finish the batch in hand, then exit 0. With `--metrics-port`, one HTTP server on
`--metrics-host` serves `/metrics` and `/healthz` (200 while the loop completes iterations, 503
after `--stall-after` seconds without one). Exit 2: halted by `errors.mode: stop`; 3: the store's
schema is incompatible with the spec.

`--kafka-config FILE` (PROVISIONER_KAFKA_CONFIG) is the Kafka client properties file every Kafka call
of the process uses (TLS, SASL; spec.md, "Connections"); `--bootstrap` overrides its address.

`--kafka-client` (PROVISIONER_KAFKA_CLIENT) chooses the Kafka client: `confluent` (librdkafka, the
default, several times cheaper per record) or `kafka-python` (pure Python: for a platform without
confluent-kafka's librdkafka wheel, or to debug the client). Both keep the same guarantees.

A few Kafka client settings can be tuned from the environment, for platforms whose broker limits
differ and for tests that need a consumer to be evicted quickly:
`PROVISIONER_KAFKA_SESSION_TIMEOUT_MS`, `PROVISIONER_KAFKA_HEARTBEAT_INTERVAL_MS`,
`PROVISIONER_KAFKA_MAX_POLL_INTERVAL_MS`, `PROVISIONER_KAFKA_REQUEST_TIMEOUT_MS`.

When the spec's content rules differ from the ones the store was built with, the store is first
rebuilt beside itself and switched (runtime/rebuild.py), by the one replica elected to rebuild;
`PROVISIONER_REBUILD_LEASE_MS` sets a Redis store's rebuilder lease (how soon a killed rebuilder
is replaced). `--until` bounds the store in time.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Any

import typer

from provisioner import logs
from provisioner.cli.options import (
    BOOTSTRAP_OPTION,
    KAFKA_CONFIG_OPTION,
    STATE_DIR_OPTION,
    kafka_connection,
    until_option,
)
from provisioner.cli.output import fail
from provisioner.errors import ProvisionerError
from provisioner.runtime.connection import mask_url, store_url
from provisioner.runtime.metrics import DEFAULT_STALL_AFTER, ConsumerMetrics
from provisioner.runtime.rebuild import StoreRunner, with_overrides
from provisioner.spec.loader import load_products
from provisioner.spec.models import DataProduct
from provisioner.stores.url_files import resolve as resolve_files
from provisioner.stream.client import CONFLUENT, DEFAULT_KAFKA_CLIENT, KAFKA_CLIENT_ENV, KAFKA_PYTHON
from provisioner.stream.registry import registry_for

_KAFKA_ENV_SETTINGS = {
    "PROVISIONER_KAFKA_SESSION_TIMEOUT_MS": "session_timeout_ms",
    "PROVISIONER_KAFKA_HEARTBEAT_INTERVAL_MS": "heartbeat_interval_ms",
    "PROVISIONER_KAFKA_MAX_POLL_INTERVAL_MS": "max_poll_interval_ms",
    "PROVISIONER_KAFKA_REQUEST_TIMEOUT_MS": "request_timeout_ms",
}


class KafkaClient(StrEnum):
    confluent = CONFLUENT
    kafka_python = KAFKA_PYTHON


def kafka_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """Consumer settings overridden by the environment (integers, milliseconds), in kafka-python's
    spelling (the confluent client translates them)."""
    settings: dict[str, Any] = {}
    for variable, setting in _KAFKA_ENV_SETTINGS.items():
        raw = environ.get(variable)
        if raw is None or not raw.strip():
            continue
        try:
            value = int(raw)
        except ValueError:
            fail(f"{variable} must be an integer number of milliseconds, not {raw!r}")
        if value <= 0:
            fail(f"{variable} must be positive, not {value}")
        settings[setting] = value
    session = settings.get("session_timeout_ms")
    if session is not None and "heartbeat_interval_ms" not in settings:
        # Both clients require heartbeats well inside the session; a third is the usual ratio.
        settings["heartbeat_interval_ms"] = max(100, min(3000, session // 3))
    return settings


def lease_seconds(environ: Mapping[str, str]) -> float | None:
    """PROVISIONER_REBUILD_LEASE_MS: how long a Redis store's rebuilder lease outlives its holder
    (None: the default). Shorter means a killed rebuilder is replaced sooner."""
    raw = environ.get("PROVISIONER_REBUILD_LEASE_MS", "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        fail(f"PROVISIONER_REBUILD_LEASE_MS must be an integer number of milliseconds, not {raw!r}")
    if value < 300:
        fail(f"PROVISIONER_REBUILD_LEASE_MS must be at least 300, not {value}")
    return value / 1000


def select_product(spec: Path, product: str | None) -> DataProduct:
    """The one product of `spec`, or the one named `product` when the file holds several."""
    products = [s.product for s in load_products([spec])]
    if product is not None:
        for candidate in products:
            if candidate.name == product:
                return candidate
        fail(f"{spec} has no data product named {product!r}")
    if len(products) > 1:
        fail(f"{spec} holds {len(products)} data products: choose one with --product")
    return products[0]


def consume(
    spec: Path = typer.Option(..., "--spec", help="The DataProduct spec file."),
    store: str = typer.Option(..., "--store", help="Which of the product's stores to hydrate."),
    product: str | None = typer.Option(None, "--product", help="The product's name, if the file holds several."),
    bootstrap: str | None = BOOTSTRAP_OPTION,
    kafka_config: Path | None = KAFKA_CONFIG_OPTION,
    store_url_option: str | None = typer.Option(None, "--store-url", envvar="PROVISIONER_STORE_URL",
                                                help="Store URL (default: the spec's connection.url).",
                                                show_envvar=True),
    store_files: str | None = typer.Option(None, "--store-files", envvar="PROVISIONER_STORE_FILES",
                                           help="Folder of the certificate files the store URL names by a "
                                                "relative path (a pod mounts the URL's Secret there).",
                                           show_envvar=True),
    status_file: Path | None = typer.Option(None, "--status-file", help="Write status JSON here every second."),
    metrics_port: int | None = typer.Option(None, "--metrics-port", envvar="PROVISIONER_METRICS_PORT",
                                            help="Serve Prometheus metrics (/metrics) and a liveness check "
                                                 "(/healthz) on this port (0: any free port)."),
    metrics_host: str = typer.Option("127.0.0.1", "--metrics-host", envvar="PROVISIONER_METRICS_HOST",
                                     help="Address the metrics server binds (0.0.0.0 in a pod).", show_envvar=True),
    stall_after: float = typer.Option(DEFAULT_STALL_AFTER, "--stall-after", envvar="PROVISIONER_STALL_AFTER",
                                      min=0.001, show_envvar=True,
                                      help="/healthz answers 503 once the consume loop has not completed an "
                                           "iteration for this many seconds."),
    until: str | None = until_option("Hold the state as of this RFC 3339 instant and stop following "
                                     "(sets source.until for this run; a change rebuilds the store).",
                                     envvar="PROVISIONER_UNTIL"),
    kafka_client: KafkaClient = typer.Option(
        KafkaClient(DEFAULT_KAFKA_CLIENT), "--kafka-client", envvar=KAFKA_CLIENT_ENV, show_envvar=True,
        help="The Kafka client: confluent (librdkafka, fastest) or kafka-python (pure Python)."),
    state_dir: Path = STATE_DIR_OPTION,
    log_level: str = typer.Option("INFO", "--log-level", envvar="PROVISIONER_LOG_LEVEL"),
) -> None:
    """Hydrate one store from Kafka, effectively once, until SIGTERM or Ctrl-C."""
    logs.configure(log_level)
    chosen = select_product(spec, product)
    if until:
        chosen = with_overrides(chosen, until=until)
    try:
        store_spec = chosen.store(store)
    except KeyError as error:
        fail(str(error.args[0]))
    url = store_url(store_spec, store_url_option)
    if store_files:
        url = resolve_files(store_spec.kind, url, store_files)
    from provisioner.local.session import local_credentials_note

    note = local_credentials_note(chosen)  # a pod's spec has none: its Secret is mounted instead
    if note is not None:
        logging.getLogger(__name__).warning("%s", note)
    # Only a laptop without PROVISIONER_KAFKA_BOOTSTRAP needs the dev broker's address; a pod never does.
    kafka = kafka_connection(kafka_config, bootstrap, state_dir)
    try:  # a schema'd source without a registry: say so now, not after the store answered
        registry_for((chosen.spec.source.format, chosen.spec.source.key_format), kafka)
    except ProvisionerError as error:
        fail(str(error))
    consumer_config = kafka_settings(os.environ)
    metrics = ConsumerMetrics(chosen.name, store_spec.name)
    if metrics_port is not None:
        port = metrics.serve(metrics_port, metrics_host, stall_after=stall_after)
        shown = f"[{metrics_host}]" if ":" in metrics_host else metrics_host
        logging.getLogger(__name__).info("metrics on http://%s:%d/metrics, liveness on /healthz", shown, port)
    # Rebuilds the store beside itself first when the spec's content rules changed (runtime/rebuild.py).
    consumer = StoreRunner(
        chosen, store_spec, url, kafka,
        status_path=status_file, metrics=metrics, store_url_masked=mask_url(url), pid=os.getpid(),
        consumer_config=consumer_config, lease_seconds=lease_seconds(os.environ),
        kafka_client=kafka_client.value,
    )

    def request_stop(signum: int, frame: FrameType | None) -> None:
        consumer.stop()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    code = consumer.run()
    if code:
        raise typer.Exit(code)
