"""The stores' inlined value-encoding shortcuts agree with the one general encoder, `encode_value`,
on arbitrary values: the Redis hash fast path (read back from the RESP it prepares) and the
Postgres text column fast path."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from provisioner.pipeline.encoding import encode_value
from provisioner.pipeline.ops import Change, Upsert
from provisioner.spec.loader import load_text
from provisioner.stores.convert import ConversionError, to_text
from provisioner.stores.postgres import _fast
from provisioner.stores.redis import RedisStore

SPEC = """\
apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata: {name: values}
spec:
  source: {topic: values.v1}
  fields: {id: record.key, v: event.v}
  key: id
  stores: [{name: cache, redis: {keyPrefix: "v:"}}]
"""

scalars = (
    st.text()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324, 1e-300, 1e16, 1e22, 0.1, 100.0])
    | st.booleans()
    | st.none()
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def _store() -> RedisStore:
    specs, findings = load_text(SPEC)
    assert findings == [], findings
    product = specs[0].product
    return RedisStore(product, product.spec.stores[0], "redis://unused")


STORE = _store()
TEXT_FAST = _fast("text", to_text)


def redis_hash_field(value: Any) -> str | ConversionError | None:
    """What the Redis hash fast path writes for field `v` (None: no field), or its refusal."""
    prepared, rejected = STORE.prepare([Change(0, 0, 0, Upsert(("k",), {"id": "k", "v": value}))])
    if rejected:
        return ConversionError(rejected[0].dead_letter.message)
    write = prepared[0]
    fields = dict(zip(write[1::2], write[2::2], strict=True))
    return fields.get("v")


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@given(values)
@example(-0.0)
@example(2**64 + 1)
@example(True)
@example(math.inf)
@example({"é": [1, None, -0.0, "\u2603"]})
def test_redis_hash_fast_path_agrees_with_encode_value(value: Any) -> None:
    general = encode_value(value)
    written = redis_hash_field(value)
    if general is not None and not _utf8(general):
        assert isinstance(written, ConversionError)  # a lone surrogate: refused, not mangled
    else:
        assert written == general


@given(values)
@example(-0.0)
@example(2**64 + 1)
@example("plain ascii")
@example("ü")
def test_postgres_text_fast_path_agrees_with_the_general_conversion(value: Any) -> None:
    try:
        general: str | ConversionError | None = to_text(value)
    except ConversionError as error:
        general = error
    try:
        fast: str | ConversionError | None = TEXT_FAST(value)
    except ConversionError as error:
        fast = error
    if isinstance(general, ConversionError):
        assert isinstance(fast, ConversionError) and str(fast) == str(general)
    else:
        assert fast == general == encode_value(value)
