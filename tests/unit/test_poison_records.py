"""No record stops a consumer: whatever a record holds, the pipeline makes an op or a dead letter."""

from __future__ import annotations

import json
from typing import Any

import pytest

from provisioner.pipeline.encoding import Unencodable, encode_value, to_json
from provisioner.pipeline.ops import Change, DeadLetter, Record, Upsert
from provisioner.pipeline.process import MAX_DEPTH, MAX_VALUE_BYTES, MAX_VALUES, Pipeline
from provisioner.spec.loader import load_text
from provisioner.stores.convert import ConversionError, convert
from provisioner.stores.registry import open_store

SPEC = """\
apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata: {name: orders}
spec:
  source:
    topic: orders.v1
%(source)s
%(rest)s
  fields:
    id: event.id
    doc: event
  key: id
  stores: [{name: db, postgres: {}}]
"""


def pipeline(*, source: str = "", rest: str = "") -> Pipeline:
    specs, findings = load_text(SPEC % {"source": source, "rest": rest})
    assert findings == [], findings
    return Pipeline(specs[0].product)


def record(raw: bytes | None) -> Record:
    return Record("orders.v1", 0, 3, 1_767_225_600_000, b"k", raw)


def nested(depth: int, leaf: Any = None) -> Any:
    value: Any = leaf
    for _ in range(depth):
        value = [value]
    return value


def nested_text(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def dead(op: object, stage: str) -> DeadLetter:
    assert isinstance(op, DeadLetter), op
    assert op.stage == stage, op
    return op


# --- decode bounds ---------------------------------------------------------------------------------


def test_nesting_up_to_the_bound_decodes_and_beyond_it_is_a_decode_dead_letter() -> None:
    p = pipeline()
    at_bound = {"id": "a", "deep": nested(MAX_DEPTH - 1)}
    assert isinstance(p.process(record(json.dumps(at_bound).encode())), Upsert)
    beyond = {"id": "a", "deep": nested(MAX_DEPTH)}
    op = dead(p.process(record(json.dumps(beyond).encode())), "decode")
    assert f"more than {MAX_DEPTH} levels" in op.message


def test_nesting_past_the_decoders_own_limit_is_a_decode_dead_letter() -> None:
    op = dead(pipeline().process(record(nested_text(100_000))), "decode")
    assert f"more than {MAX_DEPTH} levels" in op.message


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    value = {"id": "[" * 5000 + "{" * 5000}
    assert isinstance(pipeline().process(record(json.dumps(value).encode())), Upsert)


def test_a_megabyte_of_empty_lists_is_refused_by_the_value_bound() -> None:
    raw = b'{"id":"a","l":[' + b",".join([b"[]"] * 350_000) + b"]}"
    op = dead(pipeline().process(record(raw)), "decode")
    assert f"more than {MAX_VALUES} values" in op.message
    within = b'{"id":"a","l":[' + b",".join([b"[]"] * (MAX_VALUES // 2 - 10)) + b"]}"
    assert isinstance(pipeline().process(record(within)), Upsert)


def test_a_value_of_too_many_brackets_is_refused_before_decoding() -> None:
    raw = b'{"id":"a","l":[' + b",".join([b"[]"] * (4 * MAX_VALUES + 1)) + b"]}"
    assert dead(pipeline().process(record(raw)), "decode").message == (
        f"value refused: more than {MAX_VALUES} values (arrays, objects and their items)")
    invalid = raw[:-1]  # not even JSON: refused all the same, undecoded
    dead(pipeline().process(record(invalid)), "decode")


def test_a_value_beyond_the_size_bound_is_refused_before_decoding() -> None:
    raw = b'{"id":"' + b"x" * MAX_VALUE_BYTES + b'"}'
    op = dead(pipeline().process(record(raw)), "decode")
    assert "bytes, more than" in op.message


# --- the reproductions ----------------------------------------------------------------------------


def test_cel_equality_of_deep_lists_is_no_crash() -> None:
    # 1.4 KB: two 350-deep lists; the depth bound refuses them at decode.
    raw = json.dumps({"id": "a", "before": nested(350), "after": nested(350)}).encode()
    assert len(raw) < 1500
    dead(pipeline(rest='  filter: "event.before != event.after"').process(record(raw)), "decode")


def test_cel_equality_of_values_at_the_depth_bound() -> None:
    deep = nested(MAX_DEPTH - 2, 1)
    other = nested(MAX_DEPTH - 2, 2)
    p = pipeline(rest='  filter: "event.before != event.after"')
    assert isinstance(p.process(record(json.dumps({"id": "a", "before": deep, "after": other}).encode())), Upsert)
    assert p.process(record(json.dumps({"id": "a", "before": deep, "after": deep}).encode())).kind == "skip"


def test_an_event_990_levels_deep_is_refused_at_decode_not_by_the_stores() -> None:
    raw = b'{"id": "a", "deep": ' + nested_text(990) + b"}"
    dead(pipeline().process(record(raw)), "decode")


def test_the_encoders_refuse_a_value_too_deep_instead_of_overflowing() -> None:
    deep = nested(100_000)
    with pytest.raises(Unencodable):
        to_json(deep)
    with pytest.raises(Unencodable):
        encode_value(deep)
    for column in ("text", "jsonb", "integer"):
        with pytest.raises(ConversionError):
            convert(column, deep)


CEL_ONLY = """\
apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata: {name: orders}
spec:
  source: {topic: orders.v1}
  fields:
    id: string(event.id)
    t: type(event)
    o: event.?x
  key: id
  stores:
    - {name: hash, redis: {}}
    - {name: doc, redis: {structure: json}}
    - {name: db, postgres: {columns: {t: jsonb}}}
"""


def test_cel_values_with_no_text_are_store_dead_letters_in_every_store() -> None:
    specs, findings = load_text(CEL_ONLY)
    assert findings == []
    product = specs[0].product
    op = Pipeline(product).process(record(b'{"id": 1}'))
    assert isinstance(op, Upsert)
    change = Change(0, 3, 0, op)
    for store_spec in product.spec.stores:
        url = "redis://unused" if store_spec.redis else "postgresql://unused"
        _, rejected = open_store(product, store_spec, url).prepare([change])
        assert [r.dead_letter.stage for r in rejected] == ["store"], store_spec.name
        assert "cannot encode" in rejected[0].dead_letter.message


RECURSIVE = """\
    schema:
      $defs:
        node: {type: array, items: {$ref: "#/$defs/node"}}
      type: object
      properties: {deep: {$ref: "#/$defs/node"}}
"""


def test_a_recursive_schema_with_a_300_deep_event_is_a_dead_letter() -> None:
    raw = json.dumps({"id": "a", "deep": nested(300)}).encode()
    dead(pipeline(source=RECURSIVE).process(record(raw)), "decode")
    at_bound = json.dumps({"id": "a", "deep": nested(MAX_DEPTH - 2, [])}).encode()
    assert isinstance(pipeline(source=RECURSIVE).process(record(at_bound)), Upsert)


def test_a_ref_cycle_in_the_schema_is_a_schema_dead_letter() -> None:
    cycle = '    schema: {$defs: {a: {$ref: "#/$defs/b"}, b: {$ref: "#/$defs/a"}}, $ref: "#/$defs/a"}\n'
    op = dead(pipeline(source=cycle).process(record(b'{"id": "a"}')), "schema")
    assert "recurses too deeply" in op.message


def test_an_unexpected_exception_is_a_dead_letter_of_its_stage() -> None:
    class Broken:
        def evaluate(self, event: Any, activation: Any) -> Any:
            raise ZeroDivisionError("boom")

    p = pipeline(rest='  filter: "true"')
    p._filter = Broken()  # type: ignore[assignment]
    op = dead(p.process(record(b'{"id": "a"}')), "filter")
    assert op.message == "unexpected ZeroDivisionError: boom"


def test_a_timestamp_out_of_range_is_a_dead_letter_not_a_crash() -> None:
    specs, _ = load_text((SPEC % {"source": "", "rest": ""}).replace("doc: event", "at: record.timestamp"))
    p = Pipeline(specs[0].product)
    op = p.process(Record("orders.v1", 0, 3, 2**62, b"k", b'{"id": "a"}'))
    dead(op, "decode")


# --- ReDoS -----------------------------------------------------------------------------------------

HOSTILE = "a" * 64 + "!"  # 2**64 steps for a backtracking engine: it would never finish


@pytest.mark.parametrize("schema", [
    '{type: object, properties: {name: {type: string, pattern: "^(a+)+b"}}}',
    '{type: object, properties: {name: {type: string, pattern: "^(a+)+b"}}, if: {required: [x]}, then: {}}',
    '{type: object, patternProperties: {"^(a+)+b": {type: string}}, additionalProperties: false}',
])
@pytest.mark.timeout(300)  # a backtracking engine would hang here, not fail
def test_hostile_patterns_run_in_linear_time(schema: str) -> None:
    p = pipeline(source=f"    schema: {schema}\n")
    value = {"id": "a", "name": HOSTILE, HOSTILE: "x"}
    dead(p.process(record(json.dumps(value).encode())), "schema")
