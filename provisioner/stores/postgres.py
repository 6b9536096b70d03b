"""The Postgres store: a data product as an upsert table or an append-only changelog.

Opened by `provisioner.stores.registry.open_store`; driven by the consumer loop through the
`Store` protocol. `prepare` converts every value in Python (`convert.py`) so the server never
refuses a batch over one bad value. `apply` runs one transaction: with a version fence, a key-share
lock on the store's version record and a check that it still names the fenced version (a switch
locks that row for update first, so a batch lands wholly before a switch or is refused after it);
the fencing compare-and-set on the positions rows (a zombie blocks on their row locks, then finds
them moved and fails); then the data, streamed with COPY: straight into the table in append mode;
in upsert mode into a session temp table, from which one DELETE and one INSERT ... ON CONFLICT
apply the batch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from math import isfinite
from typing import Any, Final

import psycopg
from psycopg import errors
from psycopg.rows import dict_row

from provisioner.pipeline.ops import Change, DeadLetter, Delete, KeyPart, Upsert
from provisioner.spec.models import ColumnType, DataProduct, StoreSpec
from provisioner.spec.names import POSITIONS_TABLE, RESERVED_APPEND_COLUMNS, VERSIONS_TABLE, quote_identifier
from provisioner.stores.base import (
    PositionConflict,
    Rejected,
    Stale,
    StoreError,
    StoreSchemaError,
    VersionFence,
    VersionMoved,
    mask_url,
)
from provisioner.stores.convert import ConversionError, Converter, converter, timestamp_text, utc_text
from provisioner.stores.postgres_connect import connect, failure

# How Postgres' format_type() names each spec column type, for comparing with an existing table.
_CATALOG_TYPE: Final[dict[str, str]] = {
    "text": "text",
    "integer": "integer",
    "bigint": "bigint",
    "double precision": "double precision",
    "numeric": "numeric",
    "boolean": "boolean",
    "jsonb": "jsonb",
    "timestamptz": "timestamp with time zone",
    "date": "date",
    "uuid": "uuid",
}
_APPEND_COLUMNS: Final[tuple[tuple[str, ColumnType], ...]] = (
    ("_op", "text"),
    ("_partition", "integer"),
    ("_offset", "bigint"),
    ("_timestamp", "timestamptz"),
)
assert tuple(name for name, _ in _APPEND_COLUMNS) == RESERVED_APPEND_COLUMNS
_BATCH_TABLE: Final = "_provisioner_batch"
_INT4: Final = (-(2**31), 2**31 - 1)
_INT8: Final = (-(2**63), 2**63 - 1)
_DELETE_FLAG: Final = "_provisioner_delete"


log = logging.getLogger(__name__)

IDLE_IN_TRANSACTION_MS = 15_000
# One statement of one batch (a COPY of at most batchSize rows, one upsert) takes milliseconds; one
# still running after this long is stuck (a server waiting on a paused client is ended otherwise).
STATEMENT_TIMEOUT_MS = 30_000
LOCK_TIMEOUT_MS = 5_000
# A session of the same consumer group inside a transaction and waiting on its client this long
# after a lock timeout is a paused zombie: ended (see `_end_stuck_sessions`).
STUCK_SESSION_MS = 10_000


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    type: ColumnType

    @property
    def sql(self) -> str:
        return f"{quote_identifier(self.name)} {self.type}"


def _fast(column_type: ColumnType, convert: Converter, *, key: bool = False) -> Converter:
    """`convert` with a shortcut for the common values of `column_type` (same results, less work).

    The shortcuts only take values whose conversion is the identity or `str`/`repr` (checked by
    type and content); anything else goes through `convert`, which decides and explains refusals.
    A timestamptz column outside the key takes a valid UTC text as it is ("...00.276Z"): Postgres
    reads the same instant from it as from the canonical text, which only a key needs (so equal
    instants coalesce within a batch).
    """
    if column_type == "timestamptz" and not key:

        def timestamptz(value: Any) -> str | None:
            if utc_text(value):
                return value  # type: ignore[no-any-return]
            return convert(value)

        return timestamptz
    if column_type == "text":

        def text(value: Any) -> str | None:
            kind = type(value)
            if kind is str and value.isascii() and "\x00" not in value:
                return value  # type: ignore[no-any-return]
            if kind is int:
                return str(value)
            return convert(value)

        return text
    if column_type in ("integer", "bigint"):
        low, high = _INT4 if column_type == "integer" else _INT8

        def integer(value: Any) -> str | None:
            if type(value) is int and low <= value <= high:
                return str(value)
            return convert(value)

        return integer
    if column_type == "numeric":

        def numeric(value: Any) -> str | None:
            if type(value) is float and isfinite(value):
                shortest = repr(value)
                # Plain notation (no exponent) is already what format(Decimal(repr), "f") gives.
                if "e" not in shortest:
                    return shortest
            elif type(value) is int:
                return str(value)
            return convert(value)

        return numeric
    return convert


def _identity(text: str | None) -> Any:
    return text


def _numeric_identity(text: str | None) -> Any:
    # 1.0 and 1 are one numeric key: compare their values, not their texts.
    return None if text is None else Decimal(text)


class PostgresStore:
    """A `Store` over one Postgres table (and the schema's shared positions table)."""

    def __init__(self, product: DataProduct, store: StoreSpec, url: str, *, timeout: float = 10.0,
                 fence: VersionFence | None = None) -> None:
        spec = store.postgres
        assert spec is not None, "PostgresStore needs a postgres store spec"
        self._url = url
        self._timeout = timeout
        self._product_name = product.name
        self._store_name = store.name
        # The Postgres schema (the namespace of the table and of the positions table), not to be
        # confused with the event's JSON Schema (`source.schema`) or the Store's `ensure_schema`.
        self._pg_schema = spec.db_schema
        self._table = product.table(store)
        self._mode = spec.mode
        self._consumer = product.consumer_group(store)
        self._topic = product.spec.source.topic
        self._fields = tuple(_Column(name, spec.columns.get(name, "text")) for name in product.fields)
        self._key_fields = product.key_fields
        self._columns = self._fields + (
            tuple(_Column(name, kind) for name, kind in _APPEND_COLUMNS) if self._mode == "append" else ()
        )
        self._primary_key = self._key_fields if self._mode == "upsert" else ("_partition", "_offset")
        self._converters = tuple(
            (column.name, _fast(column.type, converter(column.type), key=column.name in self._key_fields))
            for column in self._fields
        )
        by_name = {column.name: column for column in self._fields}
        self._key_index = tuple(list(by_name).index(name) for name in self._key_fields)
        self._key_identity = tuple(
            _numeric_identity if by_name[name].type == "numeric" else _identity for name in self._key_fields
        )
        self._qualified = f"{quote_identifier(self._pg_schema)}.{quote_identifier(self._table)}"
        self._positions = f"{quote_identifier(self._pg_schema)}.{quote_identifier(POSITIONS_TABLE)}"
        self._versions = f"{quote_identifier(self._pg_schema)}.{quote_identifier(VERSIONS_TABLE)}"
        self._fence = fence
        self._sql = self._statements()
        self._connection: psycopg.Connection[Any] | None = None

    # -- SQL, built once from validated, quoted identifiers -----------------------------------

    def _statements(self) -> dict[str, str]:
        # Every identifier below went through quote_identifier (validated, then double-quoted) and
        # every value is a bind parameter, hence the S608 exemptions.
        q = quote_identifier
        table, positions, batch, flag = self._qualified, self._positions, q(_BATCH_TABLE), q(_DELETE_FLAG)
        all_columns = ", ".join(q(column.name) for column in self._columns)
        fields = ", ".join(q(column.name) for column in self._fields)
        pk = ", ".join(q(name) for name in self._primary_key)
        non_key = [column.name for column in self._fields if column.name not in self._key_fields]
        on_conflict = (
            "DO UPDATE SET " + ", ".join(f"{q(name)} = EXCLUDED.{q(name)}" for name in non_key)
            if non_key
            else "DO NOTHING"
        )
        match = " AND ".join(f"t.{q(name)} = b.{q(name)}" for name in self._key_fields)
        definitions = ", ".join(
            column.sql + (" NOT NULL" if column.name in self._primary_key else "") for column in self._columns
        )
        batch_definitions = ", ".join(column.sql for column in self._fields)
        return {
            "create_table": f"CREATE TABLE {table} ({definitions}, PRIMARY KEY ({pk}))",
            "create_positions": (
                f"CREATE TABLE IF NOT EXISTS {positions} (consumer text NOT NULL, topic text NOT NULL, "
                '"partition" integer NOT NULL, next_offset bigint NOT NULL, '
                'PRIMARY KEY (consumer, topic, "partition"))'
            ),
            "create_batch": (
                f"CREATE TEMP TABLE IF NOT EXISTS {batch} ({batch_definitions}, {flag} boolean NOT NULL) "
                "ON COMMIT DELETE ROWS"
            ),
            "copy_batch": f"COPY {batch} ({fields}, {flag}) FROM STDIN",
            "copy_append": f"COPY {table} ({all_columns}) FROM STDIN",
            "delete": f"DELETE FROM {table} AS t USING {batch} AS b WHERE b.{flag} AND {match}",  # noqa: S608
            "upsert": (
                f"INSERT INTO {table} ({fields}) SELECT {fields} FROM {batch} "  # noqa: S608
                f"WHERE NOT {flag} ON CONFLICT ({pk}) {on_conflict}"
            ),
            "advance": (
                f"UPDATE {positions} AS p SET next_offset = v.e "  # noqa: S608
                "FROM unnest(%s::integer[], %s::bigint[], %s::bigint[]) AS v(p, s, e) "
                'WHERE p.consumer = %s AND p.topic = %s AND p."partition" = v.p AND p.next_offset = v.s'
            ),
            "claim": (
                f'INSERT INTO {positions} (consumer, topic, "partition", next_offset) '  # noqa: S608
                "SELECT %s, %s, v.p, v.e FROM unnest(%s::integer[], %s::bigint[]) AS v(p, e) "
                "ON CONFLICT DO NOTHING"
            ),
            "positions": (
                f'SELECT "partition", next_offset FROM {positions} '  # noqa: S608
                "WHERE consumer = %s AND topic = %s"
            ),
            "version": (
                f"SELECT fingerprint, generation FROM {self._versions} "  # noqa: S608
                "WHERE consumer = %s FOR KEY SHARE"
            ),
            "forget_positions": f"DELETE FROM {positions} WHERE consumer = %s",  # noqa: S608
            "end_stuck": (
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s "
                "AND pid <> pg_backend_pid() AND wait_event = 'ClientRead' "
                "AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)') "
                "AND xact_start < now() - make_interval(secs => %s)"
            ),
            "inspect": f"SELECT * FROM {table} ORDER BY {pk} LIMIT %s",  # noqa: S608
            "count": f"SELECT count(*) FROM {table}",  # noqa: S608
        }

    # -- connection -------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        connection = self._connection
        if connection is not None and not connection.closed:
            return connection
        connection = connect(self._url, timeout=self._timeout, application_name=f"provisioner {self._consumer}")
        try:
            # A consumer paused mid-transaction (a zombie: SIGSTOP, a VM freeze) holds the row
            # locks of its positions; the server ends its session after a while, so the consumer
            # that took its partitions over is not blocked forever. That one waits for a lock at
            # most a few seconds, then backs off and retries, so its Kafka session stays alive.
            # Paused between statements, the idle timeout ends it; paused mid-COPY (the server
            # waiting for the rest of the rows, when it processes no timeout), the consumer it
            # blocks ends it (`_end_stuck_sessions`).
            connection.execute(f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}")
            connection.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
            connection.execute(f"SET lock_timeout = {LOCK_TIMEOUT_MS}")
            if self._mode == "upsert":
                connection.execute(self._sql["create_batch"])
        except psycopg.Error as error:
            connection.close()
            raise self._error("cannot connect", error) from None
        self._connection = connection
        return connection

    def _error(self, doing: str, error: BaseException) -> StoreError:
        return failure(self._url, doing, error)

    def _failed(self, doing: str, error: psycopg.Error) -> StoreError:
        """A StoreError for `error`; a connection that may be broken is dropped (reopened next call)."""
        if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
            self.close()
        return self._error(doing, error)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # -- schema -----------------------------------------------------------------------------

    def _rebuild_hint(self) -> str:
        return (
            f"rebuild it with `provisioner replay {self._product_name} --store {self._store_name}` "
            "(drops the table and re-reads the topic)"
        )

    def ensure_schema(self) -> None:
        connection = self._connect()
        for attempt in (1, 2):
            try:
                with connection.transaction():
                    self._lock(connection)
                    self._create_missing(connection)
                return
            except (errors.UniqueViolation, errors.DuplicateTable, errors.DuplicateObject,
                    errors.DuplicateSchema) as error:
                # Someone outside the advisory lock created the same object at the same time:
                # the second attempt sees it and only checks it.
                if attempt == 2:
                    raise self._failed("creating the schema failed", error) from None
            except psycopg.Error as error:
                raise self._failed("creating the schema failed", error) from None

    def _lock(self, connection: psycopg.Connection[Any]) -> None:
        # Serialises schema changes of consumers starting together (same schema, any product).
        connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"provisioner:{self._pg_schema}",))

    def _create_missing(self, connection: psycopg.Connection[Any]) -> None:
        found = connection.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self._pg_schema,))
        if found.fetchone() is None:
            connection.execute(f"CREATE SCHEMA {quote_identifier(self._pg_schema)}")
        connection.execute(self._sql["create_positions"])
        existing = connection.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p') "
            "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            (self._pg_schema, self._table),
        ).fetchall()
        if not existing:
            connection.execute(self._sql["create_table"])
            return
        primary_key = [
            row[0]
            for row in connection.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) "
                "WHERE n.nspname = %s AND c.relname = %s AND i.indisprimary "
                "ORDER BY array_position(i.indkey::int2[], a.attnum)",
                (self._pg_schema, self._table),
            ).fetchall()
        ]
        missing = self._check_compatible(dict(existing), primary_key)
        for column in missing:
            connection.execute(f"ALTER TABLE {self._qualified} ADD COLUMN {column.sql}")

    def _check_compatible(self, existing: dict[str, str], primary_key: list[str]) -> list[_Column]:
        """The columns to add; raises StoreSchemaError naming every other difference."""
        problems: list[str] = []
        is_changelog = primary_key == ["_partition", "_offset"] and set(RESERVED_APPEND_COLUMNS) <= existing.keys()
        if self._mode == "upsert" and is_changelog:
            problems.append("it is an append-mode changelog but the spec says mode upsert")
        elif self._mode == "append" and not is_changelog:
            problems.append("it is an upsert-mode table but the spec says mode append")
        else:
            # Same mode: list every column-level difference, so one replay fixes them all.
            if primary_key != list(self._primary_key):
                problems.append(
                    f"its primary key is ({', '.join(primary_key)}) "
                    f"but the spec's key is ({', '.join(self._primary_key)})"
                )
            wanted = {column.name: column for column in self._columns}
            for name, catalog_type in existing.items():
                column = wanted.get(name)
                if column is None:
                    problems.append(f"column {name!r} is no longer a field")
                elif _CATALOG_TYPE[column.type] != catalog_type:
                    problems.append(f"column {name!r} is {catalog_type} but the spec says {column.type}")
        if problems:
            raise StoreSchemaError(
                f'table "{self._pg_schema}"."{self._table}" does not match the spec: '
                + "; ".join(problems)
                + f"; {self._rebuild_hint()}"
            )
        return [column for column in self._columns if column.name not in existing]

    # -- batches ----------------------------------------------------------------------------

    def prepare(self, changes: Sequence[Change]) -> tuple[list[Any], list[Rejected]]:
        rejected: list[Rejected] = []
        if self._mode == "append":
            rows: list[Any] = []
            for change in changes:
                try:
                    rows.append(self._append_row(change))
                except ConversionError as error:
                    rejected.append(Rejected(change, DeadLetter("store", str(error))))
            return rows, rejected
        # Upsert mode: the last op per primary key wins within a batch. Also required: one
        # INSERT ... ON CONFLICT cannot touch the same row twice.
        latest: dict[Any, tuple[str | None, ...]] = {}
        converters = self._converters
        key_index = self._key_index
        key_identity = self._key_identity
        # One text key: the row's key text is its identity (the same grouping as a 1-tuple).
        single = key_index[0] if len(key_index) == 1 and key_identity[0] is _identity else None
        for change in changes:
            op = change.op
            row: tuple[str | None, ...]
            try:
                if type(op) is Upsert:
                    get = op.row.get
                    row = (*[convert(get(name)) for name, convert in converters], "false")
                else:
                    row = self._upsert_row(change)
            except ConversionError:
                # Again, field by field, for a message naming the field.
                try:
                    row = self._upsert_row(change)
                except ConversionError as error:
                    rejected.append(Rejected(change, DeadLetter("store", str(error))))
                    continue
            identity: Any = (
                row[single] if single is not None
                else tuple(same(row[index]) for same, index in zip(key_identity, key_index, strict=True))
            )
            latest.pop(identity, None)
            latest[identity] = row
        return list(latest.values()), rejected

    def _convert_fields(self, change: Change) -> list[str | None]:
        op = change.op
        values: list[str | None] = []
        if isinstance(op, Upsert):
            row = op.row
            for name, convert in self._converters:
                try:
                    values.append(convert(row.get(name)))
                except ConversionError as error:
                    raise ConversionError(f"field {name!r}: {error}") from None
            return values
        keys = dict(zip(self._key_fields, op.key, strict=True))
        for name, convert in self._converters:
            try:
                values.append(convert(keys.get(name)))
            except ConversionError as error:
                raise ConversionError(f"field {name!r}: {error}") from None
        return values

    def _upsert_row(self, change: Change) -> tuple[str | None, ...]:
        values = self._convert_fields(change)
        values.append("false" if isinstance(change.op, Upsert) else "true")
        return tuple(values)

    def _append_row(self, change: Change) -> tuple[str | None, ...]:
        values = self._convert_fields(change)
        values += [change.op.kind, str(change.partition), str(change.offset)]
        values.append(timestamp_text(change.timestamp_ms))
        return tuple(values)

    def read_positions(self) -> dict[int, int]:
        connection = self._connect()
        try:
            rows = connection.execute(self._sql["positions"], (self._consumer, self._topic)).fetchall()
        except errors.UndefinedTable:
            return {}
        except psycopg.Error as error:
            raise self._failed("reading positions failed", error) from None
        return {int(partition): int(offset) for partition, offset in rows}

    def apply(
        self, prepared: Sequence[Any], start: Mapping[int, int | None], end: Mapping[int, int]
    ) -> Stale | None:
        connection = self._connect()
        try:
            with connection.transaction():
                if self._fence is not None:
                    self._check_version(connection, self._fence)
                self._advance(connection, start, end)
                if prepared:
                    self._write(connection, prepared)
        except (PositionConflict, VersionMoved):
            raise
        except errors.LockNotAvailable as error:
            self._end_stuck_sessions(connection)
            raise self._failed("applying a batch failed", error) from None
        except psycopg.Error as error:
            raise self._failed("applying a batch failed", error) from None
        return None

    def _end_stuck_sessions(self, connection: psycopg.Connection[Any]) -> None:
        """After a lock timeout: end the sessions of this consumer group that have waited on their
        client inside a transaction for longer than any batch takes. That is a paused consumer (a
        zombie: SIGSTOP, a frozen VM) holding its positions' row locks; paused mid-COPY, the server
        processes neither its statement timeout nor its idle timeout while it waits for the rest
        of the rows. Ending it is safe: its batch rolls back, and its next one is fenced."""
        try:
            ended = connection.execute(self._sql["end_stuck"], (f"provisioner {self._consumer}"[:63],
                                                                STUCK_SESSION_MS / 1000)).fetchall()
        except psycopg.Error as error:  # not allowed (another role's sessions): the timeouts remain
            log.debug("postgres: cannot end stuck sessions: %s", type(error).__name__)
            return
        if ended:
            log.warning("postgres: ended %d session(s) of %s stuck on their client mid-transaction for "
                        "over %d s (a paused consumer holding its positions)", len(ended), self._consumer,
                        STUCK_SESSION_MS // 1000)

    def _check_version(self, connection: psycopg.Connection[Any], fence: VersionFence) -> None:
        """The version fence, first in the transaction. FOR KEY SHARE conflicts only with FOR UPDATE,
        which the switch takes first: a switch waits for this batch and this batch for the switch,
        while recording a shadow (a plain UPDATE) waits for neither, nor do writers for each other."""
        try:
            row = connection.execute(self._sql["version"], (self._consumer,)).fetchone()
        except errors.UndefinedTable:
            row = None
        if row is None or (row[0], int(row[1])) != (fence.fingerprint, fence.generation):
            found = "none" if row is None else f"{row[0][:8]} generation {row[1]}"
            raise VersionMoved(
                f"postgres {mask_url(self._url)}: the store's version is {found}, not "
                f"{fence.fingerprint[:8]} generation {fence.generation}: this spec no longer writes it")

    def _advance(
        self, connection: psycopg.Connection[Any], start: Mapping[int, int | None], end: Mapping[int, int]
    ) -> None:
        """The fencing compare-and-set, first in the transaction so it holds the positions' row locks."""
        moved: list[tuple[int, int, int]] = []
        claimed: list[tuple[int, int]] = []
        for partition in sorted({*start, *end}):
            begin = start.get(partition)
            # A partition in `start` only must still be where it was: "move" it onto itself.
            final = end.get(partition, begin)
            if begin is None:
                if final is not None:
                    claimed.append((partition, final))
            else:
                assert final is not None
                moved.append((partition, begin, final))
        if moved:
            cursor = connection.execute(
                self._sql["advance"],
                ([p for p, _, _ in moved], [s for _, s, _ in moved], [e for _, _, e in moved],
                 self._consumer, self._topic),
            )
            if cursor.rowcount != len(moved):
                raise PositionConflict(
                    f"positions of {self._consumer!r} moved since the batch started from {dict(start)}"
                )
        if claimed:
            cursor = connection.execute(
                self._sql["claim"],
                (self._consumer, self._topic, [p for p, _ in claimed], [e for _, e in claimed]),
            )
            if cursor.rowcount != len(claimed):
                raise PositionConflict(
                    f"positions of {self._consumer!r} were created by another consumer "
                    "since the batch started"
                )

    def _write(self, connection: psycopg.Connection[Any], prepared: Sequence[Any]) -> None:
        with connection.cursor() as cursor:
            if self._mode == "append":
                with cursor.copy(self._sql["copy_append"]) as copy:
                    for row in prepared:
                        copy.write_row(row)
                return
            deletes = False
            with cursor.copy(self._sql["copy_batch"]) as copy:
                for row in prepared:
                    copy.write_row(row)
                    deletes = deletes or row[-1] == "true"
            if deletes:
                cursor.execute(self._sql["delete"])
            cursor.execute(self._sql["upsert"])

    # -- operations -------------------------------------------------------------------------

    def inspect(self, limit: int) -> list[dict[str, Any]]:
        connection = self._connect()
        try:
            with connection.cursor(row_factory=dict_row) as cursor:
                return list(cursor.execute(self._sql["inspect"], (limit,)).fetchall())
        except errors.UndefinedTable:
            return []
        except psycopg.Error as error:
            raise self._failed("inspect failed", error) from None

    def _key_match(self, key: tuple[KeyPart, ...]) -> tuple[str, list[str | None]]:
        """A WHERE clause matching `key`'s row, with its parameters converted as `prepare` converts them."""
        types = {column.name: column.type for column in self._fields}
        values = self._convert_fields(Change(0, 0, 0, Delete(key)))
        names = [column.name for column in self._fields]
        where = " AND ".join(f"{quote_identifier(name)} = %s::{types[name]}" for name in self._key_fields)
        return where, [values[names.index(name)] for name in self._key_fields]

    def read_row(self, key: tuple[KeyPart, ...]) -> dict[str, Any] | None:
        """The row stored under `key` (in append mode the last one appended), or None; for
        `provisioner explain`. A key that does not convert to the key columns' types has no row."""
        try:
            where, parameters = self._key_match(key)
        except ConversionError:
            return None
        order = " ORDER BY _timestamp DESC, _partition DESC, _offset DESC" if self._mode == "append" else ""
        query = f"SELECT * FROM {self._qualified} WHERE {where}{order} LIMIT 1"  # noqa: S608
        try:
            with self._connect().cursor(row_factory=dict_row) as cursor:
                return cursor.execute(query, parameters).fetchone()
        except errors.UndefinedTable:
            return None
        except psycopg.Error as error:
            raise self._failed("read failed", error) from None

    def holds_row(self, key: tuple[KeyPart, ...], row: Mapping[str, Any] | None) -> bool:
        """Whether the (upsert-mode) table holds exactly what writing `row` under `key` leaves
        (None: no row), compared by the server in the columns' types."""
        if row is None:
            return self.read_row(key) is None
        try:
            where, parameters = self._key_match(key)
            values = self._convert_fields(Change(0, 0, 0, Upsert(key, row)))
        except ConversionError:
            return False
        columns = ", ".join(quote_identifier(column.name) for column in self._fields)
        expected = ", ".join(f"%s::{column.type}" for column in self._fields)
        query = (f"SELECT ROW({columns}) IS NOT DISTINCT FROM ROW({expected}) "  # noqa: S608
                 f"FROM {self._qualified} WHERE {where}")
        try:
            found = self._connect().execute(query, [*values, *parameters]).fetchone()
        except errors.UndefinedTable:
            return False
        except psycopg.Error as error:
            raise self._failed("read failed", error) from None
        return bool(found and found[0])

    def count(self) -> int:
        connection = self._connect()
        try:
            row = connection.execute(self._sql["count"]).fetchone()
        except errors.UndefinedTable:
            return 0
        except psycopg.Error as error:
            raise self._failed("count failed", error) from None
        return int(row[0]) if row else 0

    def reset(self) -> None:
        """Drop the table, forget this consumer's positions and recreate the table, in one transaction."""
        connection = self._connect()
        try:
            with connection.transaction():
                self._lock(connection)
                connection.execute(f"DROP TABLE IF EXISTS {self._qualified}")
                self._create_missing(connection)
                connection.execute(self._sql["forget_positions"], (self._consumer,))
                self._forget_state(connection)
        except psycopg.Error as error:
            raise self._failed("reset failed", error) from None

    def _forget_state(self, connection: psycopg.Connection[Any]) -> None:
        """Forget what else a reset store must not remember (an ordered store: its markers)."""
