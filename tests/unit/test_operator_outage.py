"""What keeps the operator moving while a backend does not answer: status refreshes run beside
applies, Kafka calls share one outage window, pools never hold up a stop, and the probes say how it is."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import pytest

from provisioner.kube.client import KubeClient
from provisioner.kube.reconcile import Reconciler, ReconcileResult
from provisioner.kube.status import Observation
from provisioner.operator.handlers import Controller
from provisioner.operator.health import Health, serve
from provisioner.stream.kafka import KafkaUnavailable
from provisioner.stream.observe import KafkaObserver
from provisioner.threads import DaemonExecutor

KEY = ("sales", "orders")


def _body(generation: int = 1) -> dict[str, Any]:
    return {"apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct",
            "metadata": {"name": "orders", "namespace": "sales", "uid": "u1", "generation": generation}}


class SlowReads:
    """A reconciler whose store and Kafka reads wait until released, as they do for a broker that
    does not answer; applies and writes are recorded."""

    observer = None

    def __init__(self) -> None:
        self.applied: list[int] = []
        self.written: list[int] = []
        self.reading = threading.Event()
        self.release = threading.Event()

    def apply(self, body: Mapping[str, Any], live: Sequence[Mapping[str, Any]], *,
              secrets: bool = True) -> ReconcileResult:
        self.applied.append(body["metadata"]["generation"])
        return ReconcileResult()

    def observe(self, body: Mapping[str, Any]) -> Observation:
        self.reading.set()
        self.release.wait(60)
        return Observation(generation=body["metadata"]["generation"], stores=())

    def write_status(self, body: Mapping[str, Any], observation: Observation,
                     result: ReconcileResult | None = None) -> ReconcileResult:
        self.written.append(observation.generation)
        return ReconcileResult()


async def _until(what: str, probe: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.01)


def _controller(reads: SlowReads) -> Controller:
    controller = Controller(cast(KubeClient, object()), cast(Reconciler, reads), workers=2, status_workers=1,
                            resync=3600)
    controller.products[KEY] = _body()
    return controller


def test_a_status_refresh_waiting_on_kafka_holds_up_no_apply() -> None:
    reads = SlowReads()
    controller = _controller(reads)
    child = {"kind": "ConfigMap", "metadata": {"name": "orders-spec", "namespace": "sales",
                                               "labels": {"app.kubernetes.io/part-of": "orders"}}}

    async def scenario() -> None:
        queue = asyncio.create_task(controller.run())
        await _until("the status reads to start", reads.reading.is_set)
        for repaired in range(2, 5):  # a deleted child, again and again: each is applied at once
            controller.child_event("DELETED", child)
            await _until(f"apply {repaired}", lambda n=repaired: len(reads.applied) >= n)
        assert reads.written == []  # the status still waits on its reads
        # An edit meanwhile: the status read for generation 1 must not be written over it.
        controller.product_event("MODIFIED", _body(generation=2))
        await _until("the edit applied", lambda: 2 in reads.applied)
        reads.release.set()
        await _until("the status of generation 2", lambda: 2 in reads.written)
        queue.cancel()

    asyncio.run(scenario())
    assert reads.written == [2]


def test_after_close_a_status_refresh_still_reading_writes_nothing() -> None:
    reads = SlowReads()
    controller = _controller(reads)

    async def scenario() -> None:
        queue = asyncio.create_task(controller.run())
        await _until("the status reads to start", reads.reading.is_set)
        queue.cancel()  # the stop path: no more work
        with contextlib.suppress(asyncio.CancelledError):
            await queue
        reads.release.set()
        assert controller.drain(30, statuses=True)

    asyncio.run(scenario())
    assert reads.applied == [1]
    assert reads.written == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _failures(observer: KafkaObserver, calls: list[Callable[[], object]]) -> list[str]:
    messages = []
    for call in calls:
        with pytest.raises(KafkaUnavailable) as failed:
            call()
        messages.append(str(failed.value))
    return messages


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # kafka-python leaves refused sockets to the collector
def test_kafka_calls_share_one_outage_window_with_one_message(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="kafka")  # its records hold its connections (and sockets) alive
    now = [0.0]
    bootstrap = f"127.0.0.1:{_closed_port()}"
    observer = KafkaObserver(bootstrap, timeout=2.0, retry_after=5.0, clock=lambda: now[0])
    try:
        # Every call in the window gives the same words, whatever it asks: a status refresh of
        # many products costs one wait, and their status does not change from one refresh to the next.
        messages = _failures(observer, [lambda: observer.end_offsets("orders.v1"),
                                        lambda: observer.group_members("sales.orders.cache"),
                                        lambda: observer.dead_letters("dlq")])
        assert messages == [f"Kafka at {bootstrap} is unavailable"] * 3
        now[0] += 6.0  # the window is over: Kafka is asked again (and still refuses)
        assert _failures(observer, [lambda: observer.group_members("sales.orders.cache")]) == messages[:1]
    finally:
        observer.close()
    gc.collect()  # here, where the warnings of the sockets kafka-python left behind are ignored


def test_a_daemon_pool_cancels_queued_calls_and_waits_only_as_long_as_asked() -> None:
    pool = DaemonExecutor(1, "test")
    started, release = threading.Event(), threading.Event()

    def stuck() -> bool:
        started.set()
        return release.wait(60)

    running = pool.submit(stuck)
    queued = pool.submit(lambda: "never")
    assert started.wait(30)
    pool.shutdown(wait=False, cancel_futures=True)
    assert queued.cancelled()
    assert pool.join(0.05) is False  # the stuck call is not waited for beyond the bound
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)
    release.set()
    assert running.result(30) is True
    assert pool.join(30) is True
    assert all(thread.daemon for thread in threading.enumerate() if thread.name.startswith("test-"))


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_probes_say_whether_the_loop_turns_and_whether_to_send_traffic() -> None:
    now = [0.0]
    health = Health(stale_after=30.0, clock=lambda: now[0])
    server = serve(health, 0, host="127.0.0.1")
    port = int(server.server_address[1])
    try:
        assert _get(port, "/healthz") == (200, "ok: the work loop turns\n")
        assert _get(port, "/readyz") == (503, "not ok: starting\n")
        health.standby(answered=True)
        assert _get(port, "/readyz")[0] == 200
        health.standby(answered=False)
        assert _get(port, "/readyz") == (503, "not ok: standby: the API server does not answer\n")
        health.set_ready(True, "leader: caches primed")
        assert _get(port, "/readyz") == (200, "ok: leader: caches primed\n")
        now[0] += 31.0  # nothing turned for longer than allowed: the kubelet should restart it
        assert _get(port, "/healthz") == (503, "not ok: the work loop has not turned for 31 s\n")
        health.beat()
        assert _get(port, "/healthz")[0] == 200
        assert _get(port, "/metrics")[0] == 404
    finally:
        server.shutdown()
        server.server_close()
