"""Start the operator: Lease, caches, kopf and the work queue, in that order.

kopf authenticates with the same kubeconfig/context (or in-cluster service account) as
provisioner's own client, through an `on.login` handler. kopf's own event posting is off: the
reconciler posts one Event for a new product, then one per condition transition, and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf

from provisioner.kube.client import OPERATOR_USER_AGENT, KubeClient
from provisioner.kube.observe import Observer
from provisioner.kube.reconcile import Reconciler, Settings
from provisioner.operator.handlers import Controller, register
from provisioner.operator.leader import LeaseHolder
from provisioner.operator.webhook import WebhookConfig, register_validation
from provisioner.operator.webhook import server as webhook_server
from provisioner.stream.observe import KafkaObserver
from provisioner.stream.settings import load_kafka_settings

__all__ = ["OperatorConfig", "run"]

log = logging.getLogger("provisioner.operator")


@dataclass(frozen=True)
class OperatorConfig:
    settings: Settings
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    kubeconfig: Path | None = None
    context: str | None = None
    workers: int = 8
    resync: float = 30.0
    lease_namespace: str = "provisioner-system"
    lease_name: str = "provisioner-operator"
    lease_duration: int = 15
    lease_renew: float = 5.0
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    leader_election: bool = True
    webhook: WebhookConfig | None = None  # serve the validating webhook (see provisioner.operator.webhook)
    kafka_config: Path | None = None  # the Kafka client properties the operator's status reads use


def _login(client: KubeClient) -> Any:
    configuration = client.configuration

    def login(**_: Any) -> kopf.ConnectionInfo:
        token = None
        authorization = configuration.api_key.get("authorization") or configuration.api_key.get("BearerToken")
        if authorization:
            token = authorization.removeprefix("Bearer ").strip()
        return kopf.ConnectionInfo(
            server=configuration.host, ca_path=configuration.ssl_ca_cert, insecure=not configuration.verify_ssl,
            certificate_path=configuration.cert_file, private_key_path=configuration.key_file, token=token,
        )

    return login


def run(config: OperatorConfig) -> int:
    """Run until stopped; 0 on SIGTERM/SIGINT, 1 when the Lease was lost."""
    client = KubeClient.from_kubeconfig(config.kubeconfig, config.context, pool_size=config.workers + 4,
                                         user_agent=OPERATOR_USER_AGENT)
    stopping = threading.Event()
    lost = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    lease = LeaseHolder(client, config.lease_namespace, config.lease_name, config.identity,
                        duration=config.lease_duration, renew=config.lease_renew)
    if config.leader_election:
        if not lease.acquire(stopping):
            return 0

        def on_lost() -> None:
            lost.set()
            stopping.set()

        lease.keep(on_lost)
    kafka = KafkaObserver(load_kafka_settings(config.kafka_config, config.settings.kafka_bootstrap)
                          or config.settings.kafka_bootstrap)
    try:
        reconciler = Reconciler(client, config.settings, Observer(client, kafka))
        controller = Controller(client, reconciler, workers=config.workers, resync=config.resync)
        namespaces = list(config.namespaces) or None
        controller.prime(namespaces)
        log.info("operator: %d products, watching %s", len(controller.products),
                 ", ".join(config.namespaces) or "every namespace")
        asyncio.run(_serve(config, client, controller, stopping))
    finally:
        kafka.close()
        if config.leader_election and not lost.is_set():
            lease.release()
        client.close()
    return 1 if lost.is_set() else 0


async def _serve(config: OperatorConfig, client: KubeClient, controller: Controller, stopping: threading.Event) -> None:
    registry = kopf.OperatorRegistry()
    kopf.on.login(registry=registry)(_login(client))
    register(registry, controller)
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False
    settings.watching.server_timeout = 300
    if config.webhook is not None:
        register_validation(registry)
        settings.admission.server = webhook_server(config.webhook, stopping)
        settings.admission.managed = config.webhook.configuration
    stop_flag: asyncio.Event = asyncio.Event()
    loop = asyncio.get_running_loop()

    def watch_stop() -> None:
        stopping.wait()
        loop.call_soon_threadsafe(stop_flag.set)

    threading.Thread(target=watch_stop, name="stop-watcher", daemon=True).start()
    queue = asyncio.create_task(controller.run())

    def queue_ended(task: asyncio.Task[None]) -> None:
        # The queue only ends when cancelled; anything else would leave products unreconciled.
        if not task.cancelled() and task.exception() is not None:
            log.error("operator: the work queue failed; stopping", exc_info=task.exception())
            stopping.set()

    queue.add_done_callback(queue_ended)
    try:
        await kopf.operator(
            registry=registry, settings=settings, standalone=True, stop_flag=stop_flag,
            clusterwide=not config.namespaces, namespaces=list(config.namespaces),
        )
    finally:
        queue.cancel()
