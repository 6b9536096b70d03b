"""`provisioner operator`: reconcile DataProducts in a cluster until SIGTERM (see provisioner.operator)."""

from __future__ import annotations

from pathlib import Path

import typer

from provisioner import logs
from provisioner.cli.options import (
    CONTEXT_OPTION,
    KAFKA_CONFIG_OPTION,
    KAFKA_SECRET_OPTION,
    KUBECONFIG_OPTION,
    STORAGE_SIZE_OPTION,
    environment_key,
    image_option,
    kafka_secret_name,
    platform_bootstrap_option,
)
from provisioner.cli.output import fail
from provisioner.kube.autoscale import DEFAULT_COOL_DOWN_S
from provisioner.kube.reconcile import Settings
from provisioner.kube.render import DEFAULT_IMAGE, DEFAULT_POSTGRES_IMAGE, DEFAULT_REDIS_IMAGE


def operator(
    namespaces: list[str] = typer.Option([], "--namespace", "-n", help="Watch this namespace (repeatable)."),
    all_namespaces: bool = typer.Option(False, "--all-namespaces", "-A", help="Watch every namespace (default)."),
    kafka_bootstrap: str = platform_bootstrap_option(..., "The platform's Kafka bootstrap servers."),
    kafka_config: Path | None = KAFKA_CONFIG_OPTION,
    image: str = image_option("consumer", DEFAULT_IMAGE),
    redis_image: str = image_option("redis", DEFAULT_REDIS_IMAGE),
    postgres_image: str = image_option("postgres", DEFAULT_POSTGRES_IMAGE),
    storage_size: str = STORAGE_SIZE_OPTION,
    kubeconfig: Path | None = KUBECONFIG_OPTION,
    context: str | None = CONTEXT_OPTION,
    workers: int = typer.Option(8, "--workers", min=1, help="Products reconciled at once."),
    resync: float = typer.Option(30.0, "--resync", min=0.2,
                                 help="Seconds between status refreshes of every product (writes only on change)."),
    scale_down_delay: float = typer.Option(
        DEFAULT_COOL_DOWN_S, "--scale-down-delay", min=0.0,
        help="consumer.autoscale: seconds after a change of replicas before the operator removes consumers."),
    lease_namespace: str = typer.Option("provisioner-system", "--lease-namespace", envvar="POD_NAMESPACE",
                                        help="Namespace of the leader-election Lease."),
    lease_name: str = typer.Option("provisioner-operator", "--lease-name", help="Name of the leader-election Lease."),
    lease_duration: int = typer.Option(15, "--lease-duration", min=2, help="Seconds a Lease lasts without renewal."),
    leader_election: bool = typer.Option(True, "--leader-election/--no-leader-election"),
    log_level: str = typer.Option("INFO", "--log-level", envvar="PROVISIONER_LOG_LEVEL"),
    webhook: bool = typer.Option(False, "--webhook/--no-webhook", envvar="PROVISIONER_WEBHOOK",
                                 help="Serve the validating admission webhook (validate's checks at admission)."),
    webhook_port: int = typer.Option(9443, "--webhook-port", help="Port the webhook listens on."),
    webhook_service: str | None = typer.Option(
        None, "--webhook-service", envvar="PROVISIONER_WEBHOOK_SERVICE",
        help="NAMESPACE/NAME of the Service the API server calls the webhook through (in a cluster)."),
    webhook_host: str | None = typer.Option(
        None, "--webhook-host",
        help="Without --webhook-service: the API server calls https://HOST:PORT (development)."),
    webhook_configuration: str = typer.Option("provisioner.dev", "--webhook-configuration",
                                              help="Name of the ValidatingWebhookConfiguration the operator manages."),
    webhook_cert_dir: Path | None = typer.Option(None, "--webhook-cert-dir",
                                                 help="Where the generated certificates go (default: a new temp dir)."),
    health_port: int | None = typer.Option(None, "--health-port", min=1, max=65535, envvar="PROVISIONER_HEALTH_PORT",
                                           help="Serve the liveness (/healthz) and readiness (/readyz) probes here."),
    kafka_secret: str | None = KAFKA_SECRET_OPTION,
) -> None:
    """Run the operator: DataProducts in the cluster become consumers, stores and a status."""
    from provisioner.operator import OperatorConfig, run
    from provisioner.operator.webhook import WebhookConfig

    logs.configure(log_level)
    if webhook_service is not None and "/" not in webhook_service:
        fail("--webhook-service is NAMESPACE/NAME")
    if "." not in webhook_configuration:
        fail("--webhook-configuration must be a domain name such as provisioner.dev (webhook names derive from it)")
    if namespaces and all_namespaces:
        fail("--namespace and --all-namespaces exclude each other")
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap, credentials_key=environment_key(), image=image,
        redis_image=redis_image, postgres_image=postgres_image, storage_size=storage_size,
        operator_namespace=lease_namespace, scale_down_delay=scale_down_delay,
        kafka_secret=kafka_secret_name(kafka_secret),
    )
    config = OperatorConfig(
        settings=settings, namespaces=tuple(namespaces), kubeconfig=kubeconfig, context=context, workers=workers,
        resync=resync, lease_namespace=lease_namespace, lease_name=lease_name, lease_duration=lease_duration,
        lease_renew=max(1.0, lease_duration / 3), leader_election=leader_election,
        webhook=WebhookConfig(port=webhook_port, host=webhook_host, service=webhook_service,
                              configuration=webhook_configuration, cert_dir=webhook_cert_dir) if webhook else None,
        health_port=health_port,
        kafka_config=kafka_config,
    )
    code = run(config)
    if code:
        raise typer.Exit(code)
