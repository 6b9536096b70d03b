"""`provisioner operator`: reconcile DataProducts in a cluster until SIGTERM (see provisioner.operator)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import typer

from provisioner.cli.output import fail
from provisioner.kube.reconcile import Settings
from provisioner.kube.render import DEFAULT_IMAGE, DEFAULT_POSTGRES_IMAGE, DEFAULT_REDIS_IMAGE

KEY_ENV = "PROVISIONER_CREDENTIALS_KEY"


def operator(
    namespaces: list[str] = typer.Option([], "--namespace", "-n", help="Watch this namespace (repeatable)."),
    all_namespaces: bool = typer.Option(False, "--all-namespaces", "-A", help="Watch every namespace (default)."),
    kafka_bootstrap: str = typer.Option(..., "--kafka-bootstrap", envvar="PROVISIONER_KAFKA_BOOTSTRAP",
                                        help="The platform's Kafka bootstrap servers."),
    image: str = typer.Option(DEFAULT_IMAGE, "--image", envvar="PROVISIONER_IMAGE",
                              help="The provisioner image the consumers run."),
    redis_image: str = typer.Option(DEFAULT_REDIS_IMAGE, "--redis-image", envvar="PROVISIONER_REDIS_IMAGE"),
    postgres_image: str = typer.Option(DEFAULT_POSTGRES_IMAGE, "--postgres-image", envvar="PROVISIONER_POSTGRES_IMAGE"),
    storage_size: str = typer.Option("1Gi", "--storage-size", envvar="PROVISIONER_STORAGE_SIZE"),
    kubeconfig: Path | None = typer.Option(None, "--kubeconfig", envvar="KUBECONFIG",
                                           help="Default: ~/.kube/config, else the Pod's service account."),
    context: str | None = typer.Option(None, "--context", help="The kubeconfig context to use."),
    workers: int = typer.Option(8, "--workers", min=1, help="Products reconciled at once."),
    resync: float = typer.Option(30.0, "--resync", min=0.2,
                                 help="Seconds between status refreshes of every product (writes only on change)."),
    lease_namespace: str = typer.Option("provisioner-system", "--lease-namespace", envvar="POD_NAMESPACE",
                                        help="Namespace of the leader-election Lease."),
    lease_name: str = typer.Option("provisioner-operator", "--lease-name", help="Name of the leader-election Lease."),
    lease_duration: int = typer.Option(15, "--lease-duration", min=2, help="Seconds a Lease lasts without renewal."),
    leader_election: bool = typer.Option(True, "--leader-election/--no-leader-election"),
    log_level: str = typer.Option("INFO", "--log-level", envvar="PROVISIONER_LOG_LEVEL"),
) -> None:
    """Run the operator: DataProducts in the cluster become consumers, stores and a status."""
    from provisioner.operator import OperatorConfig, run

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("kafka", "kopf", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if namespaces and all_namespaces:
        fail("--namespace and --all-namespaces exclude each other")
    key = os.environ.get(KEY_ENV, "")
    if key and len(key.encode()) < 16:
        fail(f"{KEY_ENV} must be at least 16 characters")
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap, credentials_key=key.encode() if key else None, image=image,
        redis_image=redis_image, postgres_image=postgres_image, storage_size=storage_size,
    )
    config = OperatorConfig(
        settings=settings, namespaces=tuple(namespaces), kubeconfig=kubeconfig, context=context, workers=workers,
        resync=resync, lease_namespace=lease_namespace, lease_name=lease_name, lease_duration=lease_duration,
        lease_renew=max(1.0, lease_duration / 3), leader_election=leader_election,
    )
    code = run(config)
    if code:
        raise typer.Exit(code)
