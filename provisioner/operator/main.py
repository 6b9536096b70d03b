"""Start the operator: Lease, caches, the watches, the work queue and kopf, in that order.

The watches of products and children are the operator's own (`operator.watches`); kopf serves the
admission webhook. kopf authenticates with the same kubeconfig/context (or in-cluster service account) and the same
token source as provisioner's own client, through an `on.login` handler. kopf's own event posting is off: the
reconciler posts one Event per condition transition (none for a new product's first status unless it
reports a failure) and one per autoscaling change, and nothing else.

Stopping (SIGTERM, SIGINT) is bounded, whatever Kafka or a store does: the work queue stops taking
work at once, kopf stops (removing the webhook from its configuration), running applies get a
moment to end, the Lease is released, and the process exits; threads still waiting on a backend
are daemons and are left behind. Should any step hang, a watchdog ends the process `stop_timeout`
seconds after the signal (exit code 1), inside the Pod's termination grace period (10 s in the
bundle). `--health-port` serves the liveness and readiness probes (see
`provisioner.operator.health`).
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
from typing import Any, cast

import kopf

from provisioner.errors import SetupError
from provisioner.kube.client import OPERATOR_USER_AGENT, KubeClient
from provisioner.kube.observe import Observer
from provisioner.kube.reconcile import Reconciler, Settings
from provisioner.operator.handlers import Controller
from provisioner.operator.health import Health
from provisioner.operator.health import serve as serve_health
from provisioner.operator.kafka_follow import follow as follow_kafka_settings
from provisioner.operator.leader import LeaseHolder
from provisioner.operator.watches import Watches
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
    health_port: int | None = None  # serve /healthz and /readyz (see provisioner.operator.health)
    stop_timeout: float = 8.0  # after SIGTERM, exit within this long whatever hangs
    kafka_config: Path | None = None  # the Kafka client properties the operator's status reads use


def _login(client: KubeClient) -> Any:
    """kopf's credentials: the same connection and the same token source as provisioner's client.
    kopf calls this again after a 401 and once the token's expiry passes, so a rotated or expired
    token is fetched again (the source is asked to drop its cached one first)."""
    configuration = client.configuration
    calls = 0

    def login(**_: Any) -> kopf.ConnectionInfo:
        nonlocal calls
        if calls:
            client.credentials.expire()
        calls += 1
        authorization = client.credentials.authorization()
        return kopf.ConnectionInfo(
            server=configuration.host, ca_path=configuration.ssl_ca_cert, insecure=not configuration.verify_ssl,
            certificate_path=configuration.cert_file, private_key_path=configuration.key_file,
            token=authorization.removeprefix("Bearer ") if authorization else None,
            expiration=client.credentials.expires(), default_namespace=client.namespace,
        )

    return login


def run(config: OperatorConfig) -> int:
    """Run until stopped; 0 on SIGTERM/SIGINT, 1 when the Lease was lost."""
    # A connection for each apply and status worker, the Lease and the webhook: a pool smaller than
    # the threads using it closes the surplus connections, and each new one is a TLS handshake.
    client = KubeClient.from_kubeconfig(config.kubeconfig, config.context,
                                         pool_size=config.workers + _status_workers(config) + 4,
                                         user_agent=OPERATOR_USER_AGENT)
    stopping = threading.Event()
    lost = threading.Event()
    health = Health()

    def stop(*_: Any) -> None:
        if not stopping.is_set():
            log.info("operator: stopping (within %g s)", config.stop_timeout)
            _watchdog(config.stop_timeout)
        health.set_ready(False, "stopping")
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    if config.health_port is not None:
        try:
            serve_health(health, config.health_port)
        except OSError as error:
            raise SetupError(f"cannot serve the probes on port {config.health_port}: {error.strerror}") from None
    lease = LeaseHolder(client, config.lease_namespace, config.lease_name, config.identity,
                        duration=config.lease_duration, renew=config.lease_renew)
    if config.leader_election:
        if not lease.acquire(stopping, on_poll=health.standby):
            return 0

        def on_lost() -> None:
            lost.set()
            stop()

        lease.keep(on_lost)
    settings = load_kafka_settings(config.kafka_config, config.settings.kafka_bootstrap)
    kafka = KafkaObserver(settings or config.settings.kafka_bootstrap)
    kafka.connect_ahead()
    if config.kafka_config is not None and settings is not None:  # a rotated Secret: new settings, no restart
        follow_kafka_settings(config.kafka_config, config.settings.kafka_bootstrap, settings, kafka, stopping)
    controller: Controller | None = None
    try:
        reconciler = Reconciler(client, config.settings, Observer(client, kafka))
        controller = Controller(client, reconciler, workers=config.workers, resync=config.resync,
                                status_workers=_status_workers(config), on_turn=health.beat)
        namespaces = list(config.namespaces) or None
        controller.prime(namespaces)
        log.info("operator: %d products, watching %s", len(controller.products),
                 ", ".join(config.namespaces) or "every namespace")
        if not stopping.is_set():
            health.set_ready(True, "leader: caches primed" if config.leader_election else "caches primed")
        _in_thread(lambda: asyncio.run(_serve(config, client, controller, stopping)))
    finally:
        health.set_ready(False, "stopping")
        if controller is not None:
            controller.close()
            if not controller.drain(_DRAIN_S):
                log.warning("operator: an apply did not end within %g s; stopping anyway", _DRAIN_S)
        if config.leader_election and not lost.is_set():
            lease.release()
        kafka.close(timeout=0.2)  # a call still waiting on Kafka is left to its daemon thread
        client.close()
    log.info("operator: stopped")
    return 1 if lost.is_set() else 0


_DRAIN_S = 2.0  # how long running applies may take to end on a stop


def _status_workers(config: OperatorConfig) -> int:
    return max(1, config.workers // 2)


class _NoDiffBase(kopf.DiffBaseStorage):
    """No "last handled" essence: the operator has only event handlers, which need none, while
    kopf's own storage deep-copies every body of every event to build one (a third of the
    operator's CPU at a thousand products). Nothing is stored on the objects either way."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return cast(kopf.BodyEssence, {})

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def _signals_are_ours(record: logging.LogRecord) -> bool:
    """Drop kopf's warning that it ignores OS signals: the operator handles them (see `_in_thread`)."""
    return not record.getMessage().startswith("OS signals are ignored")


def _in_thread(work: Any) -> None:
    """Run `work` on a thread of its own and wait for it. The event loop runs off the main thread
    so that the signal handlers stay the operator's: kopf installs its own on a loop in the main
    thread, which would skip the watchdog and the readiness change of a stop."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except BaseException as error:  # re-raised on the main thread
            failure.append(error)

    kopf_running = logging.getLogger("kopf._core.reactor.running")
    if _signals_are_ours not in kopf_running.filters:
        kopf_running.addFilter(_signals_are_ours)
    thread = threading.Thread(target=target, name="operator-loop", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.5)  # wakes for signals
    if failure:
        raise failure[0]


def _watchdog(timeout: float) -> None:
    """End the process `timeout` seconds from now if it has not ended by itself."""
    def expire() -> None:
        log.error("operator: not stopped within %g s; exiting now", timeout)
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()


async def _serve(config: OperatorConfig, client: KubeClient, controller: Controller, stopping: threading.Event) -> None:
    registry = kopf.OperatorRegistry()
    kopf.on.login(registry=registry)(_login(client))
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False
    settings.persistence.diffbase_storage = _NoDiffBase()
    settings.watching.server_timeout = 300
    if config.webhook is not None:
        register_validation(registry, controller.reconciler.names_held)
        settings.admission.server = webhook_server(config.webhook, stopping, client)
    stop_flag: asyncio.Event = asyncio.Event()
    loop = asyncio.get_running_loop()

    queue = asyncio.create_task(controller.run())
    watches = Watches(client, controller)
    watches.start()

    def stop_now() -> None:  # no new work first, then kopf's own stop
        queue.cancel()
        stop_flag.set()

    def watch_stop() -> None:
        stopping.wait()
        loop.call_soon_threadsafe(stop_now)

    threading.Thread(target=watch_stop, name="stop-watcher", daemon=True).start()

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
        watches.stop()
