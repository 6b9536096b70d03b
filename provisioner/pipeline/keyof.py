"""The key a record is about, whatever the spec then does with it (filtered, deleted, refused).

Who calls it: `provisioner explain`, to find every record of one key, the ones the filter dropped
or a stage refused included. It evaluates only the key fields' expressions, as `Pipeline` does
for a delete (a tombstone has no event: a key that reads only `record` still has a value). A record
whose key cannot be evaluated (its value is not JSON, a key field fails) belongs to no key.
"""

from __future__ import annotations

from collections.abc import Callable

from provisioner.expr import EvaluationError, compile_expression
from provisioner.expr.lexer import tokenize
from provisioner.pipeline.ops import KeyPart, RecordLike, render_key
from provisioner.pipeline.process import decode_value, record_activation
from provisioner.spec.models import DataProduct

__all__ = ["KeyOf", "key_is_record_key"]


def key_is_record_key(product: DataProduct) -> bool:
    """Whether the key is the Kafka record key itself (one field, `record.key`), so a producer
    with Kafka's default partitioner put all of a key's records on one partition."""
    names = product.key_fields
    return len(names) == 1 and product.fields[names[0]].strip() == "record.key"


class KeyOf:
    """`KeyOf(product)(record)`: the record's rendered key (spec.md "Keys"), or None."""

    def __init__(self, product: DataProduct) -> None:
        fields = product.fields
        self._record_key = key_is_record_key(product)
        self._programs = [compile_expression(fields[name]) for name in product.key_fields]
        self._record_fields = tuple(sorted(frozenset().union(*(p.record_fields for p in self._programs))))
        # A key that never names `event` needs no decoding.
        self._reads_event = any(token.kind == "ident" and token.value == "event"
                                for name in product.key_fields for token in tokenize(fields[name]))

    def matcher(self, wanted: str) -> Callable[[RecordLike], bool]:
        """A test of whether a record's key renders to `wanted`: for a `record.key` key, a comparison
        of the key's bytes (a scan of a large topic then costs the read alone)."""
        if self._record_key and "\ufffd" not in wanted:  # U+FFFD may stand for bytes that are not UTF-8
            raw = wanted.encode("utf-8", "surrogatepass")
            return lambda record: record.key == raw
        return lambda record: self(record) == wanted

    def __call__(self, record: RecordLike) -> str | None:
        activation = record_activation(record, self._record_fields) if self._record_fields else None
        event = None
        if self._reads_event and record.value is not None:
            try:
                event = decode_value(record.value)
            except ValueError:
                event = None  # a key that reads only `record` still has a value
        parts: list[KeyPart] = []
        try:
            for program in self._programs:
                value = program.evaluate(event, activation)
                if value is None or isinstance(value, bool) or not isinstance(value, str | int):
                    return None
                parts.append(value)
        except EvaluationError:
            return None
        except Exception:  # anything unforeseen: this record belongs to no key, as the pipeline would refuse it
            return None
        return render_key(tuple(parts))
