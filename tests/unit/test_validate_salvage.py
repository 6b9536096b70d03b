"""One `validate` run reports a spec's field-level findings and its whole-product ones together: the
whole-product rules run on what validated, and say nothing that rests on a part that did not."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from provisioner.cli.app import app
from provisioner.spec.loader import load_text
from provisioner.spec.models import DataProduct
from provisioner.spec.salvage import salvage
from provisioner.spec.wording import translate

BROKEN = textwrap.dedent("""\
    apiVersion: provisioner.dev/v1alpha1
    kind: DataProduct
    metadata: {name: orders}
    spec:
      source: {topic: orders.v1}
      order: "event.seq > 1"
      filter: "event.a +"
      fields: {a: event.a, b: 5, c: event.c}
      key: [a, b]
      stores:
        - {name: Bad_Name, redis: {}}
        - {name: s1, redis: {ttl: forever}}
        - {name: s1, postgres: {columns: {b: text, d: text}}}
        - {name: s3, redis: {connection: {url: "http://h"}}}
    """)


def located(text: str) -> list[str]:
    return [f"{f.line}:{f.column} {f.path}: {f.message}" for f in load_text(text, "spec.yaml")[1]]


def test_field_level_and_whole_product_findings_in_one_run() -> None:
    assert located(BROKEN) == [
        "8:27 spec.fields.b: expected a string, got 5",
        "11:14 spec.stores[0].name: 'Bad_Name' is not an RFC 1123 label: lowercase letters, digits and '-', "
        "starting and ending with a letter or digit",
        "12:31 spec.stores[1].redis.ttl: must be a duration: a number with a unit ms, s, m, h or d, "
        "e.g. 30s, 24h or 1h30m, got 'forever'",
        "7:21 spec.filter: unexpected end of input (column 10 of the expression)",
        "6:10 spec.order: order must evaluate to int or timestamp, but its type is bool",
        # The later stores keep their own numbers although the first one could not be checked.
        "13:14 spec.stores[2].name: store name 's1' is used twice in this product",
        "13:48 spec.stores[2].postgres.columns.d: column type given for 'd', which is not a field",
        "14:44 spec.stores[3].redis.connection.url: a redis store needs a redis://, rediss:// or unix:// URL, "
        "got a http:// URL",
    ]


def test_a_rule_that_read_a_broken_part_says_nothing() -> None:
    messages = " ".join(located(BROKEN))
    # `b` did not validate: the key and the column that name it are not "not a field".
    assert "key field 'b'" not in messages and "given for 'b'" not in messages
    # A broken name or dead-letter topic is not replaced by its default in a finding.
    text = BROKEN.replace("{name: orders}", "{name: Orders}").replace(
        "source: {topic: orders.v1}", "source: {topic: x.dlq}\n  errors: {deadLetterTopic: 'no spaces'}")
    found = located(text)
    assert not any("dead-letter topic cannot" in f for f in found), found
    assert any(f.startswith("3:18 metadata.name:") for f in found) and any("spec.order" in f for f in found)
    # An unknown format: the expressions are not checked against the schema as if it were JSON.
    shaped = textwrap.dedent("""\
        apiVersion: provisioner.dev/v1alpha1
        kind: DataProduct
        metadata: {name: p}
        spec:
          source: {topic: t, format: json, schema: {type: object, properties: {a: {type: string}},
                                                    additionalProperties: false}}
          fields: {a: event.a, b: event.b}
          stores: [{name: s, redis: {}}]
        """)
    assert [f.split(" ")[1] for f in located(shaped)] == ["spec.fields.b:"]  # the schema rules `b` out
    assert [f.split(" ")[1] for f in located(shaped.replace("format: json", "format: xml"))] == [
        "spec.source.format:"]


def test_too_broken_to_salvage_gives_the_field_level_findings_only() -> None:
    for text in ("apiVersion: provisioner.dev/v1alpha1\nkind: DataProduct\nmetadata: {name: x}\nspec: 5\n",
                 BROKEN.replace("fields: {a: event.a, b: 5, c: event.c}", "fields: {b: 5}"),
                 "apiVersion: provisioner.dev/v1alpha1\nkind: DataProduct\nmetadata: {name: x}\n"
                 "spec: {source: {topic: t}, fields: {a: 1}, stores: [{name: s}]}\n"):
        specs, findings = load_text(text)
        assert specs == [] and findings
        assert all(f.path and f.line >= 1 and f.column >= 1 for f in findings)


def test_cut_parts_are_numbered_as_the_document_numbers_them() -> None:
    stores = [{"name": "A"}, {"name": "s", "redis": {}}, {"name": "B"}, {"name": "t", "redis": {}}]
    data: dict[str, Any] = {"apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct", "metadata": {"name": "p"},
                            "spec": {"source": {"topic": "t"}, "fields": {"a": "event.a"}, "stores": stores}}
    with pytest.raises(ValidationError) as refused:
        DataProduct.model_validate(data)
    salvaged = salvage(data, translate(data, refused.value.errors()))
    assert salvaged is not None
    assert [s.name for s in salvaged.product.spec.stores] == ["s", "t"]
    assert salvaged.original(("spec", "stores", 0, "name")) == ("spec", "stores", 1, "name")
    assert salvaged.original(("spec", "stores", 1)) == ("spec", "stores", 3)
    assert data["spec"]["stores"][0] == {"name": "A"}  # the document itself is left as it was


def test_validate_prints_both_kinds_at_once(tmp_path: Path) -> None:
    spec = tmp_path / "broken.yaml"
    spec.write_text(BROKEN)
    result = CliRunner().invoke(app, ["validate", str(spec), "-o", "json"])
    assert result.exit_code == 1
    paths = [f["path"] for f in json.loads(result.stdout)["findings"]]
    assert "spec.stores[1].redis.ttl" in paths and "spec.order" in paths
