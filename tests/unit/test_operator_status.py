"""The pure parts of the operator: conditions from observations, drift comparison, pruning, parsing."""

from __future__ import annotations

import base64
import socket
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from provisioner.kube.client import KubeClient
from provisioner.kube.observe import Observer
from provisioner.kube.reconcile import differs, parse_product, spec_problem, stale_children
from provisioner.kube.status import (
    Observation,
    RebuildObservation,
    StoreObservation,
    compute_status,
    invalid_status,
    transitions,
)
from provisioner.spec.findings import SpecError

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def store(**kwargs: object) -> StoreObservation:
    base: dict[str, object] = {"name": "cache", "kind": "redis", "managed": False, "consumer": "p-cache-consumer",
                               "positions": {0: 5}, "end_offsets": {0: 5}, "consumers": 1, "dead_letters": 0,
                               "stale_for": 0.0}
    return StoreObservation(**{**base, **kwargs})  # type: ignore[arg-type]


def conditions(status: dict[str, object]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}  # type: ignore[attr-defined]


def test_ready_when_every_store_answers_runs_and_is_caught_up() -> None:
    status = compute_status(Observation(3, (store(),), "30s", 30.0), None, NOW)
    assert conditions(status) == {"Ready": ("True", "Ready"), "StoresReady": ("True", "StoresAnswer"),
                                  "ConsumersReady": ("True", "ConsumersRunning"), "CaughtUp": ("True", "CaughtUp"),
                                  "Fresh": ("True", "Fresh"), "Rebuilding": ("False", "NoRebuild")}
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])
    assert status["stores"][0] == {"name": "cache", "kind": "redis", "managed": False, "ready": True,
                                   "caughtUp": True, "replicas": 1, "position": 5, "lag": 0, "deadLetters": 0}
    assert status["storesReady"] == "1/1"


def test_hydrating_then_caught_up_stays_caught_up_while_stale() -> None:
    behind = compute_status(Observation(1, (store(positions={0: 1}),)), None, NOW)
    assert conditions(behind)["CaughtUp"] == ("False", "Hydrating")
    assert conditions(behind)["Ready"] == ("False", "Hydrating")
    assert behind["lag"] == 4
    done = compute_status(Observation(1, (store(),)), behind, NOW)
    late = compute_status(Observation(1, (store(positions={0: 5}, end_offsets={0: 9}, consumers=0, stale_for=40.0),),
                                      "30s", 30.0), done, NOW)
    assert conditions(late)["CaughtUp"] == ("True", "CaughtUp")
    assert conditions(late)["Fresh"] == ("False", "Stale")
    assert conditions(late)["ConsumersReady"] == ("False", "NoConsumer")


def test_unreachable_store_and_unknown_kafka() -> None:
    status = compute_status(Observation(1, (store(positions=None, error="connection refused", consumers=None,
                                                  end_offsets=None),)), None, NOW)
    assert conditions(status)["StoresReady"] == ("False", "StoreUnreachable")
    assert conditions(status)["ConsumersReady"] == ("Unknown", "KafkaUnavailable")
    assert status["stores"][0]["lastError"] == "connection refused"
    assert "lag" not in status


def test_unchanged_observation_gives_an_identical_status_and_no_transition() -> None:
    first = compute_status(Observation(1, (store(),)), None, NOW)
    second = compute_status(Observation(1, (store(),)), first, NOW + timedelta(minutes=5))
    assert second == first
    assert transitions(first["conditions"], second["conditions"]) == []


def test_messages_hold_no_counts() -> None:
    a = compute_status(Observation(1, (store(positions={0: 1}),)), None, NOW)
    b = compute_status(Observation(1, (store(positions={0: 2}),)), None, NOW)
    assert [c["message"] for c in a["conditions"]] == [c["message"] for c in b["conditions"]]


def test_transitions_become_events() -> None:
    first = compute_status(Observation(1, (store(positions={0: 1}),)), None, NOW)
    second = compute_status(Observation(1, (store(),)), first, NOW)
    changed = {t.type for t in transitions(first["conditions"], second["conditions"])}
    assert changed == {"Ready", "CaughtUp"}


def test_invalid_spec_keeps_the_rest_of_the_status() -> None:
    good = compute_status(Observation(1, (store(),)), None, NOW)
    bad = invalid_status(2, "spec.fields.x: boom", good, NOW)
    assert conditions(bad)["Ready"] == ("False", "InvalidSpec")
    assert bad["stores"] == good["stores"]
    assert bad["observedGeneration"] == 2


def test_differs_ignores_server_defaults_and_sees_edits() -> None:
    desired = {"kind": "Deployment", "metadata": {"name": "d", "labels": {"a": "b"}},
               "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "env": []}]}}}}
    live = {"kind": "Deployment", "metadata": {"name": "d", "labels": {"a": "b"}, "uid": "u", "resourceVersion": "9"},
            "spec": {"replicas": 1, "revisionHistoryLimit": 10,
                     "template": {"spec": {"containers": [{"name": "c", "imagePullPolicy": "IfNotPresent"}]}}}}
    assert not differs(desired, live)
    edited = {**live, "spec": {**live["spec"], "replicas": 5}}
    assert differs(desired, edited)
    assert differs(desired, None)


def test_stale_children_are_only_owned_undesired_ones() -> None:
    owned = {"kind": "Secret", "metadata": {"name": "old", "ownerReferences": [{"uid": "u1"}]}}
    foreign = {"kind": "Secret", "metadata": {"name": "other", "ownerReferences": [{"uid": "u2"}]}}
    kept = {"kind": "ConfigMap", "metadata": {"name": "spec", "ownerReferences": [{"uid": "u1"}]}}
    assert stale_children([owned, foreign, kept], [kept], "u1") == [owned]


def test_parse_product_uses_the_validate_checks_and_name_order() -> None:
    body = {"apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct",
            "metadata": {"name": "p", "namespace": "n", "uid": "x", "generation": 4, "managedFields": [],
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"source": {"topic": "t"}, "fields": {"b": "event.b", "a": "event.a"}, "key": "a",
                     "stores": [{"name": "s", "redis": {}}]},
            "status": {"observedGeneration": 3}}
    product = parse_product(body)
    assert list(product.spec.fields) == ["a", "b"]
    body["spec"]["fields"]["a"] = "event.a +"  # type: ignore[index]
    with pytest.raises(SpecError) as caught:
        parse_product(body)
    assert spec_problem(caught.value).startswith("spec.fields.a: ")


def test_a_rebuild_shows_its_progress_and_keeps_the_product_ready() -> None:
    rebuild = RebuildObservation("1a2b3c4d5e6f7a8b", {0: 30, 1: 10}, records_per_second=20.0)
    observed = store(positions={0: 50, 1: 50}, end_offsets={0: 50, 1: 50}, rebuild=rebuild)
    status = compute_status(Observation(2, (observed,)), None, NOW)
    assert conditions(status)["Rebuilding"] == ("True", "Rebuilding")
    assert conditions(status)["Ready"] == ("True", "Ready")  # readers keep the live version meanwhile
    assert status["stores"][0]["rebuild"] == {"version": "1a2b3c4d5e6f7a8b", "replayed": 40, "left": 60,
                                              "estimatedSeconds": 3}
    # Progress moves in the store entry; the condition's message stays the same (no churn).
    later = compute_status(Observation(2, (store(rebuild=RebuildObservation("1a2b3c4d5e6f7a8b", {0: 50, 1: 40}),
                                                 positions={0: 50, 1: 50}, end_offsets={0: 50, 1: 50}),)),
                           status, NOW)
    assert [c["message"] for c in later["conditions"]] == [c["message"] for c in status["conditions"]]
    assert later["stores"][0]["rebuild"] == {"version": "1a2b3c4d5e6f7a8b", "replayed": 90, "left": 10}
    assert [t.type for t in transitions(status["conditions"], later["conditions"])] == []
    switched = compute_status(Observation(2, (store(positions={0: 50, 1: 50}, end_offsets={0: 50, 1: 50}),)),
                              later, NOW)
    assert conditions(switched)["Rebuilding"] == ("False", "NoRebuild")
    assert "rebuild" not in switched["stores"][0]
    assert [(t.type, t.status) for t in transitions(later["conditions"], switched["conditions"])] == \
        [("Rebuilding", "False")]


def test_differs_takes_an_absent_field_for_its_zero_value() -> None:
    """The API server stores no `false`/`0`/`""` for omitempty fields: not a difference to re-apply."""
    desired = {"kind": "Service", "metadata": {"name": "s"},
               "spec": {"clusterIP": "None", "publishNotReadyAddresses": False}}
    live = {"kind": "Service", "metadata": {"name": "s", "uid": "u"}, "spec": {"clusterIP": "None",
                                                                              "clusterIPs": ["None"]}}
    assert not differs(desired, live)
    assert differs(desired, {**live, "spec": {**live["spec"], "publishNotReadyAddresses": True}})


def test_a_first_status_on_the_way_to_ready_posts_no_event() -> None:
    """A new product that is still starting (hydrating, no consumer in its group yet, a managed
    store whose pod is not up, freshness not known) or already Ready gets no Event."""
    starting = [
        store(positions={0: 1}),  # hydrating
        store(consumers=0, stale_for=None),  # its consumer's pod is starting
        store(positions=None, managed=True, error="connection refused", stale_for=None),  # its StatefulSet's pod
        store(),  # Ready at once
    ]
    for observed in starting:
        first = compute_status(Observation(1, (observed,), "30s", 30.0), None, NOW)
        assert transitions([], first["conditions"], first["stores"]) == [], first["conditions"]


def test_a_first_status_reporting_a_failure_is_one_event_naming_what_is_not_yet_true() -> None:
    failing = [
        (store(positions=None, error="connection refused", stale_for=None), "StoreUnreachable"),  # not managed
        (store(positions=None, error="bad password", store_refused="StoreAuthentication"), "StoreAuthentication"),
        (store(consumers=None, end_offsets=None, error="Kafka did not answer"), "KafkaUnavailable"),
    ]
    for observed, reason in failing:
        first = compute_status(Observation(1, (observed, store(name="other", positions={0: 1}))), None, NOW)
        [only] = transitions([], first["conditions"], first["stores"])
        ready = conditions(first)["Ready"]
        assert (only.type, only.status, only.reason) == ("Ready", *ready)
        waiting = [c for c in first["conditions"] if c["type"] not in ("Ready", "Rebuilding") and c["status"] != "True"]
        assert reason in [c["reason"] for c in waiting]
        for condition in waiting:
            assert f"{condition['type']}={condition['status']} ({condition['reason']})" in only.message
        assert "Rebuilding" not in only.message
    kafka = compute_status(Observation(1, (store(),), kafka_credentials="Secret kafka does not exist"), None, NOW)
    [only] = transitions([], kafka["conditions"], kafka["stores"])
    assert "KafkaCredentialsMissing" in only.message


def test_a_first_status_of_an_invalid_spec_carries_the_error() -> None:
    bad = invalid_status(1, "spec.fields.x: boom", None, NOW)
    [only] = transitions([], bad["conditions"])
    assert only.reason == "InvalidSpec" and "spec.fields.x: boom" in only.message


def test_a_store_never_seen_caught_up_has_unknown_freshness_until_watched_longer_than_the_goal() -> None:
    never = compute_status(Observation(1, (store(positions=None, end_offsets=None, consumers=None, stale_for=None),),
                                       "30s", 30.0), None, NOW)
    assert conditions(never)["Fresh"] == ("Unknown", "FreshnessUnknown")
    behind = store(positions={0: 1}, stale_for=None, watched_for=10.0)
    assert conditions(compute_status(Observation(1, (behind,), "30s", 30.0), None, NOW))["Fresh"] == \
        ("Unknown", "FreshnessUnknown")
    too_long = store(positions={0: 1}, stale_for=None, watched_for=31.0)
    assert conditions(compute_status(Observation(1, (too_long,), "30s", 30.0), None, NOW))["Fresh"] == \
        ("False", "Stale")
    # Without a goal there is nothing to be unknown about.
    assert conditions(compute_status(Observation(1, (behind,)), None, NOW))["Fresh"] == ("True", "NoFreshnessGoal")


def test_the_observer_never_reports_an_unobserved_store_as_fresh() -> None:
    """No Kafka and a store that refuses connections: nothing is known, for as long as it lasts."""
    body = {"apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct",
            "metadata": {"name": "orders", "namespace": "sales"},
            "spec": {"source": {"topic": "orders.v1"}, "fields": {"order_id": "event.order_id"}, "key": "order_id",
                     "freshness": "30s",
                     "stores": [{"name": "cache", "redis": {"connection": {"secretRef": {"name": "url", "key": "url"}}}}]}}
    product = parse_product(body)
    url = base64.b64encode(f"redis://127.0.0.1:{_closed_port()}/0".encode()).decode()
    secrets = [{"kind": "Secret", "metadata": {"name": "url"}, "data": {"url": url}}]
    clock = [100.0]
    observer = Observer(cast(KubeClient, object()), None, clock=lambda: clock[0], store_timeout=1.0)
    for _ in range(2):
        stores = observer.observe(product, "sales", secrets)
        assert stores[0].stale_for is None and stores[0].watched_for is None
        status = compute_status(Observation(1, stores, "30s", 30.0), None, NOW)
        assert conditions(status)["Fresh"] == ("Unknown", "FreshnessUnknown")
        assert conditions(status)["ConsumersReady"] == ("Unknown", "KafkaUnavailable")
        clock[0] += 3600


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
