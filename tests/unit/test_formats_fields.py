"""Expressions checked against a registered Avro schema: a selected field the schema lacks is a
finding at the field's file:line:column; what the schema cannot tell (maps, presence tests,
record.*) passes."""

from __future__ import annotations

from typing import Any

from provisioner.formats.schemas import RegisteredSchema
from provisioner.formats.shapes import shape_of_schema
from provisioner.spec.loader import load_text, problem_finding
from provisioner.spec.semantics import shape_problems

SCHEMA: dict[str, Any] = {"type": "record", "name": "Order", "fields": [
    {"name": "order_id", "type": "string"},
    {"name": "amount", "type": "double"},
    {"name": "customer", "type": ["null", {"type": "record", "name": "Customer", "fields": [
        {"name": "id", "type": "string"}, {"name": "tier", "type": "string"}]}]},
    {"name": "tags", "type": {"type": "map", "values": "string"}},
    {"name": "next", "type": ["null", "Order"]},
]}

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


def _registered(schema: Any) -> RegisteredSchema:
    import json

    return RegisteredSchema("AVRO", json.dumps(schema))


def test_fields_the_schema_lacks_are_findings_at_their_column() -> None:
    specs, findings = load_text(SPEC, "orders.yaml")
    assert not findings
    spec = specs[0]
    shape = shape_of_schema(_registered(SCHEMA), [], "subject orders-value version 2")
    found = [problem_finding(spec.file, spec.document, p) for p in shape_problems(spec.product, shape)]
    assert [(f.line, f.column, f.path) for f in found] == [
        (6, 39, "spec.filter"), (6, 80, "spec.filter"), (9, 26, "spec.fields.tier"), (13, 19, "spec.fields.items")]
    assert found[0].message.startswith("event.amout: subject orders-value version 2 has no field 'amout' "
                                       "(did you mean 'amount'?)")
    assert found[1].message.startswith(
        "event.order_id is a string in subject orders-value version 2, compared (<) with an int")
    assert "did you mean 'tier'?" in found[2].message
    assert "(it has amount, customer, next, order_id, tags)" in found[3].message


def test_a_reference_defines_a_named_type_the_schema_uses() -> None:
    money = RegisteredSchema("AVRO", '{"type": "record", "name": "Money", "namespace": "shop", '
                                     '"fields": [{"name": "cents", "type": "long"}]}')
    order = _registered({"type": "record", "name": "Order", "namespace": "shop",
                         "fields": [{"name": "total", "type": "Money"}]})
    specs, _ = load_text(SPEC.replace('tier: event.customer.tear', 'tier: string(event.total.cent)'), "o.yaml")
    problems = shape_problems(specs[0].product, shape_of_schema(order, [("shop.Money", money)], "subject o"))
    assert any("event.total.cent: subject o has no field 'cent' (did you mean 'cents'?)" in p.message
               for p in problems)
