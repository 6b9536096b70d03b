"""Expressions checked against a registered Avro schema: a selected field the schema lacks is a
finding at the field's file:line:column; what the schema cannot tell (maps, presence tests,
record.*) passes."""

from __future__ import annotations

import fastavro

from provisioner.formats.fields import avro_shape, schema_problems
from provisioner.spec.loader import load_text, problem_finding

SCHEMA = fastavro.parse_schema({"type": "record", "name": "Order", "fields": [
    {"name": "order_id", "type": "string"},
    {"name": "amount", "type": "double"},
    {"name": "customer", "type": ["null", {"type": "record", "name": "Customer", "fields": [
        {"name": "id", "type": "string"}, {"name": "tier", "type": "string"}]}]},
    {"name": "tags", "type": {"type": "map", "values": "string"}},
    {"name": "next", "type": ["null", "Order"]},
]})

SPEC = """apiVersion: provisioner.dev/v1alpha1
kind: DataProduct
metadata: {name: p}
spec:
  source: {topic: orders, format: avro}
  filter: "has(event.coupon) || event.amout > 1.0 || event.amount > 2 || event.order_id < 5"
  fields:
    order_id: event.order_id
    tier: event.customer.tear
    tag: event.tags.anything
    deep: event.next.next.customer.id
    key: record.key
    items: "event.lines.map(l, l.sku)"
  key: order_id
  stores: [{name: c, redis: {}}]
"""


def test_fields_the_schema_lacks_are_findings_at_their_column() -> None:
    specs, findings = load_text(SPEC, "orders.yaml")
    assert not findings
    spec = specs[0]
    problems = schema_problems(spec.product, avro_shape(SCHEMA), "subject orders-value version 2")
    found = [problem_finding(spec.file, spec.document, p) for p in problems]
    assert [(f.line, f.column, f.path) for f in found] == [
        (6, 39, "spec.filter"), (6, 80, "spec.filter"), (9, 26, "spec.fields.tier"), (13, 19, "spec.fields.items")]
    assert found[0].message == ("event.amout: subject orders-value version 2 has no field 'amout' "
                                "(did you mean 'amount'?)")
    assert found[1].message == "event.order_id is a string in subject orders-value version 2, compared (<) with an int"
    assert "did you mean 'tier'?" in found[2].message
    assert found[3].message.endswith("(it has amount, customer, next, order_id, tags)")


def test_a_union_of_records_has_the_fields_of_each_and_non_records_are_not_checked() -> None:
    a = {"type": "record", "name": "A", "fields": [{"name": "x", "type": "long"}]}
    b = {"type": "record", "name": "B", "fields": [{"name": "y", "type": "long"}]}
    assert avro_shape(fastavro.parse_schema({"type": "record", "name": "R", "fields": [
        {"name": "v", "type": ["null", a, b]}, {"name": "w", "type": ["null", "A", "string"]}]})) == {
        "v": {"x": "int", "y": "int"}, "w": None}
