"""Expressions checked against the shape a schema gives `event`: misspelled fields and comparisons
with a literal of another type are findings; what a schema leaves open is never one."""

from __future__ import annotations

from typing import Any

import pytest

from provisioner.spec.event_shape import from_avro, from_json_schema
from provisioner.spec.shape_check import check_against_shape, fields_used

ORDER: dict[str, Any] = {
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [
        {"name": "order_id", "type": "string"},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
        {"name": "qty", "type": "int"},
        {"name": "placed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "customer", "type": {"type": "record", "name": "Customer",
                                      "fields": [{"name": "id", "type": "string"}]}},
        {"name": "lines", "type": {"type": "array", "items": {
            "type": "record", "name": "Line", "fields": [{"name": "sku", "type": "string"},
                                                         {"name": "price", "type": "double"}]}}},
        {"name": "tags", "type": {"type": "map", "values": "string"}},
        {"name": "previous", "type": ["null", "Customer"]},
        {"name": "either", "type": ["int", "string"]},
    ],
}


def messages(source: str, schema: dict[str, Any] = ORDER) -> list[str]:
    return [f.message for f in check_against_shape(source, from_avro(schema, "subject orders-value version 1"))]


def test_a_misspelled_field_is_named_with_the_subject_and_a_suggestion() -> None:
    assert messages("event.amout * 2.0") == [
        "event.amout: subject orders-value version 1 has no field 'amout' (did you mean 'amount'?)"]


@pytest.mark.parametrize("source", [
    "event.amount * double(event.qty)", "event.customer.id", "event.lines.map(l, l.price)",
    "event.tags.anything", "event.tags['x'] == 'y'", "has(event.missing)", "event.previous.id",
    "event.note == null", "event.placed_at > timestamp('2026-01-01T00:00:00Z')", "event.status == 'PAID'",
    "event.either == 3", "event.either == 'x'", "event.?nothing.orValue(1)", "cel.bind(c, event.customer, c.id)",
    "event.qty == 2.0", "[1, 2].exists(event, event > 1)",
])
def test_what_the_schema_allows_is_not_a_finding(source: str) -> None:
    assert messages(source) == []


@pytest.mark.parametrize(("source", "expected"), [
    ("event.lines.all(l, l.prise > 0.0)", "l.prise: subject orders-value version 1 has no field 'prise' (did you mean 'price'?)"),
    ("event.customer.name", "has no field 'name' (it has id)"),
    ("cel.bind(c, event.customer, c.ident)", "has no field 'ident'"),
    ("event['ammount'] > 1.0", "has no field 'ammount'"),
    ("event.previous.idd", "has no field 'idd'"),
])
def test_nested_records_lists_and_bindings_are_followed(source: str, expected: str) -> None:
    [message] = messages(source)
    assert expected in message


@pytest.mark.parametrize(("source", "expected"), [
    ("event.order_id == 7", "event.order_id is a string in {s}, compared (==) with an int"),
    ("100 < event.amount && event.qty > '3'", "event.qty is an int in {s}, compared (>) with a string"),
    ("event.status == 1", "event.status is a string in {s}, compared (==) with an int"),
    ("event.placed_at > 5", "event.placed_at is a timestamp in {s}, compared (>) with an int"),
])
def test_a_comparison_with_another_type_is_a_finding(source: str, expected: str) -> None:
    assert messages(source) == [expected.format(s="subject orders-value version 1")]


def test_a_finding_points_at_its_place_in_the_expression() -> None:
    [finding] = check_against_shape("event.qty > 1 && event.custmer.id == 'c'", from_avro(ORDER))
    assert finding.pos == "event.qty > 1 && event.custmer.id == 'c'".index("custmer")


def test_named_types_come_from_references_and_recursion_stops() -> None:
    tree = {"type": "record", "name": "Node", "fields": [
        {"name": "value", "type": "shop.Money"}, {"name": "next", "type": ["null", "Node"]}]}
    named: dict[str, Any] = {}
    from_avro({"type": "record", "name": "Money", "namespace": "shop", "fields": [{"name": "cents", "type": "long"}]},
              named=named)  # a reference, read first
    shape = from_avro(tree, named=named)
    assert check_against_shape("event.value.cents > 0 && event.next.next.next.value.cents > 0", shape) == []
    [finding] = check_against_shape("event.value.cent", shape)
    assert "'cents'" in finding.message


def test_an_open_json_object_claims_nothing_about_other_fields() -> None:
    open_schema = {"type": "object", "properties": {"amount": {"type": "number"}}}
    closed = {**open_schema, "additionalProperties": False}
    assert check_against_shape("event.other == 1", from_json_schema(open_schema)) == []
    assert [f.message for f in check_against_shape("event.other == 1", from_json_schema(closed))] == [
        "event.other: the schema has no field 'other' (it has amount)"]
    assert [f.message for f in check_against_shape("event.amount == 'x'", from_json_schema(open_schema))] == [
        "event.amount is a number in the schema, compared (==) with a string"]


def test_json_schema_local_refs_are_followed() -> None:
    schema = {"type": "object", "additionalProperties": False, "properties": {"c": {"$ref": "#/$defs/c"}},
              "$defs": {"c": {"type": "object", "additionalProperties": False, "properties": {"id": {"type": "string"}}}}}
    [finding] = check_against_shape("event.c.idd", from_json_schema(schema))
    assert "'idd'" in finding.message


def test_fields_used_lists_the_event_paths_an_expression_reads() -> None:
    assert fields_used("event.customer.id + event.note + string(event.qty) + record.key") == {
        ("customer", "id"), ("note",), ("qty",)}
    assert fields_used("not an expression (") == set()


def test_an_expression_that_does_not_parse_has_no_shape_findings() -> None:
    assert messages("event.(") == []


def test_a_union_of_records_has_the_fields_of_each() -> None:
    a = {"type": "record", "name": "A", "fields": [{"name": "x", "type": "long"}, {"name": "both", "type": "long"}]}
    b = {"type": "record", "name": "B", "fields": [{"name": "y", "type": "long"}, {"name": "both", "type": "string"}]}
    shape = from_avro({"type": "record", "name": "R", "fields": [
        {"name": "v", "type": ["null", a, b]}, {"name": "w", "type": ["null", "A", "string"]}]})
    assert check_against_shape("event.v.x + event.v.y > 0 && event.v.both == 1 && event.w.anything", shape) == []
    [finding] = check_against_shape("event.v.z", shape)
    assert finding.message == "event.v.z: the schema has no field 'z' (it has both, x, y)"
