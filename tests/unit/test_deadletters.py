"""Dead-letter headers: the original headers, then the `provisioner.*` provenance of spec.md."""

from __future__ import annotations

from provisioner.pipeline.ops import DeadLetter, Record
from provisioner.stream.deadletters import MAX_MESSAGE_BYTES, dead_letter_headers


def test_headers_name_the_source_the_product_and_the_store() -> None:
    record = Record("orders", 2, 41, 0, b"k", b"{", (("trace", b"t1"), ("provisioner.store", b"forged")))
    headers = dead_letter_headers(record, DeadLetter("decode", "not JSON"), "shop/vip-orders", "cache")
    assert headers == [
        ("trace", b"t1"),
        ("provisioner.error.stage", b"decode"),
        ("provisioner.error.message", b"not JSON"),
        ("provisioner.source.topic", b"orders"),
        ("provisioner.source.partition", b"2"),
        ("provisioner.source.offset", b"41"),
        ("provisioner.product", b"shop/vip-orders"),
        ("provisioner.store", b"cache"),
    ]


def test_a_long_or_unencodable_message_never_fails_the_send() -> None:
    record = Record("t", 0, 0, 0, None, b"x")
    headers = dict(dead_letter_headers(record, DeadLetter("store", "\ud800" + "x" * 10_000), "ns/p", "db"))
    assert len(headers["provisioner.error.message"]) == MAX_MESSAGE_BYTES
    assert headers["provisioner.error.message"].startswith(b"\\ud800")
