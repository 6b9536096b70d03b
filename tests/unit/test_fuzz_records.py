"""Fuzz: hostile record values through the consumer's per-record path make only ops and dead letters.

The per-record path is the pipeline (`Pipeline.process`, run by `runtime.batch.transform`) and then
each store's preparation of the batch (Redis hash and JSON, Postgres upsert and append: the
stores' `prepare`, which encodes every value): none of them may raise; a refusal is a dead letter.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioner.pipeline.encoding import Unencodable, encode_value, to_json
from provisioner.pipeline.ops import Change, DeadLetter, Delete, Record, Skip, Upsert
from provisioner.pipeline.process import MAX_VALUES, Pipeline
from provisioner.runtime.batch import transform
from provisioner.spec.loader import load_text
from provisioner.spec.models import DataProduct
from provisioner.stores.convert import CONVERTERS, ConversionError
from provisioner.stores.registry import open_store

SPEC = """\
apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata: {name: fuzz}
spec:
  source:
    topic: fuzz.v1
    schema:
      $defs:
        any: {anyOf: [{type: [string, number, boolean, "null"], pattern: "^(a+)+$"},
                      {type: array, items: {$ref: "#/$defs/any"}},
                      {type: object, additionalProperties: {$ref: "#/$defs/any"}}]}
      $ref: "#/$defs/any"
  filter: "event == event || event != event || string(event) != ''"
  delete: "has(event.gone) && event.gone == true"
  fields:
    id: "string(event)"
    doc: event
    first: "type(event) == list && size(event) > 0 ? event[0] : event"
    n: "type(event) == map && has(event.n) ? event.n : 0"
    many: "[event, [event, {'e': event}]]"
  key: id
  stores:
    - {name: hash, redis: {}}
    - {name: doc, redis: {structure: json}}
    - {name: db, postgres: {columns: {doc: jsonb, n: double precision, first: text}}}
    - {name: log, postgres: {mode: append, table: fuzz_log, columns: {doc: jsonb}}}
"""

SPEC_NO_SCHEMA = re.sub(r"    schema:\n(?:      .*\n)+", "", SPEC)


def _pipeline(text: str) -> Pipeline:
    specs, findings = load_text(text)
    assert findings == [], findings
    return Pipeline(specs[0].product)


PIPELINES = [_pipeline(SPEC), _pipeline(SPEC_NO_SCHEMA)]


def _nest(depth: int, inner: bytes, opener: bytes) -> bytes:
    closer = b"]" if opener == b"[" else b"}"
    if opener == b"{":
        return b'{"a":' * depth + inner + closer * depth
    return opener * depth + inner + closer * depth


scalars_text = st.sampled_from([
    b"1e999", b"-1e999", b"1e-999", b"NaN", b"Infinity", b"-Infinity", b"null", b"true", b"0",
    b"-0.0", b"9" * 5000, b"1" * 300, b"123456789012345678901234567890", b'"\\ud800"', b'"\\udfff\\ud800"',
    b'"\\u0000"', b'"a\\u0000b"', b'"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!"', b'"\xff\xfe"', b"\xc3\x28",
    b'"\xed\xa0\x80"', b"", b" ", b"[", b"{", b'{"a":', b"]]]", b'"' + "é😀".encode() + b'"',
])

structured = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.sampled_from(["a", "n", "gone", "", "\u2028", "ü"]), inner, max_size=5),
    ),
    max_leaves=30,
).map(lambda value: json.dumps(value).encode())

hostile = st.one_of(
    scalars_text,
    structured,
    st.binary(max_size=64),
    st.builds(_nest, st.integers(0, 3000), scalars_text, st.sampled_from([b"[", b"{"])),
    st.builds(lambda n, item: b"[" + b",".join([item] * n) + b"]", st.sampled_from([0, 1, 999, MAX_VALUES + 1, 350_000]),
              st.sampled_from([b"[]", b"{}", b"0", b"1.5", b'""'])),
    st.builds(lambda a, b: a + b, scalars_text, scalars_text),
)


def _encode_everywhere(row: dict[str, Any]) -> None:
    """Every column conversion and text encoding of the row either succeeds or refuses."""
    for value in row.values():
        for convert in CONVERTERS.values():
            with contextlib.suppress(ConversionError):
                convert(value)
        with contextlib.suppress(Unencodable):
            encode_value(value)
    with contextlib.suppress(ValueError):  # NaN/infinity or Unencodable: the Redis JSON store's refusal
        to_json(row, allow_nan=False)


def _prepare_everywhere(product: DataProduct, changes: list[Change]) -> None:
    """Each store's own preparation of the batch: every change is written or a store dead letter."""
    for store_spec in product.spec.stores:
        url = "redis://unused" if store_spec.redis else "postgresql://unused"
        _, rejected = open_store(product, store_spec, url).prepare(changes)
        assert all(r.dead_letter.stage == "store" and r.dead_letter.message for r in rejected)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.one_of(hostile, st.none()), min_size=1, max_size=4), st.integers(-(2**63), 2**63 - 1))
def test_hostile_values_become_ops_or_dead_letters(values: list[bytes | None], timestamp: int) -> None:
    records = [Record("fuzz.v1", 0, offset, timestamp, b"k", value) for offset, value in enumerate(values)]
    for pipeline in PIPELINES:
        batch = transform(pipeline.process, records, stop=False)
        assert batch.records == records
        assert len(batch.changes) + batch.skips + len(batch.dead) == len(records)
        for change in batch.changes:
            assert type(change.op) in (Upsert, Delete)
            if type(change.op) is Upsert:
                _encode_everywhere(dict(change.op.row))
        _prepare_everywhere(pipeline.product, batch.changes)
        for _, dead in batch.dead:
            assert type(dead) is DeadLetter
            assert dead.stage in ("decode", "schema", "filter", "delete", "fields", "key")
            assert dead.message and "Traceback" not in dead.message
        for record in records:
            assert type(pipeline.process(record)) in (Upsert, Delete, Skip, DeadLetter)
