"""`source.schema` can neither make anything fetch a URL nor run a backtracking pattern."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from provisioner.pipeline.ops import DeadLetter, Record
from provisioner.pipeline.process import Pipeline
from provisioner.spec.loader import load_text
from provisioner.spec.models import DataProduct

SPEC = """\
apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata: {name: orders}
spec:
  source:
    topic: orders.v1
    schema:
      type: object
      properties:
%s
  fields:
    id: event.id
  key: id
  stores: [{name: db, redis: {}}]
"""


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []  # noqa: RUF012 - shared with the test through the class

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = json.dumps({"type": "string"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str]]]:
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    hits: list[str] = []
    _Recorder.hits = hits
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def findings(properties: str) -> list[str]:
    _, found = load_text(SPEC % properties, "spec.yaml")
    return [str(f) for f in found]


def test_a_remote_ref_is_refused_at_validate_with_its_location() -> None:
    found = findings('        name: {$ref: "http://169.254.169.254/latest/meta-data/schema.json"}')
    assert found == [
        "spec.yaml:10:22: spec.source.schema.properties.name.$ref: $ref "
        "'http://169.254.169.254/latest/meta-data/schema.json' points outside this schema: only "
        "references within it (starting with '#') are allowed, nothing is fetched"
    ]


def test_refs_within_the_document_are_allowed() -> None:
    assert findings('        name: {$ref: "#/$defs/name"}\n      $defs: {name: {type: string}}') == []
    # A property named "$ref" is a name, not a reference; data in `enum` is not a schema.
    assert findings('        $ref: {type: string}\n        x: {enum: [{$ref: "http://a/b"}]}') == []


def test_a_relative_ref_resolved_against_an_id_is_refused() -> None:
    found = findings('        name: {$id: "http://169.254.169.254/", $ref: "schema.json"}')
    assert len(found) == 1
    assert "spec.source.schema.properties.name.$ref" in found[0]


def test_nothing_is_fetched_by_validate_or_by_the_pipeline(recorder: tuple[str, list[str]]) -> None:
    url, hits = recorder
    text = SPEC % f'        name: {{$ref: "{url}/schema.json"}}'
    _, found = load_text(text, "spec.yaml")
    assert len(found) == 1
    # A spec that never went through validate (written by hand into a ConfigMap): the consumer's
    # validator still fetches nothing, the record is a schema dead letter.
    import yaml

    product = DataProduct.model_validate(yaml.safe_load(text))
    op = Pipeline(product).process(Record("orders.v1", 0, 0, 0, None, b'{"id": "a", "name": 1}'))
    assert isinstance(op, DeadLetter)
    assert op.stage == "schema"
    assert "cannot be resolved" in op.message
    assert hits == []


@pytest.mark.parametrize(("properties", "path", "words"), [
    ('        name: {type: string, pattern: "^(?=a)b"}', "properties.name.pattern", "RE2 syntax"),
    ('        name: {type: string, pattern: "(a)\\\\1"}', "properties.name.pattern", "back-references"),
    ('        name: {type: object, patternProperties: {"(?!x)": {}}}',
     "properties.name.patternProperties.(?!x)", "RE2 syntax"),
    ('        name: {patternProperties: {"^x": {}}, unevaluatedProperties: false}',
     "properties.name.unevaluatedProperties", "backtracking"),
])
def test_patterns_outside_re2_are_refused_at_validate(properties: str, path: str, words: str) -> None:
    found = findings(properties)
    assert len(found) == 1, found
    assert found[0].startswith("spec.yaml:")
    assert f"spec.source.schema.{path}: " in found[0]
    assert words in found[0]
