"""Rules that need the whole DataProduct: names agree, keys exist, expressions compile.

Called by the loader after the model validated, or on what validated of a spec with field-level
errors (`salvage`). Pure: returns problems with the field path (and, for expressions, the column
inside the expression) so the loader can locate them in the file, and the other paths a rule read
to find each one (`reads`), so a problem that read a part cut out of a broken spec is passed over.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from provisioner.expr import ExpressionError, compile_expression
from provisioner.spec.event_shape import Shape, from_json_schema
from provisioner.spec.findings import format_path
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.spec.names import (
    FIELD_NAME,
    ORDER_COLUMN,
    ORDER_COLUMNS,
    ORDER_HORIZON_TABLE,
    ORDER_MARKERS_TABLE,
    POSITIONS_TABLE,
    RESERVED_APPEND_COLUMNS,
    SQL_IDENTIFIER,
)
from provisioner.spec.schema_rules import schema_problems
from provisioner.spec.shape_check import check_against_shape
from provisioner.spec.store_urls import postgres_url_problem, redis_url_problem

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    path: Path
    message: str
    at_key: bool = False
    column_offset: int | None = None
    reads: tuple[Path, ...] = ()


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
    except ExpressionError:
        yield from _expression(("spec", "order"), source, expect_bool=False)
        return
    # `dyn` (a JSON field) is checked per record: a value of another type is a dead letter (stage order).
    if program.result_type not in ("int", "timestamp", "dyn"):
        yield Problem(("spec", "order"),
                      f"order must evaluate to int or timestamp, but its type is {program.result_type}")


def _expressions(product: DataProduct) -> Iterator[Problem]:
    for path, source in _sources(product):
        if path == ("spec", "order"):
            yield from _order(source)
        else:
            yield from _expression(path, source, expect_bool=path[1] != "fields")


def shape_problems(product: DataProduct, event: Shape) -> list[Problem]:
    """The product's expressions against the shape a registered schema gives `event`."""
    return list(_shape_findings(product, event))


def _shape_findings(product: DataProduct, event: Shape | None) -> Iterator[Problem]:
    """Expressions against the shape of `event`: the registry's subject when given, else an inline
    `source.schema` (a JSON event must satisfy it, so what it rules out cannot happen)."""
    if event is None and product.spec.source.json_schema is not None and product.spec.source.format == "json":
        event = from_json_schema(product.spec.source.json_schema, "source.schema")
    if event is None:
        return
    for path, source in _sources(product):
        for finding in check_against_shape(source, event):
            line = source.count("\n", 0, finding.pos) + 1
            column = finding.pos - (source.rfind("\n", 0, finding.pos) + 1) + 1
            yield Problem(path, f"{finding.message} (column {column} of the expression)",
                          column_offset=column - 1 if line == 1 else None,
                          reads=(("spec", "source", "format"), ("spec", "source", "schema")))


def _sources(product: DataProduct) -> Iterator[tuple[Path, str]]:
    spec = product.spec
    if spec.filter is not None:
        yield ("spec", "filter"), spec.filter
    if spec.delete is not None:
        yield ("spec", "delete"), spec.delete
    for name, source in spec.fields.items():
        yield ("spec", "fields", name), source
    if spec.order is not None:
        yield ("spec", "order"), spec.order


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
                      "`key: record.key` is added)", at_key=True, reads=(("spec", "key"),))
    if spec.key is not None:
        keys = [spec.key] if isinstance(spec.key, str) else spec.key
        for index, name in enumerate(keys):
            path: Path = ("spec", "key") if isinstance(spec.key, str) else ("spec", "key", index)
            if name not in spec.fields:
                yield Problem(path, f"key field {name!r} is not one of fields ({', '.join(spec.fields)})",
                              reads=(("spec", "fields", name),))
        if len(set(keys)) != len(keys):
            yield Problem(("spec", "key"), "key names a field more than once")


#: URL schemes each store kind's client takes (redis-py: redis, rediss, unix; libpq: postgresql,
#: postgres, or a `key=value` connection string without a scheme).
URL_SCHEMES = {"redis": ("redis", "rediss", "unix"), "postgres": ("postgresql", "postgres")}


def _connection_url(path: Path, kind: str, url: str) -> Iterator[Problem]:
    """A literal URL's scheme must be the store's kind (a `${VAR}` scheme is known only at run time),
    and its query parameters ones the store's client takes (`store_urls`). Only the scheme or a
    parameter's name is said: the rest of a URL may hold a password."""
    scheme, separator, _ = url.partition("://")
    if "${" in scheme:
        return
    schemes = URL_SCHEMES[kind]
    if separator and scheme.lower() in schemes:
        problem = (redis_url_problem if kind == "redis" else postgres_url_problem)(url)
        if problem is not None:
            yield Problem(path, problem)
        return
    if not separator and kind == "postgres" and "=" in url:
        return  # a libpq connection string (host=... dbname=...)
    *first, last = [f"{s}://" for s in schemes]
    accepted = f"{', '.join(first)} or {last}"
    got = f"a {scheme}:// URL" if separator and scheme.isalnum() else "a value without a scheme"
    yield Problem(path, f"a {kind} store needs a {accepted} URL, got {got}")


def _stores(product: DataProduct) -> Iterator[Problem]:
    seen: set[str] = set()
    tables: set[tuple[str, str]] = set()
    for index, store in enumerate(product.spec.stores):
        base: Path = ("spec", "stores", index)
        if store.name in seen:
            yield Problem((*base, "name"), f"store name {store.name!r} is used twice in this product")
        seen.add(store.name)
        if store.connection is not None and store.connection.url is not None:
            yield from _connection_url((*base, store.kind, "connection", "url"), store.kind, store.connection.url)
        if store.postgres is not None:
            yield from _postgres_store(product, store, base, tables)
    hashes = any(s.redis is not None and s.redis.structure == "hash" for s in product.spec.stores)
    columns = any(s.postgres is not None for s in product.spec.stores)  # those say it of their columns
    if product.spec.order is not None and hashes and not columns and ORDER_COLUMN in product.fields:
        yield Problem(("spec", "fields", ORDER_COLUMN),
                      f"{ORDER_COLUMN!r} is the hash field holding an ordered row's order value: rename the field",
                      at_key=True)


def _postgres_store(product: DataProduct, store: StoreSpec, base: Path,
                    tables: set[tuple[str, str]]) -> Iterator[Problem]:
    """A Postgres store's table and columns; `tables` collects the managed tables seen so far."""
    pg = store.postgres
    assert pg is not None
    fields = product.fields
    table = product.table(store)
    if not SQL_IDENTIFIER.match(table):
        yield Problem((*base, "postgres"),
                      f"the default table name {table!r} is not a valid SQL identifier: set `table`",
                      reads=(("metadata", "name"),))
    if table == POSITIONS_TABLE:
        yield Problem((*base, "postgres", "table"), f"{POSITIONS_TABLE!r} is reserved for positions")
    if table in (ORDER_MARKERS_TABLE, ORDER_HORIZON_TABLE):
        yield Problem((*base, "postgres", "table"), f"{table!r} is reserved for order markers")
    if pg.connection is None:
        if (pg.db_schema, table) in tables:
            yield Problem((*base, "postgres", "table"),
                          f"table {pg.db_schema}.{table} is used by another managed store of this product",
                          reads=(("metadata", "name"), ("spec", "stores")))
        tables.add((pg.db_schema, table))
    reserved = {name: "a changelog column in append mode" for name in RESERVED_APPEND_COLUMNS if pg.mode == "append"}
    if product.spec.order is not None:
        reserved.update((name, "a column of an ordered store") for name in ORDER_COLUMNS)
    for name in fields:
        if not SQL_IDENTIFIER.match(name):
            yield Problem(("spec", "fields", name),
                          f"field {name!r} becomes a column of {store.name!r}: use lowercase letters, "
                          "digits and '_' (at most 63 characters)", at_key=True)
        elif name in reserved:
            append = name in RESERVED_APPEND_COLUMNS and pg.mode == "append"
            columns = RESERVED_APPEND_COLUMNS if append else ORDER_COLUMNS
            yield Problem(("spec", "fields", name),
                          f"{name!r} is {reserved[name]} ({', '.join(columns)}): rename the field", at_key=True)
    for name in pg.columns:
        if name not in fields:
            yield Problem((*base, "postgres", "columns", name),
                          f"column type given for {name!r}, which is not a field", at_key=True,
                          reads=(("spec", "fields", name), ("spec", "key")))


def _source(product: DataProduct) -> Iterator[Problem]:
    spec = product.spec
    if product.dead_letter_topic == spec.source.topic:
        yield Problem(("spec", "errors", "deadLetterTopic"), "the dead-letter topic cannot be the source topic",
                      reads=(("metadata", "name"), ("spec", "source", "topic")))
    if spec.source.json_schema is not None:
        try:
            Draft202012Validator.check_schema(spec.source.json_schema)
        except SchemaError as error:
            where = format_path(tuple(error.path)) or "(root)"
            yield Problem(("spec", "source", "schema"), f"not a valid JSON Schema at {where}: {error.message}")
            return
        for path, message, at_key in schema_problems(spec.source.json_schema, ("spec", "source", "schema")):
            yield Problem(path, message, at_key=at_key)


def check_product(product: DataProduct, event: Shape | None = None) -> list[Problem]:
    """Every whole-product problem, in file order as far as possible; with `event`, the shape a
    registered schema gives the events, expressions are also checked against it."""
    problems = [*_source(product), *_fields_and_key(product), *_expressions(product)]
    if not problems:  # an expression that does not compile has its finding already
        problems.extend(_shape_findings(product, event))
    return [*problems, *_stores(product)]
