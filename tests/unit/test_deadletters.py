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


def test_a_dead_letter_over_the_limit_has_its_value_then_its_key_cut_and_says_so() -> None:
    from provisioner.stream.deadletters import TRUNCATED_KEY_HEADER, TRUNCATED_VALUE_HEADER, fit

    headers = [("provisioner.error.stage", b"decode")]
    small = (b"k", b"v" * 100, headers)
    assert fit(small, limit=1000) is small
    key, value, cut = fit((b"k" * 10, b"v" * 2000, headers), limit=1000)
    size = len(key or b"") + len(value or b"") + sum(len(n) + len(v) for n, v in cut)
    assert size <= 1000 and key == b"k" * 10 and value and set(value) == {ord("v")}
    assert (TRUNCATED_VALUE_HEADER, b"2000") in cut and not any(n == TRUNCATED_KEY_HEADER for n, _ in cut)
    key, value, cut = fit((b"k" * 3000, b"v" * 10, headers), limit=1000)
    size = len(key or b"") + len(value or b"") + sum(len(n) + len(v) for n, v in cut)
    assert size <= 1000 and value == b"" and key and len(key) < 3000
    assert (TRUNCATED_KEY_HEADER, b"3000") in cut and (TRUNCATED_VALUE_HEADER, b"10") in cut
