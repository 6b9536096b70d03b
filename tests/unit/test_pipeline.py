"""The per-record function of spec.md, one rule at a time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from provisioner.pipeline.encoding import encode_value
from provisioner.pipeline.ops import SKIP, DeadLetter, Delete, Record, Upsert, render_key
from provisioner.pipeline.process import Pipeline
from provisioner.spec.loader import load_text

SPEC = """\
apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata: {name: orders}
spec:
  source:
    topic: orders.v1
    schema: {type: object, required: [id]}
  filter: "!has(event.kind) || !event.kind.startsWith('noise')"
  delete: "has(event.gone) && event.gone"
  fields:
    id: event.id
    region: event.region
    total: event.amount * 2.0
    source: record.topic + '/' + string(record.partition)
    trace: "'trace' in record.headers ? record.headers.trace : null"
  key: [region, id]
  stores: [{name: db, postgres: {}}]
"""


def pipeline(text: str = SPEC) -> Pipeline:
    specs, findings = load_text(text)
    assert findings == [], findings
    return Pipeline(specs[0].product)


def record(value: Any, *, raw: bytes | None = None, key: bytes | None = None,
           headers: tuple[tuple[str, bytes], ...] = (), partition: int = 2, offset: int = 7) -> Record:
    encoded = raw if raw is not None else (None if value is None else json.dumps(value).encode())
    return Record("orders.v1", partition, offset, 1_767_225_600_000, key, encoded, headers)


EVENT = {"id": "o1", "region": "eu", "amount": 2.5}


def test_upsert_with_composite_key_and_record_fields() -> None:
    op = pipeline().process(record(EVENT, headers=(("trace", b"t-1"),)))
    assert op == Upsert(("eu", "o1"), {"id": "o1", "region": "eu", "total": 5.0,
                                       "source": "orders.v1/2", "trace": "t-1"})
    assert render_key(op.key) == "eu:o1"


def test_filter_false_skips() -> None:
    assert pipeline().process(record({**EVENT, "kind": "noise"})) is SKIP


def test_delete_evaluates_only_the_key_fields() -> None:
    op = pipeline().process(record({"id": "o1", "region": "eu", "gone": True}))
    assert op == Delete(("eu", "o1"))


@pytest.mark.parametrize(
    ("value", "raw", "stage"),
    [
        (None, b"{not json", "decode"),
        (None, b"\xff\xfe", "decode"),
        (None, b"NaN", "decode"),
        ({"region": "eu"}, None, "schema"),
        ({**EVENT, "kind": 5}, None, "filter"),
        ({**EVENT, "gone": "yes"}, None, "delete"),
        ({"id": "o1", "region": "eu", "amount": 3}, None, "fields"),
        ({"id": "o1", "amount": 1.0}, None, "fields"),
        ({"id": None, "region": "eu", "amount": 1.0}, None, "key"),
        ({"id": 1.5, "region": "eu", "amount": 1.0}, None, "key"),
        ({"id": True, "region": "eu", "amount": 1.0}, None, "key"),
    ],
)
def test_dead_letter_stages(value: Any, raw: bytes | None, stage: str) -> None:
    op = pipeline().process(record(value, raw=raw))
    assert isinstance(op, DeadLetter), op
    assert op.stage == stage
    assert op.message


def test_fields_dead_letter_names_the_field() -> None:
    op = pipeline().process(record({"id": "o1", "region": "eu", "amount": 3}))
    assert isinstance(op, DeadLetter) and "'total'" in op.message


def test_int_keys_are_allowed_and_render_in_decimal() -> None:
    op = pipeline().process(record({"id": 42, "region": "eu", "amount": 1.0}))
    assert isinstance(op, Upsert) and render_key(op.key) == "eu:42"


def test_tombstone_with_event_keys_is_a_key_dead_letter() -> None:
    op = pipeline().process(record(None, key=b"o1"))
    assert isinstance(op, DeadLetter) and op.stage == "key"


IMPLICIT = """\
apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata: {name: profiles}
spec:
  source: {topic: customers.v1}
  fields: {name: event.name}
  stores: [{name: cache, redis: {}}]
"""


def test_tombstone_deletes_by_record_key_when_key_is_implicit() -> None:
    assert pipeline(IMPLICIT).process(record(None, key=b"c1")) == Delete(("c1",))


def test_implicit_key_upserts_with_the_record_key() -> None:
    op = pipeline(IMPLICIT).process(record({"name": "Ada"}, key=b"c1"))
    assert op == Upsert(("c1",), {"key": "c1", "name": "Ada"})


def test_missing_record_key_is_a_key_dead_letter() -> None:
    op = pipeline(IMPLICIT).process(record({"name": "Ada"}))
    assert isinstance(op, DeadLetter) and op.stage == "key"


def test_tombstone_without_any_key_is_a_key_dead_letter() -> None:
    op = pipeline(IMPLICIT).process(record(None))
    assert isinstance(op, DeadLetter) and op.stage == "key"


def test_json_numbers_keep_int_and_double_apart() -> None:
    text = IMPLICIT.replace("fields: {name: event.name}", "fields: {n: event.n, d: event.d}")
    op = pipeline(text).process(record(None, raw=b'{"n": 1, "d": 1.0, "e": 1e2}', key=b"k"))
    assert isinstance(op, Upsert)
    assert type(op.row["n"]) is int and type(op.row["d"]) is float


@pytest.mark.parametrize(
    ("value", "text"),
    [("a", "a"), (5, "5"), (-3, "-3"), (1.5, "1.5"), (100.0, "100.0"), (True, "true"), (False, "false"),
     (None, None), ({"a": [1, "x"]}, '{"a":[1,"x"]}'), ([1, 2], "[1,2]"), ("ü", "ü"),
     (datetime(2026, 1, 31, 12, 0, 0, 500000, tzinfo=UTC), "2026-01-31T12:00:00.5Z"),
     (timedelta(seconds=90, microseconds=5), "90.000005s"), (b"\x00\xff", "AP8=")],
)
def test_value_encoding(value: Any, text: str | None) -> None:
    assert encode_value(value) == text
