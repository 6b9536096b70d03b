"""The shape a Protobuf message gives `event`, checked the way `validate` checks expressions."""

from __future__ import annotations

from provisioner.formats.proto_shape import shape_of_message
from provisioner.formats.protobuf import compile_proto
from provisioner.spec.shape_check import check_against_shape

ORDER = '''
syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
import "money.proto";

message Order {
  string order_id = 1;
  shop.Money total = 2;
  int64 qty = 3;
  uint32 points = 4;
  google.protobuf.Timestamp placed_at = 5;
  google.protobuf.StringValue note = 6;
  repeated Line lines = 7;
  map<string, Line> by_sku = 8;
  Status status = 9;
  optional string coupon = 10;
  enum Status { NEW = 0; PAID = 1; }
  message Line { string sku = 1; double price = 2; }
}
'''
MONEY = 'syntax = "proto3"; package shop; message Money { int64 cents = 1; string currency = 2; }'


def _findings(source: str) -> list[str]:
    schema = compile_proto(ORDER, {"money.proto": MONEY})
    shape = shape_of_message(schema.messages[0], "subject orders-value version 2")
    return [finding.message for finding in check_against_shape(source, shape)]


def test_fields_of_the_message_and_its_imports_are_known() -> None:
    assert _findings("event.total.cents > 0 && event.qty > 2 && event.points > 1u && "
                     "event.placed_at < timestamp('2030-01-01T00:00:00Z') && event.note == null && "
                     "event.lines.all(l, l.price > 0.0) && event.by_sku['a'].sku == 'a' && "
                     "event.status == 'PAID' && has(event.coupon)") == []


def test_a_misspelled_field_anywhere_is_a_finding() -> None:
    assert _findings("event.totl.cents") == [
        "event.totl: subject orders-value version 2 has no field 'totl' (did you mean 'total'?)"]
    assert _findings("event.lines.exists(l, l.prce > 1.0)") == [
        "l.prce: subject orders-value version 2 has no field 'prce' (did you mean 'price'?)"]
    assert _findings("event.by_sku['a'].skuu") == [
        "event.by_sku.a.skuu: subject orders-value version 2 has no field 'skuu' (did you mean 'sku'?)"]


def test_the_names_are_the_protos_not_the_json_names() -> None:
    assert "has no field 'orderId'" in _findings("event.orderId")[0]


def test_types_follow_the_value_mapping() -> None:
    where = "subject orders-value version 2"
    assert _findings("event.qty == '2'") == [f"event.qty is an int in {where}, compared (==) with a string"]
    assert _findings("event.status == 1") == [f"event.status is a string in {where}, compared (==) with an int"]
    assert _findings("event.placed_at == 'x'") == [
        f"event.placed_at is a timestamp in {where}, compared (==) with a string"]
