"""`spec.order`: order values in the pipeline, validation, the in-batch rule, and stale skips in
`provisioner test`."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from provisioner.cli.app import app
from provisioner.expr import compile_expression
from provisioner.pipeline.ops import STALE, Change, DeadLetter, Delete, Record, Upsert, render_key
from provisioner.pipeline.ordering import ORDER_MAX, ORDER_MIN, OrderTracker, newest_per_key, order_of, order_text
from provisioner.pipeline.process import Pipeline, record_activation
from provisioner.pipeline.testing import run_tests
from provisioner.spec.fingerprint import compare, content_settings, fingerprint
from provisioner.spec.loader import load_text

SPEC = """\
apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata: {{name: accounts}}
spec:
  source: {{topic: accounts.v1}}
  delete: "has(event.gone) && event.gone"
  order: {order}
  fields:
    id: event.id
    balance: "has(event.balance) ? event.balance : 0"
  key: id
  stores: [{{name: db, postgres: {{}}}}, {{name: cache, redis: {{}}}}]
"""


def load(order: str = "event.version", extra: str = "") -> Any:
    specs, findings = load_text(SPEC.format(order=json.dumps(order)) + extra)
    assert findings == [], findings
    return specs[0].product


def record(value: Any, offset: int = 0, timestamp: int = 1_767_225_600_000, key: bytes | None = None) -> Record:
    return Record("accounts.v1", 0, offset, timestamp, key, None if value is None else json.dumps(value).encode())


def test_an_unordered_spec_makes_ops_without_order_values() -> None:
    specs, _ = load_text(SPEC.format(order='"1"').replace('  order: "1"\n', ""))
    op = Pipeline(specs[0].product).process(record({"id": "a", "balance": 1}))
    assert op == Upsert(("a",), {"id": "a", "balance": 1}) and op.order is None


def test_upserts_and_deletes_carry_their_order_value() -> None:
    pipeline = Pipeline(load())
    assert pipeline.process(record({"id": "a", "balance": 1, "version": 7})) == Upsert(
        ("a",), {"id": "a", "balance": 1}, 7)
    assert pipeline.process(record({"id": "a", "gone": True, "version": 9})) == Delete(("a",), 9)


def test_timestamps_order_by_nanoseconds_and_record_timestamp_by_milliseconds() -> None:
    pipeline = Pipeline(load("timestamp(event.at)"))
    op = pipeline.process(record({"id": "a", "at": "2026-01-01T00:00:00.000000001Z"}))
    assert isinstance(op, Upsert) and op.order == 1_767_225_600_000_000_001
    op = Pipeline(load("record.timestamp")).process(record({"id": "a"}, timestamp=1_767_225_600_123))
    assert isinstance(op, Upsert) and op.order == 1_767_225_600_123_000_000


@pytest.mark.parametrize("order", ["record.offset", " record . offset ", "record.offset + record.partition * 1000",
                                   "record.topic == 'accounts.v1' ? record.offset : 0"])
def test_an_order_read_from_the_records_position_matches_its_evaluation(order: str) -> None:
    """Such an order is read when an op needs it (`record.offset` without evaluating it): the
    same values as the expression evaluated over the record, for upserts, deletes and tombstones."""
    product = load(order)
    pipeline = Pipeline(product)
    program = compile_expression(order)
    for offset, value in enumerate([{"id": "a", "balance": 1}, {"id": "a", "gone": True}, {"id": "b"}]):
        given = record(value, offset=40 + offset)
        op = pipeline.process(given)
        expected = program.evaluate(json.loads(given.value or b"null"), record_activation(given))
        assert isinstance(op, Upsert | Delete) and op.order == expected == 40 + offset
    dropped = Pipeline(load(order, extra="  filter: event.id != 'x'\n")).process(record({"id": "x"}, offset=3))
    assert dropped.kind == "skip"


@pytest.mark.parametrize(("event", "message"), [
    ({"id": "a"}, "order failed: no such key 'version' in event"),
    ({"id": "a", "version": None}, "order returned null, not int or timestamp"),
    ({"id": "a", "version": 1.5}, "order returned double, not int or timestamp"),
    ({"id": "a", "version": "7"}, "order returned string, not int or timestamp"),
    ({"id": "a", "version": True}, "order returned bool, not int or timestamp"),
    ({"id": "a", "version": [1]}, "order returned list, not int or timestamp"),
    ({"id": "a", "gone": True}, "order failed: no such key 'version' in event"),
])
def test_a_record_without_an_order_value_is_a_dead_letter(event: dict[str, Any], message: str) -> None:
    assert Pipeline(load()).process(record(event)) == DeadLetter("order", message)


def test_a_tombstone_evaluates_order_with_a_null_event() -> None:
    by_key = SPEC.replace("id: event.id", "id: record.key")
    specs, _ = load_text(by_key.format(order='"record.offset"'))
    assert Pipeline(specs[0].product).process(record(None, offset=4, key=b"k")) == Delete(("k",), 4)
    specs, _ = load_text(by_key.format(order='"event.version"'))
    op = Pipeline(specs[0].product).process(record(None, key=b"k"))
    assert isinstance(op, DeadLetter) and op.stage == "order"


@pytest.mark.parametrize(("order", "message"), [
    ("event.version > 1", "order must evaluate to int or timestamp, but its type is bool"),
    ("'v1'", "order must evaluate to int or timestamp, but its type is string"),
    ("double(event.version)", "order must evaluate to int or timestamp, but its type is double"),
    ("event.version +", "column"),
])
def test_validation_refuses_an_order_of_another_type(order: str, message: str) -> None:
    _, findings = load_text(SPEC.format(order=json.dumps(order)))
    assert len(findings) == 1 and "spec.order" in str(findings[0]) and message in str(findings[0]), findings


def test_ordered_postgres_stores_reserve_their_columns() -> None:
    text = SPEC.format(order='"event.version"').replace("    balance:", "    _stale:")
    _, findings = load_text(text)
    assert any("'_stale' is a column of an ordered store" in str(f) for f in findings), findings


@pytest.mark.parametrize(("structure", "refused"), [("", True), ("structure: json", False)])
def test_ordered_redis_hashes_reserve_their_order_field(structure: str, refused: bool) -> None:
    text = SPEC.format(order='"event.version"').replace("    balance:", "    _provisioner_order:")
    text = text.replace("[{{name: db, postgres: {{}}}}, ", "[").replace("[{name: db, postgres: {}}, ", "[")
    text = text.replace("redis: {}", f"redis: {{{structure}}}")
    _, findings = load_text(text)
    said = [str(f) for f in findings if "'_provisioner_order' is the hash field" in str(f)]
    assert len(said) == (1 if refused else 0), findings
    if refused:
        assert "spec.fields._provisioner_order" in said[0]
    unordered, findings = load_text(text.replace('  order: "event.version"\n', ""))
    assert findings == [] and unordered[0].product.spec.order is None


def test_changing_order_rebuilds_and_retention_applies_in_place() -> None:
    before = load()
    after = load("int(event.version)")
    store = before.spec.stores[0]
    assert fingerprint(before, store) != fingerprint(after, after.spec.stores[0])
    assert compare(before, after)[0].kind == "rebuild" and compare(before, after)[0].settings == ("order",)
    longer = load(extra="  orderRetention: 30d\n")
    assert compare(before, longer)[0].kind == "in place"
    specs, _ = load_text(SPEC.format(order='"1"').replace('  order: "1"\n', ""))
    unordered = specs[0].product
    # Unordered stores keep the fingerprint they had before `order` existed.
    assert "order" not in content_settings(unordered, unordered.spec.stores[0])
    assert compare(unordered, before)[0].kind == "rebuild"


def test_order_text_sorts_as_the_numbers_do() -> None:
    rng = random.Random(7)
    values = [ORDER_MIN, ORDER_MAX, 0, -1, 1, 2**63 - 1, -(2**63), *(rng.randrange(ORDER_MIN, ORDER_MAX) for _ in range(500))]
    assert sorted(values) == sorted(values, key=order_text)
    assert {len(order_text(v)) for v in values} == {22}


def test_order_of_refuses_uint_and_naive_values() -> None:
    from provisioner.expr import UInt

    assert order_of(UInt(3)) == "order returned uint, not int or timestamp"
    assert order_of(b"x") == "order returned bytes, not int or timestamp"


def change(kind: str, key: str, order: int, offset: int) -> Change:
    op = Upsert((key,), {"v": order}, order) if kind == "u" else Delete((key,), order)
    return Change(0, offset, 0, op)


def test_newest_per_key_keeps_the_highest_and_the_later_on_ties() -> None:
    changes = [change("u", "a", 5, 0), change("u", "a", 3, 1), change("d", "b", 2, 2), change("u", "b", 2, 3),
               change("u", "c", 1, 4), change("d", "c", 0, 5)]
    newest, stale_upserts, stale_deletes = newest_per_key(changes)
    assert [(c.offset, c.op.kind) for c in newest] == [(0, "upsert"), (3, "upsert"), (4, "upsert")]
    assert (stale_upserts, stale_deletes) == (1, 1)


def test_newest_per_key_equals_applying_the_tracker_in_order() -> None:
    """The batch rule and the sequential rule agree on what a key ends up holding."""
    rng = random.Random(11)
    for _ in range(200):
        changes = [change(rng.choice("ud"), rng.choice("abc"), rng.randrange(5), i) for i in range(rng.randrange(1, 12))]
        tracker = OrderTracker(retention_ms=10**12)
        final: dict[str, tuple[str, int]] = {}
        for c in changes:
            if tracker.admit(c.op, 0) is not STALE:
                final[render_key(c.op.key)] = (c.op.kind, c.offset)
        newest, _, _ = newest_per_key(changes)
        assert {render_key(c.op.key): (c.op.kind, c.offset) for c in newest} == final


def test_the_tracker_honours_delete_markers_for_order_retention() -> None:
    tracker = OrderTracker(retention_ms=1000)
    assert tracker.admit(Delete(("a",), 5), 0) == Delete(("a",), 5)
    assert tracker.admit(Upsert(("a",), {}, 4), 999) is STALE
    assert tracker.admit(Upsert(("a",), {}, 4), 1000) == Upsert(("a",), {}, 4)
    assert tracker.admit(Upsert(("a",), {}, 3), 10**9) is STALE  # an upsert's value never expires
    assert tracker.admit(DeadLetter("order", "x"), 0) == DeadLetter("order", "x")


TESTS = """\
  tests:
    - name: late versions are stale, deletes keep them out
      given:
        - value: {id: a, balance: 10, version: 2}
        - value: {id: a, balance: 5, version: 1}
        - value: {id: a, gone: true, version: 3}
        - value: {id: a, balance: 7, version: 2}
        - value: {id: a, balance: 9, version: 4}
        - value: {id: b, balance: 1}
      expect:
        - upsert: {key: [a], fields: {id: a, balance: 10}}
        - skip: {reason: stale}
        - delete: {key: [a]}
        - skip: {}
        - upsert: {key: [a], fields: {id: a, balance: 9}}
        - deadLetter: {stage: order}
"""


def test_spec_tests_see_stale_skips() -> None:
    outcomes = run_tests(load(extra=TESTS))
    assert [o.passed for o in outcomes] == [True], outcomes
    assert outcomes[0].actual[1] == {"skip": {"reason": "stale"}}


def test_a_stale_skip_is_not_a_filter_skip(tmp_path: Path) -> None:
    text = SPEC.format(order='"event.version"') + TESTS.replace("- skip: {reason: stale}", "- skip: {reason: filter}")
    path = tmp_path / "accounts.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["test", str(path)])
    assert result.exit_code == 1, result.output
    assert "-- skip: {reason: filter}\n+- skip: {reason: stale}" in result.output
    path.write_text(SPEC.format(order='"event.version"') + TESTS)
    result = CliRunner().invoke(app, ["test", str(path)])
    assert result.exit_code == 0, result.output


def test_test_events_preview_tracks_order_across_lines(tmp_path: Path) -> None:
    path = tmp_path / "accounts.yaml"
    path.write_text(SPEC.format(order='"event.version"'))
    events = tmp_path / "events.jsonl"
    events.write_text('{"id": "a", "version": 3}\n{"id": "a", "version": 2}\n{"id": "a", "version": 3}\n')
    result = CliRunner().invoke(app, ["test", str(path), "--events", str(events), "-o", "json"])
    assert result.exit_code == 0, result.output
    kinds = [next(k for k in op if k != "line") for op in json.loads(result.output)[0]["ops"]]
    assert kinds == ["upsert", "skip", "upsert"]
