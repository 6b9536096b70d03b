"""Leader election with a coordination.k8s.io Lease: only the holder reconciles.

`LeaseHolder.acquire` blocks until the Lease is free (never held, released, or not renewed for
`duration` seconds) and takes it with an optimistic-concurrency update, so of two processes
racing for it exactly one wins. The holder renews it every `renew` seconds from a thread (one
PUT at the version it last wrote, no read: half the requests of a read and a write); a
renewal that fails for longer than the lease lasts, or finds another holder, calls `on_lost`
(the operator then exits: a new leader may already act). On a clean stop the Lease is released,
so a successor takes over at once; after a crash (SIGKILL) it waits out `duration`.

Renewals are writes to this one Lease, never to a product or its objects: an idle operator's
only writes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from provisioner.errors import ConflictError, ProvisionerError
from provisioner.kube.client import KubeClient

__all__ = ["LeaseHolder"]

log = logging.getLogger(__name__)


def _micro_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


class LeaseHolder:
    """Holds one Lease on behalf of `identity`."""

    def __init__(self, client: KubeClient, namespace: str, name: str, identity: str, *,
                 duration: int = 15, renew: float = 5.0) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration
        self.renew = renew
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._held: dict[str, Any] | None = None  # the Lease as our last write left it

    def _body(self, current: dict[str, Any] | None, *, acquire: bool) -> dict[str, Any]:
        now = _micro_time(datetime.now(UTC))
        spec = dict((current or {}).get("spec") or {})
        if acquire:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions", 0)) + (1 if current else 0)
        spec.update(holderIdentity=self.identity, leaseDurationSeconds=self.duration, renewTime=now)
        body: dict[str, Any] = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}
        if current is not None:
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return body

    def _free(self, lease: dict[str, Any]) -> bool:
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        if not holder or holder == self.identity:
            return True
        renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime")) or 0.0
        return time.time() > renewed + float(spec.get("leaseDurationSeconds") or self.duration)

    def try_acquire(self) -> bool:
        lease = self.client.get("Lease", self.namespace, self.name)
        try:
            if lease is None:
                self._held = self.client.create(self._body(None, acquire=True))
                return True
            if not self._free(lease):
                return False
            self._held = self.client.replace(self._body(lease, acquire=True))
            return True
        except ConflictError:
            return False  # someone else took it (or created it) first

    def _renew(self) -> bool:
        """One renewal; False when someone else holds the Lease now. A PUT at the resourceVersion
        of our own last write: it succeeds only if nobody wrote since, so the usual read before
        it is needed only after a conflict (or a failed write) to tell a new holder apart."""
        held = self._held
        if held is not None:
            try:
                self._held = self.client.replace(self._body(held, acquire=False))
                return True
            except ConflictError:
                self._held = None
            except ProvisionerError:
                self._held = None  # the write may have landed: read the Lease again next time
                raise
        lease = self.client.get("Lease", self.namespace, self.name)
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            return False
        self._held = self.client.replace(self._body(lease, acquire=False))
        return True

    def acquire(self, stop: threading.Event | None = None, *, poll: float = 1.0,
                on_poll: Callable[[bool], None] | None = None) -> bool:
        """Block until held (True) or `stop` is set (False); `on_poll(answered)` after each poll
        that did not get the Lease (the health endpoint's standby state)."""
        waiting = stop or threading.Event()
        waiting_logged = False
        while not waiting.is_set():
            answered = False
            try:
                if self.try_acquire():
                    log.info("leader: holding Lease %s/%s as %s", self.namespace, self.name, self.identity)
                    return True
                answered = True
            except ProvisionerError as error:
                log.warning("leader election: %s", error)
            if on_poll is not None:
                on_poll(answered)
            if not waiting_logged:
                log.info("leader election: another operator holds Lease %s/%s; waiting", self.namespace, self.name)
                waiting_logged = True
            waiting.wait(poll)
        return False

    def keep(self, on_lost: Callable[[], None]) -> None:
        """Renew from a daemon thread until `release`; `on_lost` when the Lease is lost."""
        def loop() -> None:
            last_renewed = time.monotonic()
            while not self._stopped.wait(self.renew):
                try:
                    if not self._renew():
                        log.error("leader: Lease %s/%s is held by someone else now", self.namespace, self.name)
                        on_lost()
                        return
                    last_renewed = time.monotonic()
                except ProvisionerError as error:
                    log.warning("leader: cannot renew the Lease: %s", error)
                    if time.monotonic() - last_renewed > self.duration:
                        on_lost()
                        return

        self._thread = threading.Thread(target=loop, name="lease-renewal", daemon=True)
        self._thread.start()

    def release(self, wait: float = 2.0) -> None:
        """Stop renewing and give the Lease up, so a successor need not wait it out. A renewal
        still in flight gets `wait` seconds to end (the stop path has a deadline)."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=wait)
        try:
            lease = self.client.get("Lease", self.namespace, self.name)
            if lease is not None and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                body = self._body(lease, acquire=False)
                body["spec"]["holderIdentity"] = ""
                self.client.replace(body)
        except ProvisionerError as error:
            log.warning("leader: cannot release the Lease: %s", error)
