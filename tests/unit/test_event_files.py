"""Event files judged line by line with the consumer's own decoder (`test --events`, `dev produce`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provisioner.cli.app import app
from provisioner.pipeline.eventfile import EventLineError, numbered_lines, parse_line
from provisioner.pipeline.ops import DeadLetter, Record
from provisioner.pipeline.process import Pipeline, decode_failure, decode_value
from provisioner.pipeline.testing import line_record
from provisioner.spec.loader import load_paths
from provisioner.stream.kafka import EventFileError, parse_jsonl_line

SPECS = Path(__file__).resolve().parents[2] / "specs"
ORDER = (b'{"type": "OrderPlaced", "order_id": "o1", "amount": 500.0, "qty": 1, '
         b'"customer": {"id": "c", "tier": "gold"}, "ts": "2026-01-01T00:00:00Z"}')

HOSTILE_LINES = [
    ORDER,
    ORDER.replace(b"500.0", b"1e999"),  # a double beyond range: the decoder's infinity
    ORDER.replace(b'"c"', b'"\\ud800"'),  # a lone surrogate
    ORDER.replace(b'"gold"', b'"\xff\xfe"'),  # invalid UTF-8
    b"[" * 100_000 + b"]" * 100_000,
    b"{oops",
    b"NaN",
    b'{"key": "o9", "value": ' + ORDER.replace(b"500.0", b"1e999") + b"}",
    b'{"key": "o9", "value": ' + ORDER.replace(b'"c"', b'"\\ud800"') + b', "partition": 2}',
    b'{"value"  :  [1, 2.50, "x"] , "key":"k"}',
]


@pytest.mark.parametrize("raw", HOSTILE_LINES)
def test_a_line_is_sent_as_written_and_judged_by_the_consumers_decoder(raw: bytes) -> None:
    line = parse_line(raw, 4)
    assert line is not None and line.number == 4
    envelope = raw.startswith(b'{"key"') or raw.startswith(b'{"value"')
    sent = line.value
    assert sent is not None
    if not envelope:
        assert sent == raw
    else:
        assert sent in raw
        assert decode_value(sent) == decode_value(raw)["value"]
    try:
        decode_value(sent)
        assert line.refusal is None
    except ValueError as error:
        assert line.refusal == decode_failure(error)


def test_envelope_values_keep_their_text() -> None:
    line = parse_line(b'{"value"  :  [1, 2.50, "x"] , "key":"k"}', 1)
    assert line is not None and line.value == b'[1, 2.50, "x"]' and line.key == "k"
    line = parse_line(b'{"value": {"a": 1e999}, "value": 7}', 1)  # the last of repeated names, as decoded
    assert line is not None and line.value == b"7"
    line = parse_line(b'{"key": "k", "value": {"a": 1}, "headers": {"h": "v"}}', 1)
    assert line is not None and line.value == b'{"a": 1}' and line.headers == {"h": "v"}
    line = parse_line(b'{"key": "k", "value": null}', 1)
    assert line is not None and line.value is None


@pytest.mark.parametrize(("raw", "words"), [
    (b'{"value": 1, "headers": {"h": 1}}', "headers must be an object of string values"),
    (b'{"value": 1, "partition": -1}', "partition must be a non-negative int"),
    (b'{"value": 1, "offset": true}', "offset must be a non-negative int"),
    (b'{"value": 1, "key": [1]}', "key must be a string, an int or null"),
    (b'{"value": 1, "timestamp": "99999-01-01T00:00:00Z"}', "timestamp must be epoch milliseconds"),
    (b'{"value": 1, "timestamp": 99999999999999999999}', "between 1970 and 9999"),
    (b'{"value": 1, "key": "\\ud800"}', "key holds a lone surrogate"),
    (b'{"value": 1, "headers": {"h": "\\udc00"}}', "header 'h' holds a lone surrogate"),
    (b'{"value": {"k": "\\ud800"}}', None),
])
def test_bad_envelope_fields_are_one_line_findings(raw: bytes, words: str | None) -> None:
    if words is None:  # a lone surrogate in the value is the consumer's to judge, not a finding
        assert parse_line(raw, 7) is not None
        return
    with pytest.raises(EventLineError) as caught:
        parse_line(raw, 7)
    assert caught.value.number == 7
    assert words in caught.value.message
    assert "\n" not in str(caught.value) and "pydantic" not in str(caught.value)


def test_the_preview_and_the_consumer_agree_on_every_line() -> None:
    product = load_paths([SPECS / "vip-orders.yaml"])[0][0].product
    pipeline = Pipeline(product)
    for index, (number, raw) in enumerate(numbered_lines(b"\n".join(HOSTILE_LINES))):
        line = parse_line(raw, number)
        assert line is not None
        preview = pipeline.process(line_record(product, line, index))
        consumer = pipeline.process(Record(product.spec.source.topic, 0, index, 0, None, line.value))
        assert type(preview) is type(consumer)
        if isinstance(consumer, DeadLetter):
            assert preview == consumer
        if line.refusal is not None:
            assert preview == DeadLetter("decode", line.refusal)


def test_produce_refuses_what_the_consumer_could_not_decode() -> None:
    with pytest.raises(EventFileError, match=r"^line 5: value is not UTF-8 \(byte 0xff at offset 7\)$"):
        parse_jsonl_line(b'{"a": "\xff"}', 5)
    with pytest.raises(EventFileError, match=r"^line 2: value refused: arrays and objects are nested"):
        parse_jsonl_line("[" * 5000 + "]" * 5000, 2)
    record = parse_jsonl_line('{"a": "\\ud800", "n": 1e999}')
    assert record is not None and record.value == b'{"a": "\\ud800", "n": 1e999}'


def test_test_events_reports_bad_lines_and_runs_the_others(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join([
        ORDER,
        b'{"value": 1, "headers": {"h": 1}}',
        b"{oops",
        ORDER.replace(b'"gold"', b'"\xff"'),
        b"",
        b'{"key": "o2", "value": null, "timestamp": "not a time"}',
        ORDER.replace(b"500.0", b"1e999").replace(b'"c"', b'"\\ud800"'),
    ]) + b"\n")
    result = CliRunner().invoke(app, ["test", str(SPECS / "vip-orders.yaml"), "--events", str(events), "-o", "json"])
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        f"{events}:2: headers must be an object of string values",
        f"{events}:6: timestamp must be epoch milliseconds or an RFC 3339 string, between 1970 and 9999",
    ]
    ops = json.loads(result.stdout)[0]["ops"]
    assert [op["line"] for op in ops] == [1, 3, 4, 7]
    assert ops[0]["upsert"]["key"] == ["o1"]
    assert ops[1]["deadLetter"]["stage"] == "decode"
    assert ops[2]["deadLetter"] == {"stage": "decode", "message": ops[2]["deadLetter"]["message"]}
    assert ops[2]["deadLetter"]["message"] == f"value is not UTF-8 (byte 0xff at offset {ORDER.index(b'gold')})"
    assert ops[3]["upsert"]["fields"]["customer"] == "\ud800"  # as the consumer's pipeline makes it
    assert "\\ud800" in result.stdout
    text = CliRunner().invoke(app, ["test", str(SPECS / "vip-orders.yaml"), "--events", str(events)])
    assert text.exit_code == 1 and "\\ud800" in text.stdout and text.stderr == result.stderr


def test_spec_tests_with_a_lone_surrogate_run(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("""\
apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata: {name: sur}
spec:
  source: {topic: t}
  fields:
    id: event.id
  key: id
  stores: [{name: db, redis: {}}]
  tests:
    - name: surrogate
      given: [{value: {id: "\\ud800"}}]
      expect: [{upsert: {key: ["\\ud800"], fields: {id: "\\ud800"}}}]
""")
    result = CliRunner().invoke(app, ["test", str(spec)])
    assert result.exit_code == 0, result.output
    assert "1 passed, 0 failed" in result.stdout
