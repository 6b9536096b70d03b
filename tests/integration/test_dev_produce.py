"""`provisioner dev produce` against the real broker, through each Kafka client: each bad line is
a FILE:LINE finding and is not sent, every other line is, as written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from provisioner.cli.app import app
from tests.integration import harness as h

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("kafka_client")]


def test_bad_lines_are_reported_and_the_others_produced(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join([
        b'{"key": "a", "value": {"n": 1e999, "s": "\\ud800"}}',
        b'{"key": "b", "value": 1, "headers": {"h": 2}}',
        b"{oops",
        b'{"n": "\xff"}',
        b'{"key": "c", "value": [1,  2]}',
        b"[" * 3000 + b"]" * 3000,
    ]) + b"\n")
    result = CliRunner().invoke(app, ["dev", "produce", topic, str(events), "--bootstrap", kafka_bootstrap,
                                      "--partitions", "1"])
    assert result.exit_code == 1, result.output
    problems = [line for line in result.stderr.splitlines() if line.strip()]  # the progress bar leaves blanks
    assert [line.split(": ", 1)[0] for line in problems] == [f"{events}:{n}" for n in (2, 3, 4, 6)]
    assert problems[0].endswith("headers must be an object of string values")
    assert "produced 2 records" in result.stdout
    records = h.read_topic(kafka_bootstrap, topic)
    assert [(r.key, r.value) for r in records] == [
        (b"a", b'{"n": 1e999, "s": "\\ud800"}'),
        (b"c", b"[1,  2]"),
    ]
