"""The loader: valid specs become models; every bad input becomes a located finding, never a crash."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from provisioner.spec.findings import Finding
from provisioner.spec.loader import load_paths, load_text

ROOT = Path(__file__).resolve().parents[2]

MINIMAL = """\
apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata:
  name: big-orders
spec:
  source:
    topic: orders.v1
  filter: "event.amount >= 100.0"
  fields:
    order_id: event.order_id
    total: event.amount
  key: order_id
  stores:
    - name: cache
      redis: {}
    - name: db
      postgres:
        columns: {total: numeric}
"""


def only_finding(text: str) -> Finding:
    specs, findings = load_text(text, "spec.yaml")
    assert specs == []
    assert len(findings) >= 1, findings
    return findings[0]


def replace(old: str, new: str) -> str:
    assert old in MINIMAL
    return MINIMAL.replace(old, new)


def test_minimal_spec_loads_with_defaults() -> None:
    specs, findings = load_text(MINIMAL, "spec.yaml")
    assert findings == []
    product = specs[0].product
    assert product.metadata.namespace == "default"
    assert product.dead_letter_topic == "big-orders.dlq"
    assert product.key_prefix(product.store("cache")) == "big-orders:"
    assert product.table(product.store("db")) == "big_orders"
    assert product.spec.consumer.batch_size == 5000
    assert product.spec.errors.mode == "deadLetter"
    assert product.key_fields == ("order_id",)


def test_examples_validate() -> None:
    specs, findings = load_paths([ROOT / "specs"])
    assert findings == []
    assert {s.product.name for s in specs} >= {"vip-orders", "customer-profiles", "device-readings"}


def test_implicit_key_is_the_first_field() -> None:
    text = MINIMAL.replace("  key: order_id\n", "")
    specs, findings = load_text(text)
    assert findings == []
    product = specs[0].product
    assert list(product.fields) == ["key", "order_id", "total"]
    assert product.fields["key"] == "record.key"
    assert product.key_fields == ("key",)


def test_unknown_field_names_line_column_path_and_suggestion() -> None:
    finding = only_finding(replace("        columns: {total: numeric}", "        tabel: x\n        columns: {total: numeric}"))
    assert (finding.line, finding.column) == (18, 9)
    assert finding.path == "spec.stores[1].postgres.tabel"
    assert "unknown field 'tabel'" in finding.message
    assert "did you mean 'table'" in finding.message


def test_wrong_type_is_located_at_the_value() -> None:
    finding = only_finding(MINIMAL + "  consumer: {batchSize: lots}\n")
    assert finding.path == "spec.consumer.batchSize"
    assert finding.line == 19
    assert "integer" in finding.message


def test_missing_required_field() -> None:
    finding = only_finding(replace("    topic: orders.v1\n", "    format: json\n"))
    assert finding.path == "spec.source.topic"
    assert "required" in finding.message


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        ("name: big-orders", "name: 'x\"; drop table y;--'", "metadata.name"),
        ("name: big-orders", "name: " + "a" * 41, "metadata.name"),
        ("name: big-orders", "name: Bïg-orders", "metadata.name"),
        ("        columns: {total: numeric}", "        table: 'x\"; drop table y;--'", "spec.stores[1].postgres.table"),
        ("        columns: {total: numeric}", "        table: " + "t" * 64, "spec.stores[1].postgres.table"),
        ("        columns: {total: numeric}", "        schema: Public", "spec.stores[1].postgres.schema"),
        ("        columns: {total: numeric}", "        columns: {total: money}", "spec.stores[1].postgres.columns.total"),
        ("    topic: orders.v1", "    topic: 'orders v1'", "spec.source.topic"),
        ("    topic: orders.v1", "    topic: '..'", "spec.source.topic"),
    ],
)
def test_hostile_and_invalid_names(old: str, new: str, path: str) -> None:
    finding = only_finding(replace(old, new))
    assert finding.path == path, finding


def test_field_names_must_be_sql_identifiers_when_stored_in_postgres() -> None:
    finding = only_finding(replace("    total: event.amount", '    "Total; drop": event.amount'))
    assert finding.path.startswith("spec.fields")


def test_key_must_name_a_field() -> None:
    finding = only_finding(replace("  key: order_id", "  key: [order_id, customer]"))
    assert finding.path == "spec.key[1]"
    assert "customer" in finding.message


def test_store_names_are_unique() -> None:
    finding = only_finding(replace("    - name: db", "    - name: cache"))
    assert finding.path == "spec.stores[1].name"


def test_append_mode_reserves_changelog_columns() -> None:
    text = replace("        columns: {total: numeric}", "        mode: append").replace(
        "    total: event.amount", "    _offset: event.amount"
    )
    finding = only_finding(text)
    assert finding.path == "spec.fields._offset"
    assert "append" in finding.message


def test_bad_duration() -> None:
    finding = only_finding(replace("      redis: {}", "      redis: {ttl: 3 weeks}"))
    assert finding.path == "spec.stores[0].redis.ttl"


def test_start_from_accepts_timestamps_and_rejects_nonsense() -> None:
    specs, findings = load_text(replace("    topic: orders.v1", "    topic: orders.v1\n    startFrom: 2026-01-01T00:00:00Z"))
    assert findings == [] and specs[0].product.spec.source.start_from == "2026-01-01T00:00:00Z"
    finding = only_finding(replace("    topic: orders.v1", "    topic: orders.v1\n    startFrom: yesterday"))
    assert finding.path == "spec.source.startFrom"


def test_broken_expression_points_into_the_expression() -> None:
    finding = only_finding(replace('  filter: "event.amount >= 100.0"', '  filter: "event.amount >= = 100.0"'))
    assert finding.path == "spec.filter"
    assert finding.line == 8
    assert finding.column > 11  # past `filter: "` : inside the expression


@pytest.mark.parametrize(
    "expression",
    ["os.system('x')", "__import__('os')", "event.amount + 'x' + ", "size(", "record.secret", "1 + 'a'"],
)
def test_expressions_outside_the_subset_are_rejected(expression: str) -> None:
    finding = only_finding(replace("    total: event.amount", f"    total: {expression!r}"))
    assert finding.path == "spec.fields.total"


def test_filter_must_be_boolean() -> None:
    finding = only_finding(replace('  filter: "event.amount >= 100.0"', '  filter: "1 + 2"'))
    assert finding.path == "spec.filter"


def test_python_tags_are_refused_without_running_anything(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    finding = only_finding(f"a: !!python/object/apply:os.system ['touch {marker}']\n")
    assert "constructor" in finding.message or "tag" in finding.message
    assert not marker.exists()


def test_billion_laughs_fails_fast() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    started = time.perf_counter()
    finding = only_finding("\n".join(lines) + "\n")
    assert time.perf_counter() - started < 5
    assert "alias" in finding.message


def test_deep_nesting_is_refused() -> None:
    finding = only_finding("a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "deeper" in finding.message


def test_huge_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("a: '" + "x" * (2 * 1024 * 1024) + "'\n")
    specs, findings = load_paths([path])
    assert specs == [] and "larger than" in findings[0].message


def test_malformed_yaml_is_located() -> None:
    finding = only_finding("apiVersion: provisioner.dev/v1alpha1\nkind: [DataProduct\n")
    assert finding.line >= 2
    assert "invalid YAML" in finding.message


def test_duplicate_keys_are_reported() -> None:
    finding = only_finding(MINIMAL.replace("  key: order_id\n", "  key: order_id\n  key: total\n"))
    assert "duplicate key" in finding.message


def test_multi_document_files_and_directories(tmp_path: Path) -> None:
    second = MINIMAL.replace("name: big-orders", "name: other-orders")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "two.yml").write_text(MINIMAL + "---\n" + second)
    (tmp_path / "notes.txt").write_text("not a spec")
    specs, findings = load_paths([tmp_path])
    assert findings == []
    assert [s.product.name for s in specs] == ["big-orders", "other-orders"]


def test_the_same_name_twice_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(MINIMAL)
    (tmp_path / "b.yaml").write_text(MINIMAL)
    _, findings = load_paths([tmp_path])
    assert len(findings) == 1 and "also defined" in findings[0].message


def test_every_problem_is_reported_not_only_the_first() -> None:
    text = textwrap.dedent("""\
        apiVersion: provisioner.dev/v1alpha1
        kind: DataProduct
        metadata: {name: Bad_Name}
        spec:
          source: {topic: 'no spaces'}
          fields: {a: event.a}
          stores: []
    """)
    _, findings = load_text(text)
    paths = {f.path for f in findings}
    assert {"metadata.name", "spec.source.topic", "spec.stores"} <= paths
