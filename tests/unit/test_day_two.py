"""The pure parts of `deadletters`, `explain` and `test --dead-letters`: safe previews, grouping,
the key's partition and key, the fold that decides a row, and a dead letter tried again."""

from __future__ import annotations

import json

import pytest

from provisioner.pipeline.keyof import KeyOf, key_is_record_key
from provisioner.pipeline.ops import SKIP, DeadLetter, Delete, Record, Upsert
from provisioner.pipeline.process import Pipeline
from provisioner.runtime.dead_letter_report import entry_of, group_entries, latest
from provisioner.runtime.dead_letter_retry import retry_dead_letters
from provisioner.runtime.history import Step, fold, key_partition, parse_key
from provisioner.runtime.safe_text import human_size, preview_bytes, safe_text
from provisioner.spec.loader import load_text
from provisioner.spec.models import DataProduct

SPEC = """
apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata: {name: orders, namespace: sales}
spec:
  source: {topic: orders.v1}
  filter: "event.qty >= 1"
  fields: {region: event.region, id: event.id, total: event.amount * double(event.qty)}
  key: [region, id]
  stores: [{name: cache, redis: {}}, {name: db, postgres: {columns: {total: integer}}}]
"""
RECORD_KEY_SPEC = """
apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata: {name: profiles}
spec:
  source: {topic: profiles.v1}
  fields: {name: event.name}
  stores: [{name: cache, redis: {}}]
"""


def _product(text: str) -> DataProduct:
    loaded, findings = load_text(text, "spec.yaml")
    assert not findings, findings
    return loaded[0].product


def _dead_letter(store: str, stage: str, message: str, offset: int, timestamp: int, value: bytes | None = b"{}",
                 product: str = "sales/orders") -> Record:
    headers = [("trace", b"t1"), ("provisioner.error.stage", stage.encode()),
               ("provisioner.error.message", message.encode()), ("provisioner.source.topic", b"orders.v1"),
               ("provisioner.source.partition", b"2"), ("provisioner.source.offset", str(offset).encode()),
               ("provisioner.product", product.encode()), ("provisioner.store", store.encode())]
    return Record("orders.dlq", 0, offset, timestamp, b"k", value, tuple(headers))


def test_text_that_could_act_on_a_terminal_is_escaped() -> None:
    assert safe_text("a\x1b[31mred\x07\x9b\u202eb\nc\t") == "a\\x1b[31mred\\x07\\x9b\\u202eb\\nc\\t"
    assert safe_text("héllo wörld ✓ 日本") == "héllo wörld ✓ 日本"
    assert safe_text("x" * 10, limit=4) == "xxxx… (6 more characters)"
    assert safe_text("\ud800") == "\\ud800"


def test_values_are_previewed_binary_as_such_and_long_ones_cut() -> None:
    assert preview_bytes(None) == "<null>"
    assert preview_bytes(b'{"a": 1}') == '{"a": 1}'
    assert preview_bytes(b"\xff\xfe\x00\x01" * 300) == "<binary 1.2 KB: fffe0001fffe0001…>"
    assert preview_bytes(b"\xff") == "<binary 1 B: ff>"
    huge = preview_bytes(b"\x1b[2J" + b"y" * (1 << 20))
    assert huge.startswith("\\x1b[2Jyyy") and huge.endswith("… (1.0 MB in all)") and len(huge) < 300
    # A multi-byte character cut at the preview's edge is not taken for binary.
    assert preview_bytes("é".encode() * 1000, limit=10) == "é" * 10 + "… (2.0 KB in all)"
    assert [human_size(n) for n in (0, 1023, 1024, 1536, 5 << 20)] == ["0 B", "1023 B", "1.0 KB", "1.5 KB", "5.0 MB"]


def test_dead_letters_are_read_from_their_headers_and_grouped() -> None:
    refused = Pipeline(_product(SPEC)).process(Record("orders.v1", 0, 4, 500, None, b"\x80\x81"))
    assert refused == DeadLetter("decode", "value is not UTF-8 (byte 0x80 at offset 0)")
    assert isinstance(refused, DeadLetter)
    records = [
        _dead_letter("db", "fields", "field 'total': no such key", 1, 1000),
        _dead_letter("db", "fields", "field 'total': no such key", 2, 3000),
        _dead_letter("db", "fields", "field 'total': no such key", 3, 2000),
        _dead_letter("cache", "decode", refused.message, 4, 500, value=b"\x80\x81"),
        _dead_letter("db", "fields", "field 'total': no such key", 5, 4000),
    ]
    entries = [entry_of(r) for r in records]
    assert all(e is not None for e in entries)
    first = entries[0]
    assert first is not None
    assert (first.store, first.stage, first.source_partition, first.source_offset) == ("db", "fields", 2, 1)
    assert first.headers == (("trace", b"t1"),)  # the record's own headers, without ours
    assert entry_of(Record("orders.dlq", 0, 9, 0, None, b"x", (("other", b"1"),))) is None
    groups = group_entries([e for e in entries if e is not None], samples=2)
    assert [(g.store, g.stage, g.count) for g in groups] == [("db", "fields", 4), ("cache", "decode", 1)]
    big = groups[0].to_dict()
    assert (big["firstSeen"], big["lastSeen"]) == ("1970-01-01T00:00:01.000Z", "1970-01-01T00:00:04.000Z")
    assert [s["source"]["offset"] for s in big["samples"]] == [1, 2]
    assert groups[1].to_dict()["samples"][0]["value"] == "<binary 2 B: 8081>"
    assert groups[1].to_dict()["message"] == "value is not UTF-8 (byte 0x80 at offset 0)"  # as the consumer said it
    json.dumps([g.to_dict() for g in groups])
    assert latest(range(10), 3) == [7, 8, 9]


def test_the_key_partition_is_kafkas_default_partitioners() -> None:
    # murmur2 values from the Java client's own tests (Utils.murmur2), made positive, modulo the partitions.
    for key, java in ((b"21", -973932308), (b"foobar", -790332482), (b"a-little-bit-long-string", -985981536),
                      (b"abc", 479470107)):
        for partitions in (1, 3, 7, 12):
            assert key_partition(key, partitions) == (java & 0x7FFFFFFF) % partitions


def test_keys_given_on_the_command_line() -> None:
    product = _product(SPEC)
    assert parse_key(product, ["eu", "7"]) == ("eu", "7")
    assert parse_key(product, ["eu:7:x"]) == ("eu", "7:x")  # split into as many parts as the key has
    with pytest.raises(ValueError, match="2 part"):
        parse_key(product, ["eu", "7", "8"])
    assert not key_is_record_key(product)
    assert key_is_record_key(_product(RECORD_KEY_SPEC))


def test_the_key_of_a_record_the_filter_drops_or_a_stage_refuses() -> None:
    key_of = KeyOf(_product(SPEC))
    record = Record("orders.v1", 0, 0, 0, None, json.dumps({"region": "eu", "id": 7, "qty": 0}).encode())
    assert key_of(record) == "eu:7"
    assert key_of(Record("orders.v1", 0, 0, 0, None, b"not json")) is None
    assert key_of(Record("orders.v1", 0, 0, 0, None, b'{"region": "eu"}')) is None
    by_record_key = KeyOf(_product(RECORD_KEY_SPEC))
    assert by_record_key(Record("profiles.v1", 0, 0, 0, b"c-1", b"not json")) == "c-1"
    assert by_record_key(Record("profiles.v1", 0, 0, 0, b"c-1", None)) == "c-1"
    # The matcher a scan uses: the key's bytes for a record-key key, the rendered key otherwise.
    assert by_record_key.matcher("c-1")(Record("profiles.v1", 0, 0, 0, b"c-1", b"not json"))
    assert not by_record_key.matcher("c-1")(Record("profiles.v1", 0, 0, 0, b"c-10", b"{}"))
    assert by_record_key.matcher("a\ufffd")(Record("profiles.v1", 0, 0, 0, b"a\xff", b"{}"))
    assert key_of.matcher("eu:7")(record) and not key_of.matcher("eu:8")(record)


def test_the_last_applied_upsert_or_delete_decides_the_row() -> None:
    upsert, delete, dead = Upsert(("k",), {"a": 1}), Delete(("k",)), DeadLetter("fields", "x")
    steps = [Step(0, 0, 0, upsert, True), Step(0, 1, 0, SKIP, True), Step(0, 2, 0, dead, True)]
    assert fold(steps) == (steps[0], True)
    assert fold([*steps, Step(0, 3, 0, delete, True)])[0].op is delete  # type: ignore[union-attr]
    assert fold([*steps, Step(0, 3, 0, delete, False)]) == (steps[0], True)  # not applied yet
    assert fold([Step(0, 0, 0, SKIP, True)]) == (None, False)


def test_a_dead_letter_tried_again_with_the_spec_and_the_store() -> None:
    product = _product(SPEC)
    value = json.dumps({"region": "eu", "id": 1, "amount": 2.5, "qty": 3}).encode()
    records = [
        _dead_letter("db", "fields", "was refused", 1, 0, value=value, product="sales/orders"),
        _dead_letter("db", "fields", "was refused", 1, 0, value=value, product="sales/orders"),  # sent twice
        _dead_letter("cache", "fields", "was refused", 1, 0, value=value, product="sales/orders"),
        _dead_letter("db", "decode", "not json", 2, 0, value=b"nope", product="sales/orders"),
        _dead_letter("gone", "decode", "not json", 3, 0, value=b"nope", product="sales/orders"),
    ]
    outcomes = retry_dead_letters(product, [e for e in map(entry_of, records) if e is not None])
    assert [(o.entry.store, o.entry.source_offset) for o in outcomes] == [("db", 1), ("cache", 1), ("db", 2)]
    db, cache, still = outcomes
    # 7.5 is no integer: the Postgres column refuses it, Redis takes it.
    assert not db.passes and isinstance(db.op, DeadLetter) and db.op.stage == "store"
    assert cache.passes and cache.to_dict()["now"] == {"upsert": {"key": ["eu", 1], "fields": {
        "region": "eu", "id": 1, "total": 7.5}}}
    assert not still.passes and still.to_dict()["was"] == {"stage": "decode", "message": "not json"}
