"""The version fence and the rebuilder election against real Redis and Postgres: after a switch, a
batch of the old spec is refused even when its positions match the new version's (they often do:
both caught up to the same offsets), and only the election's holder can switch."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from provisioner.pipeline.ops import Change, Upsert
from provisioner.spec.fingerprint import fingerprint
from provisioner.spec.models import DataProduct
from provisioner.stores.base import Store, VersionFence, VersionMoved
from provisioner.stores.election import LeaseTiming, RedisElection, open_election
from provisioner.stores.registry import open_store
from provisioner.stores.versions import NotRebuilder, open_shadow_store, open_versions, shadow_for, version_id
from tests.integration.test_consumer_stores import store_url

pytestmark = pytest.mark.integration


def product(name: str, kind: str, note: str) -> DataProduct:
    store: dict[str, Any] = ({"name": "s", "redis": {"keyPrefix": f"{name}:"}} if kind == "redis"
                             else {"name": "s", "postgres": {"table": name.replace("-", "_")}})
    return DataProduct.model_validate({
        "apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct", "metadata": {"name": name},
        "spec": {"source": {"topic": "orders"}, "fields": {"id": "event.id", "note": f"'{note}'"}, "key": "id",
                 "stores": [store]},
    })


def write(store: Store, key: str, note: str, start: int | None, end: int) -> None:
    change = Change(0, end - 1, 1_700_000_000_000, Upsert((key,), {"id": key, "note": note}))
    prepared, rejected = store.prepare([change])
    assert rejected == []
    store.apply(prepared, {0: start}, {0: end})


def notes(store: Store) -> set[str]:
    return {str(row["note"]) for row in store.inspect(100)}


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_after_a_switch_the_old_spec_is_refused_even_at_the_same_positions(
    kind: str, redis_server: Any, postgres_server: Any
) -> None:
    url = store_url(kind, redis_server, postgres_server)
    name = f"fence-{uuid.uuid4().hex[:8]}"
    v1, v2 = product(name, kind, "v1"), product(name, kind, "v2")
    spec1, spec2 = v1.store("s"), v2.store("s")
    fp1, fp2 = fingerprint(v1, spec1), fingerprint(v2, spec2)
    assert fp1 != fp2
    versions = open_versions(v1, spec1, url)
    old = open_store(v1, spec1, url, fence=VersionFence(fp1))
    election = open_election(v2, spec2, url)
    rival = open_election(v2, spec2, url)
    shadow_store: Store | None = None
    new: Store | None = None
    try:
        versions.record(v1, spec1)
        old.ensure_schema()
        write(old, "a", "v1", None, 5)
        shadow_spec, shadow = shadow_for(v2, spec2, version_id(fp2))
        versions.begin(shadow)
        shadow_store = open_shadow_store(v2, shadow_spec, url)
        shadow_store.ensure_schema()
        write(shadow_store, "b", "v2", None, 5)

        assert election.try_acquire() and not rival.try_acquire()
        with pytest.raises(NotRebuilder):
            versions.switch((v1, spec1), v2, spec2, shadow, 0, election=rival)
        versions.switch((v1, spec1), v2, spec2, shadow, 0, election=election)

        with pytest.raises(VersionMoved):
            write(old, "c", "v1", 5, 6)  # the live position is 5 too: only the version refuses it
        new = open_store(v2, spec2, url, fence=VersionFence(fp2))
        assert notes(new) == {"v2"}
        write(new, "d", "v2", 5, 6)
        assert notes(new) == {"v2"}

        election.close()
        assert rival.try_acquire()  # released: the next one is elected
    finally:
        for closing in (old, shadow_store, new):
            if closing is not None:
                closing.close()
        election.close()
        rival.close()
        versions.close()


def test_a_redis_lease_outlives_its_holder_by_its_ttl(redis_server: Any) -> None:
    import time

    v1 = product(f"lease-{uuid.uuid4().hex[:8]}", "redis", "v1")
    spec = v1.store("s")
    holder = RedisElection(v1, spec, str(redis_server.url), timing=LeaseTiming(0.6))
    other = RedisElection(v1, spec, str(redis_server.url), timing=LeaseTiming(0.6))
    try:
        assert holder.try_acquire() and not other.try_acquire()
        for _ in range(5):  # renewed while held: never lost
            time.sleep(0.25)
            assert holder.holds() and not other.try_acquire()
        # The holder dies (stops renewing): the lease expires by itself.
        time.sleep(0.8)
        assert other.try_acquire()
        assert not holder.holds()
    finally:
        holder.close()
        other.close()


def test_a_postgres_switch_waits_for_a_batch_in_flight_and_refuses_the_next(
    redis_server: Any, postgres_server: Any
) -> None:
    import threading

    import psycopg

    url = store_url("postgres", redis_server, postgres_server)
    name = f"fence-{uuid.uuid4().hex[:8]}"
    v1, v2 = product(name, "postgres", "v1"), product(name, "postgres", "v2")
    spec1, spec2 = v1.store("s"), v2.store("s")
    fp1, fp2 = fingerprint(v1, spec1), fingerprint(v2, spec2)
    versions = open_versions(v1, spec1, url)
    switcher = open_versions(v2, spec2, url)
    old = open_store(v1, spec1, url, fence=VersionFence(fp1))
    shadow_store: Store | None = None
    try:
        versions.record(v1, spec1)
        old.ensure_schema()
        write(old, "a", "v1", None, 5)
        shadow_spec, shadow = shadow_for(v2, spec2, version_id(fp2))
        versions.begin(shadow)
        shadow_store = open_shadow_store(v2, shadow_spec, url)
        shadow_store.ensure_schema()
        write(shadow_store, "b", "v2", None, 5)
        group = v1.consumer_group(spec1)
        with psycopg.connect(url) as batch:  # a writer's transaction, past its version check
            row = batch.execute("SELECT fingerprint FROM _provisioner_versions WHERE consumer = %s FOR KEY SHARE",
                                (group,)).fetchone()
            assert row is not None and row[0] == fp1
            done = threading.Event()
            switching = threading.Thread(target=lambda: (
                switcher.switch((v1, spec1), v2, spec2, shadow, 0), done.set()), daemon=True)
            switching.start()
            assert not done.wait(1.0)  # the switch waits for the batch in flight
            batch.execute(f'INSERT INTO "{v1.table(spec1)}" (id, note) VALUES (%s, %s)', ("late", "v1"))
            batch.commit()
        switching.join(timeout=30)
        assert done.is_set()
        # What the batch wrote went with the old table; the next batch of the old spec is refused.
        new = open_store(v2, spec2, url, fence=VersionFence(fp2))
        try:
            assert notes(new) == {"v2"}
            with pytest.raises(VersionMoved):
                write(old, "c", "v1", 5, 6)
            assert notes(new) == {"v2"}
        finally:
            new.close()
    finally:
        old.close()
        if shadow_store is not None:
            shadow_store.close()
        versions.close()
        switcher.close()
