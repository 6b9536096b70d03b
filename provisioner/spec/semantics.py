"""Rules that need the whole DataProduct: names agree, keys exist, expressions compile.

Called by the loader after the model validated. Pure: returns problems with the field path (and,
for expressions, the column inside the expression) so the loader can locate them in the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from provisioner.expr import ExpressionError, compile_expression
from provisioner.spec.findings import format_path
from provisioner.spec.models import DataProduct
from provisioner.spec.names import (
    FIELD_NAME,
    ORDER_COLUMNS,
    ORDER_MARKERS_TABLE,
    POSITIONS_TABLE,
    RESERVED_APPEND_COLUMNS,
    SQL_IDENTIFIER,
)
from provisioner.spec.schema_rules import schema_problems

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    path: Path
    message: str
    at_key: bool = False
    column_offset: int | None = None


def _expression(path: Path, source: str, *, expect_bool: bool) -> Iterator[Problem]:
    try:
        compile_expression(source, expect_bool=expect_bool)
    except ExpressionError as error:
        line = getattr(error, "line", 1)
        offset = error.column - 1 if line == 1 else None
        yield Problem(path, f"{error.message} (column {error.column} of the expression)", column_offset=offset)


def _order(source: str) -> Iterator[Problem]:
    try:
        program = compile_expression(source)
    except ExpressionError as error:
        line = getattr(error, "line", 1)
        offset = error.column - 1 if line == 1 else None
        yield Problem(("spec", "order"), f"{error.message} (column {error.column} of the expression)",
                      column_offset=offset)
        return
    # `dyn` (a JSON field) is checked per record: a value of another type is a dead letter (stage order).
    if program.result_type not in ("int", "timestamp", "dyn"):
        yield Problem(("spec", "order"),
                      f"order must evaluate to int or timestamp, but its type is {program.result_type}")


def _expressions(product: DataProduct) -> Iterator[Problem]:
    spec = product.spec
    if spec.order is not None:
        yield from _order(spec.order)
    if spec.filter is not None:
        yield from _expression(("spec", "filter"), spec.filter, expect_bool=True)
    if spec.delete is not None:
        yield from _expression(("spec", "delete"), spec.delete, expect_bool=True)
    for name, source in spec.fields.items():
        yield from _expression(("spec", "fields", name), source, expect_bool=False)


def _fields_and_key(product: DataProduct) -> Iterator[Problem]:
    spec = product.spec
    for name in spec.fields:
        if not FIELD_NAME.match(name):
            yield Problem(("spec", "fields", name),
                          f"field name {name!r} must be letters, digits and '_', not starting with a digit, "
                          "at most 63 characters", at_key=True)
    if spec.key is None and "key" in spec.fields:
        yield Problem(("spec", "fields", "key"),
                      "a field named 'key' needs an explicit `key:` (without one, an implicit field "
                      "`key: record.key` is added)", at_key=True)
    if spec.key is not None:
        keys = [spec.key] if isinstance(spec.key, str) else spec.key
        for index, name in enumerate(keys):
            path: Path = ("spec", "key") if isinstance(spec.key, str) else ("spec", "key", index)
            if name not in spec.fields:
                yield Problem(path, f"key field {name!r} is not one of fields ({', '.join(spec.fields)})")
        if len(set(keys)) != len(keys):
            yield Problem(("spec", "key"), "key names a field more than once")


#: URL schemes each store kind's client takes (redis-py: redis, rediss, unix; libpq: postgresql,
#: postgres, or a `key=value` connection string without a scheme).
URL_SCHEMES = {"redis": ("redis", "rediss", "unix"), "postgres": ("postgresql", "postgres")}


def _connection_url(path: Path, kind: str, url: str) -> Iterator[Problem]:
    """A literal URL's scheme must be the store's kind (a `${VAR}` scheme is known only at run time).
    Only the scheme is named: the rest of a URL may hold a password."""
    scheme, separator, _ = url.partition("://")
    if "${" in scheme:
        return
    schemes = URL_SCHEMES[kind]
    if separator and scheme.lower() in schemes:
        return
    if not separator and kind == "postgres" and "=" in url:
        return  # a libpq connection string (host=... dbname=...)
    *first, last = [f"{s}://" for s in schemes]
    accepted = f"{', '.join(first)} or {last}"
    got = f"a {scheme}:// URL" if separator and scheme.isalnum() else "a value without a scheme"
    yield Problem(path, f"a {kind} store needs a {accepted} URL, got {got}")


def _stores(product: DataProduct) -> Iterator[Problem]:
    spec = product.spec
    fields = product.fields
    seen: set[str] = set()
    tables: set[tuple[str, str]] = set()
    for index, store in enumerate(spec.stores):
        base: Path = ("spec", "stores", index)
        if store.name in seen:
            yield Problem((*base, "name"), f"store name {store.name!r} is used twice in this product")
        seen.add(store.name)
        if store.connection is not None and store.connection.url is not None:
            yield from _connection_url((*base, store.kind, "connection", "url"), store.kind, store.connection.url)
        if store.postgres is None:
            continue
        pg = store.postgres
        table = product.table(store)
        if not SQL_IDENTIFIER.match(table):
            yield Problem((*base, "postgres"),
                          f"the default table name {table!r} is not a valid SQL identifier: set `table`")
        if table == POSITIONS_TABLE:
            yield Problem((*base, "postgres", "table"), f"{POSITIONS_TABLE!r} is reserved for positions")
        if table == ORDER_MARKERS_TABLE:
            yield Problem((*base, "postgres", "table"), f"{ORDER_MARKERS_TABLE!r} is reserved for order markers")
        if pg.connection is None:
            if (pg.db_schema, table) in tables:
                yield Problem((*base, "postgres", "table"),
                              f"table {pg.db_schema}.{table} is used by another managed store of this product")
            tables.add((pg.db_schema, table))
        for name in fields:
            if not SQL_IDENTIFIER.match(name):
                yield Problem(("spec", "fields", name),
                              f"field {name!r} becomes a column of {store.name!r}: use lowercase letters, "
                              "digits and '_' (at most 63 characters)", at_key=True)
        if pg.mode == "append":
            for name in fields:
                if name in RESERVED_APPEND_COLUMNS:
                    yield Problem(("spec", "fields", name),
                                  f"{name!r} is a changelog column in append mode "
                                  f"({', '.join(RESERVED_APPEND_COLUMNS)}): rename the field", at_key=True)
        if spec.order is not None:
            for name in fields:
                if name in ORDER_COLUMNS:
                    yield Problem(("spec", "fields", name),
                                  f"{name!r} is a column of an ordered store ({', '.join(ORDER_COLUMNS)}): "
                                  "rename the field", at_key=True)
        for name in pg.columns:
            if name not in fields:
                yield Problem((*base, "postgres", "columns", name),
                              f"column type given for {name!r}, which is not a field", at_key=True)


def _source(product: DataProduct) -> Iterator[Problem]:
    spec = product.spec
    if product.dead_letter_topic == spec.source.topic:
        yield Problem(("spec", "errors", "deadLetterTopic"), "the dead-letter topic cannot be the source topic")
    if spec.source.json_schema is not None:
        try:
            Draft202012Validator.check_schema(spec.source.json_schema)
        except SchemaError as error:
            where = format_path(tuple(error.path)) or "(root)"
            yield Problem(("spec", "source", "schema"), f"not a valid JSON Schema at {where}: {error.message}")
            return
        for path, message, at_key in schema_problems(spec.source.json_schema, ("spec", "source", "schema")):
            yield Problem(path, message, at_key=at_key)


def check_product(product: DataProduct) -> list[Problem]:
    """Every whole-product problem, in file order as far as possible."""
    return [
        *_source(product),
        *_fields_and_key(product),
        *_expressions(product),
        *_stores(product),
    ]
