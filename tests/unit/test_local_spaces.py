"""The names of data products' own spaces on the embedded servers."""

from __future__ import annotations

from provisioner.local.embedded import POSTGRES_NAME_LIMIT, postgres_database


def test_a_short_name_is_namespace_dot_product() -> None:
    assert postgres_database("team", "orders") == "team.orders"


def test_long_names_fit_postgres_and_stay_apart() -> None:
    namespace = "n" * 63
    first, second = postgres_database(namespace, "p" * 62 + "a"), postgres_database(namespace, "p" * 62 + "b")
    assert first != second
    assert all(len(name.encode()) <= POSTGRES_NAME_LIMIT for name in (first, second))
    # Neither a namespace nor a product name holds a dot, so the dot keeps the pair unambiguous.
    assert postgres_database("a-b", "c") != postgres_database("a", "b-c")
