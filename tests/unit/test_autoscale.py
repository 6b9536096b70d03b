"""The lag-driven autoscaling decision and the operator's memory of it (pure: no cluster)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from provisioner.kube.autoscale import Bounds, bounds, decide
from provisioner.kube.scaling import Scaler, replica_bounds
from provisioner.kube.status import Observation, StoreObservation, compute_status
from provisioner.spec.loader import product_from_document
from provisioner.spec.models import DataProduct
from provisioner.spec.yamlsafe import Document

WITHIN = 120.0
COOL = 300.0
SIX = Bounds(1, 6)


def _decide(lag: int | None, rate: float | None, current: int, *, consumers: int | None = None,
            limits: Bounds = SIX, last_change: float | None = None, now: float = 1000.0) -> int:
    return decide(lag=lag, rate=rate, consumers=current if consumers is None else consumers, current=current,
                  limits=limits, catch_up_within=WITHIN, last_change=last_change, now=now,
                  cool_down=COOL).replicas


def test_bounds_are_the_floor_and_the_smaller_of_max_and_partitions() -> None:
    assert bounds(1, 8, 6) == Bounds(1, 6)
    assert bounds(1, 4, 6) == Bounds(1, 4)
    assert bounds(2, 8, None) == Bounds(2, 8)
    assert bounds(3, 8, 2) == Bounds(3, 3)  # the floor wins over fewer partitions


def test_scales_up_so_the_backlog_drains_within_the_target() -> None:
    # one consumer reads 100/s: 60,000 records in 120 s need 500/s, five consumers
    assert _decide(60_000, 100.0, 1) == 5
    # the pace is per consumer: two consumers reading 200/s together need the same five
    assert _decide(60_000, 200.0, 2) == 5


def test_never_above_partitions_or_max_replicas() -> None:
    assert _decide(10_000_000, 10.0, 1, limits=bounds(1, 8, 3)) == 3
    assert _decide(10_000_000, 10.0, 1, limits=bounds(1, 4, 12)) == 4


def test_never_below_the_floor() -> None:
    assert _decide(0, 500.0, 5, limits=Bounds(2, 6)) == 2
    assert _decide(10, 500.0, 2, limits=Bounds(2, 6)) == 2
    assert _decide(None, None, 0, limits=Bounds(2, 6)) == 2  # a count below the floor is raised


def test_no_lag_goes_to_the_floor_after_the_cool_down() -> None:
    assert _decide(0, 0.0, 4, last_change=900.0, now=1000.0) == 4  # changed 100 s ago: waits
    assert _decide(0, 0.0, 4, last_change=600.0, now=1000.0) == 1  # 400 s ago: scales down
    assert _decide(0, 0.0, 4, last_change=None) == 1  # no change remembered: nothing to wait for


def test_scaling_up_does_not_wait_for_the_cool_down() -> None:
    assert _decide(60_000, 100.0, 1, last_change=999.0, now=1000.0) == 5


def test_a_smaller_backlog_scales_down_only_after_the_cool_down() -> None:
    # five consumers at 500/s together: 12,000 records need 100/s, one consumer
    assert _decide(12_000, 500.0, 5, last_change=990.0, now=1000.0) == 5
    assert _decide(12_000, 500.0, 5, last_change=1000.0 - COOL, now=1000.0) == 1


def test_zero_or_unknown_rate_keeps_the_count() -> None:
    assert _decide(50_000, 0.0, 2) == 2
    assert _decide(50_000, None, 3) == 3


def test_unknown_lag_keeps_the_count() -> None:
    assert _decide(None, 100.0, 3) == 3


def test_lag_with_no_consumer_starts_one() -> None:
    assert _decide(500, None, 0, limits=Bounds(0, 4)) == 1
    assert _decide(0, None, 0, limits=Bounds(0, 4)) == 0


def test_the_pace_is_that_of_the_consumers_that_ran() -> None:
    # three replicas set, one consumer in the group read 100/s: each consumer reads 100/s
    assert _decide(60_000, 100.0, 3, consumers=1) == 5


# -- the operator's memory and the status --------------------------------------------------------------


def _product(consumer: dict[str, Any]) -> DataProduct:
    data = {"apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct",
            "metadata": {"name": "orders", "namespace": "team"},
            "spec": {"source": {"topic": "orders"}, "fields": {"total": "event.total"},
                     "stores": [{"name": "cache", "redis": {}}], "consumer": consumer}}
    product, findings = product_from_document("", Document(0, data, {}, 1, []))
    assert product is not None, findings
    return product


def _deployment(replicas: int | None = 1) -> dict[str, Any]:
    spec: dict[str, Any] = {} if replicas is None else {"replicas": replicas}
    return {"kind": "Deployment", "metadata": {"name": "orders-cache-consumer"}, "spec": spec}


BODY: dict[str, Any] = {"metadata": {"namespace": "team", "name": "orders", "uid": "u"}}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _observe(lag: int, rate: float | None, consumers: int = 1, partitions: int = 6) -> Observation:
    ends = dict.fromkeys(range(partitions), lag // partitions)
    return Observation(1, (StoreObservation("cache", "redis", True, "orders-cache-consumer",
                                            positions=dict.fromkeys(range(partitions), 0), end_offsets=ends,
                                            consumers=consumers, read_rate=rate),))


def test_scaler_remembers_its_choice_and_renders_it() -> None:
    product = _product({"replicas": 1, "autoscale": {"maxReplicas": 8, "catchUpWithin": "2m"}})
    scaler = Scaler(cool_down=COOL)
    observation, changes = scaler.decide(BODY, product, _observe(60_000, 100.0), T0)
    assert [(c.before, c.after, c.up) for c in changes] == [(1, 5, True)]
    scale = observation.stores[0].scale
    assert scale is not None and (scale.desired, scale.low, scale.high) == (5, 1, 6)
    assert scaler.with_replicas(BODY, product, [_deployment(1)])[0]["spec"]["replicas"] == 5
    status = compute_status(observation, {}, T0)
    assert status["stores"][0]["autoscale"] == {"desired": 5, "min": 1, "max": 6, "current": 1,
                                                "lastScaleTime": "2026-01-01T00:00:00Z"}
    # drained: a minute later nothing moves, after the cool-down it is back at the floor
    _, changes = scaler.decide(BODY, product, _observe(0, 500.0, 5), T0 + timedelta(minutes=1))
    assert changes == []
    _, changes = scaler.decide(BODY, product, _observe(0, 500.0, 5), T0 + timedelta(seconds=COOL + 1))
    assert [(c.before, c.after, c.up) for c in changes] == [(5, 1, False)]
    assert "from 5 to 1 replicas" in changes[0].message


def test_a_new_operator_starts_from_the_choice_the_status_records() -> None:
    product = _product({"replicas": 1, "autoscale": {"maxReplicas": 8}})
    body = {**BODY, "status": {"stores": [{"name": "cache", "autoscale": {
        "desired": 4, "lastScaleTime": "2026-01-01T00:00:00Z"}}]}}
    scaler = Scaler(cool_down=COOL)
    assert scaler.with_replicas(body, product, [_deployment(1)])[0]["spec"]["replicas"] == 4
    # no lag one minute after the recorded change: the cool-down still holds the four
    _, changes = scaler.decide(body, product, _observe(0, 0.0, 4), T0 + timedelta(minutes=1))
    assert changes == []


def test_without_autoscale_the_spec_replicas_stand() -> None:
    product = _product({"replicas": 2})
    scaler = Scaler()
    observation, changes = scaler.decide(BODY, product, _observe(60_000, 100.0), T0)
    assert changes == [] and observation.stores[0].scale is None
    assert scaler.with_replicas(BODY, product, [_deployment(2)])[0]["spec"]["replicas"] == 2


def test_autoscale_external_renders_no_replicas() -> None:
    from provisioner.kube.render import RenderOptions, render

    product = _product({"replicas": 1, "autoscale": "external"})
    objects = render([product], RenderOptions(kafka_bootstrap="kafka:9092", namespace="team"))[0].objects
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert "replicas" not in deployment["spec"]


@pytest.mark.parametrize(("consumer", "message"), [
    ({"replicas": 3, "autoscale": {"maxReplicas": 2}}, r"maxReplicas \(2\) is below replicas \(3\)"),
    ({"autoscale": "always"}, "external"),
    ({"autoscale": {"maxReplicas": 4, "catchUpWithin": "0s"}}, "longer than zero"),
])
def test_bad_autoscale_settings_are_findings(consumer: dict[str, Any], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        _product(consumer)


def test_plan_words_for_the_replicas() -> None:
    assert replica_bounds(_product({"replicas": 2})) == "2"
    assert replica_bounds(_product({"replicas": 1, "autoscale": {"maxReplicas": 6}})) == (
        "1 to 6 by lag, never more than the partitions of orders (autoscale: catch up within 2m)")
    assert replica_bounds(_product({"autoscale": "external"})).startswith("set by an external autoscaler")


def test_a_lowered_max_replicas_bounds_the_remembered_choice_at_once() -> None:
    body = {**BODY, "status": {"stores": [{"name": "cache", "autoscale": {"desired": 6}}]}}
    product = _product({"replicas": 1, "autoscale": {"maxReplicas": 4}})
    assert Scaler().with_replicas(body, product, [_deployment(1)])[0]["spec"]["replicas"] == 4
