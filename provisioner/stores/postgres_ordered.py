"""The Postgres store of a product with `spec.order`: an op applies only when it is not older than
its key's last applied one, decided inside the batch's transaction (with the positions).

Where the order values live:

- upsert mode: each row's in the hidden `_provisioner_order` column (numeric: an int, or a
  timestamp in ns since the epoch); a delete's in the schema's `_provisioner_order_markers` table
  (consumer group, key text, order, expiry = the delete record's timestamp + `orderRetention`).
  The batch (one op per key already, the newest: `newest_per_key`) is COPYed into the session's
  temp table, then, set-based: one `INSERT ... SELECT ... WHERE NOT EXISTS (a newer marker) ON
  CONFLICT DO UPDATE ... WHERE t._provisioner_order <= EXCLUDED._provisioner_order` applies the
  upserts not older than either; deletes older than their row or than an unexpired marker of
  their key leave the batch, the remaining deletes delete and leave markers. The markers are
  probed inside those statements, by their primary key, one probe per batch row: looking the
  batch's keys up from the client first cost more to plan (`key = ANY(5,000 keys)`) than to run.
  An op at or above its group's horizon (`_provisioner_order_horizon`, at least every marker's
  order, kept by a trigger on the markers) skips the probe: with orders that grow over time, every
  op but those of a lagging partition. The statement counts give the stale ops. The trigger costs
  append mode, which writes a marker per key, ~480 server instructions per record (59,400 / 58,900).
  What `order` costs the server (bench/order_server_cost.py, the orders example in batches of
  5,000, instructions per record): 35,200 without it; with `record.offset` 49,600 before the
  horizon, 38,800 now (`timestamp(event.ts)` 50,100, 39,300), of which the probes that remain, the
  order value's column and the markers of the deletes.
- append mode: every op is appended, with `_provisioner_order` and `_stale`; the markers table
  holds every key's last applied order (a delete's with its expiry), read for the batch's keys and
  written back in the same transaction, so `_stale` is exact across batches.

Expired markers are ignored at once and deleted by a sweep in a batch's transaction at most every
`SWEEP_SECONDS`. A rebuild's shadow has its own consumer group, hence its own markers; the switch
moves them to the live group with the positions (`stores/versions.py`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

import psycopg

from provisioner.pipeline.ops import Change, DeadLetter, Upsert
from provisioner.pipeline.ordering import ORDER_MIN, newest_per_key
from provisioner.spec.durations import parse_duration
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.spec.names import (
    ORDER_COLUMN,
    ORDER_HORIZON_TABLE,
    ORDER_MARKERS_TABLE,
    STALE_COLUMN,
    quote_identifier,
)
from provisioner.stores.base import OrderedWrites, Rejected, Stale, VersionFence
from provisioner.stores.convert import ConversionError, timestamp_text
from provisioner.stores.postgres import _BATCH_TABLE, _DELETE_FLAG, PostgresStore, _Column, _identity

SWEEP_SECONDS: Final = 300.0
_KEY: Final = "_provisioner_key"
_EXPIRES: Final = "_provisioner_expires"


def create_markers_sql(schema: str) -> str:
    """The schema's markers table (shared by its products, like the positions table). Its text
    columns compare by bytes (COLLATE "C"): each probe of its primary key compares ~10 keys, and
    under the cluster's locale each comparison went through strcoll (1,800 fewer server
    instructions per record of the --order bench). A table made before keeps its collation."""
    table = f"{quote_identifier(schema)}.{quote_identifier(ORDER_MARKERS_TABLE)}"
    return (f'CREATE TABLE IF NOT EXISTS {table} (consumer text COLLATE "C" NOT NULL, key text COLLATE "C" NOT NULL, '
            '"order" numeric NOT NULL, expires timestamptz, PRIMARY KEY (consumer, key))')


def horizon_sql(schema: str) -> dict[str, str]:
    """The horizon of the schema's markers: per consumer group, an order value at least that of
    every marker the group has (written, moved in; expired and swept ones may stay counted). A
    statement trigger on the markers table raises it with every marker written, whoever writes it
    (an older consumer too), so it holds whenever its row exists; no row: unknown. An op at or above
    its group's horizon cannot be older than a marker and skips the probe."""
    q = quote_identifier
    markers, horizon = f"{q(schema)}.{q(ORDER_MARKERS_TABLE)}", f"{q(schema)}.{q(ORDER_HORIZON_TABLE)}"
    function = f"{q(schema)}.{q(ORDER_HORIZON_TABLE)}"
    raise_ = (f'INSERT INTO {horizon} AS h (consumer, "order") SELECT consumer, max("order") FROM written '  # noqa: S608
              'GROUP BY consumer ON CONFLICT (consumer) DO UPDATE SET "order" = GREATEST(h."order", EXCLUDED."order")')
    return {
        "create_horizon": (f'CREATE TABLE IF NOT EXISTS {horizon} (consumer text COLLATE "C" PRIMARY KEY, '
                           '"order" numeric NOT NULL)'),
        "has_trigger": ("SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND tgname = %s"),
        "create_function": (f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS "
                            f"$$BEGIN {raise_}; RETURN NULL; END$$"),
        # One trigger per event: a trigger with transition tables takes one event only.
        **{f"create_{event}_trigger": (
            f"CREATE TRIGGER {q(f'{ORDER_HORIZON_TABLE}_{event}')} AFTER {event} ON {markers} "
            f"REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION {function}()")
           for event in ("insert", "update")},
        # Under the trigger's lock (no marker is being written): every group that has markers.
        "seed_horizon": (f'INSERT INTO {horizon} AS h (consumer, "order") SELECT consumer, max("order") '  # noqa: S608
                         f"FROM {markers} GROUP BY consumer ON CONFLICT (consumer) DO UPDATE "
                         'SET "order" = GREATEST(h."order", EXCLUDED."order")'),
        # A group without a row: its markers' highest order (one written meanwhile raises it).
        "has_horizon": f"SELECT 1 FROM {horizon} WHERE consumer = %s",  # noqa: S608
        "seed_group": (f'INSERT INTO {horizon} (consumer, "order") SELECT %s, coalesce(max("order"), %s::numeric) '  # noqa: S608
                       f"FROM {markers} WHERE consumer = %s ON CONFLICT (consumer) DO NOTHING"),
        "forget_horizon": f"DELETE FROM {horizon} WHERE consumer = %s",  # noqa: S608
    }


def _key_text(parts: Sequence[Any]) -> str:
    """A row's key as the markers table names it: its converted key values (a numeric by value)."""
    if len(parts) == 1 and type(parts[0]) is str:
        return parts[0]
    return json.dumps([str(p.normalize()) if isinstance(p, Decimal) else p for p in parts], ensure_ascii=False)


class OrderedPostgresStore(PostgresStore):
    """A `Store` over one Postgres table that applies `spec.order` (see the module docstring)."""

    def __init__(self, product: DataProduct, store: StoreSpec, url: str, *, timeout: float = 10.0,
                 fence: VersionFence | None = None) -> None:
        super().__init__(product, store, url, timeout=timeout, fence=fence)
        extra: tuple[_Column, ...] = (_Column(ORDER_COLUMN, "numeric"),)
        if self._mode == "append":
            extra += (_Column(STALE_COLUMN, "boolean"),)
        self._columns = self._columns + extra
        self._retention_ms = round(parse_duration(product.spec.order_retention).total_seconds() * 1000)
        self._last_sweep = 0.0
        # One text key column: a row's key text is that column's text.
        single = len(self._key_index) == 1 and self._key_identity[0] is _identity
        self._single_key = self._key_index[0] if single else None
        column = self._fields[self._key_index[0]] if single else None
        self._text_key = column.name if column is not None and column.type == "text" else None
        self._stale = Stale()
        self._sql = self._statements()
        self._sql.update(self._ordered_statements())

    def _ordered_statements(self) -> dict[str, str]:
        q = quote_identifier
        table, batch, flag = self._qualified, q(_BATCH_TABLE), q(_DELETE_FLAG)
        order, key, expires = q(ORDER_COLUMN), q(_KEY), q(_EXPIRES)
        # A single `text` key column holds the key text itself: the batch does not copy it twice
        # (400 fewer server instructions per record of the --order bench).
        copied = f"{order}, {expires}" if self._text_key is not None else f"{order}, {expires}, {key}"
        if self._text_key is not None:
            key = q(self._text_key)
        markers = f"{q(self._pg_schema)}.{q(ORDER_MARKERS_TABLE)}"
        fields = ", ".join(q(column.name) for column in self._fields)
        pk = ", ".join(q(name) for name in self._primary_key)
        non_key = [column.name for column in self._fields if column.name not in self._key_fields]
        sets = ", ".join([*(f"{q(name)} = EXCLUDED.{q(name)}" for name in non_key), f"{order} = EXCLUDED.{order}"])
        match = " AND ".join(f"t.{q(name)} = b.{q(name)}" for name in self._key_fields)
        batch_definitions = ", ".join(column.sql for column in self._fields)
        # A live delete marker of the batch row's key newer than it: one probe of the markers'
        # primary key per row (the parameter is the consumer group). OFFSET 0 keeps the EXISTS a
        # subplan run per row: turned into an anti-join, it was planned by the statistics of the
        # consumer column, which know nothing of a new consumer group's markers (one row, they
        # say), so the planner read them all once and tested each against every row of the batch.
        newer_marker = (f'SELECT FROM {markers} AS m WHERE m.consumer = %s AND m.key = b.{key} '
                        f'AND m."order" > b.{order} AND (m.expires IS NULL OR m.expires > now()) OFFSET 0')
        # At or above the group's horizon (an InitPlan, read once per statement), no marker can be
        # newer: no probe (each cost ~10,000 server instructions). With orders that grow over time
        # (timestamps, offsets) that is nearly every upsert, as upserts run before the batch's own
        # deletes leave their markers. Without a horizon row (NULL), every upsert probes.
        horizon = (f'SELECT h."order" FROM {q(self._pg_schema)}.{q(ORDER_HORIZON_TABLE)} AS h '  # noqa: S608
                   "WHERE h.consumer = %s")
        # Every identifier went through quote_identifier; every value is a bind parameter.
        return {
            "create_markers": create_markers_sql(self._pg_schema),
            **horizon_sql(self._pg_schema),
            # The flag first: the statements that want only the deletes then read one column of
            # each upsert, not every field before it (COPY names the columns, in its own order;
            # 390 fewer server instructions per record of the --order bench).
            "create_batch": (
                f"CREATE TEMP TABLE IF NOT EXISTS {batch} ({flag} boolean NOT NULL, {order} numeric NOT NULL, "
                f"{expires} timestamptz, {q(_KEY)} text, {batch_definitions}) ON COMMIT DELETE ROWS"
            ),
            "copy_batch": f"COPY {batch} ({fields}, {flag}, {copied}) FROM STDIN",
            # A delete older than its row, or than a live marker of its key, leaves the batch.
            # (Below the horizon only: a NULL comparison is no proof, hence the coalesce.)
            "stale_deletes": (
                f"DELETE FROM {batch} AS b WHERE b.{flag} AND (EXISTS (SELECT FROM {table} AS t "  # noqa: S608
                f"WHERE {match} AND t.{order} > b.{order}) OR (NOT coalesce(b.{order} >= ({horizon}), false) "
                f"AND EXISTS ({newer_marker})))"
            ),
            "delete": f"DELETE FROM {table} AS t USING {batch} AS b WHERE b.{flag} AND {match}",  # noqa: S608
            "mark_deletes": (
                f'INSERT INTO {markers} (consumer, key, "order", expires) '  # noqa: S608
                f"SELECT %s, b.{key}, b.{order}, b.{expires} FROM {batch} AS b WHERE b.{flag} "
                'ON CONFLICT (consumer, key) DO UPDATE SET "order" = EXCLUDED."order", expires = EXCLUDED.expires'
            ),
            # An upsert applies when not older than a live marker of its key, nor than its row.
            "upsert": (
                f"INSERT INTO {table} AS t ({fields}, {order}) SELECT {fields}, {order} FROM {batch} AS b "  # noqa: S608
                f"WHERE NOT {flag} AND (b.{order} >= ({horizon}) OR NOT EXISTS ({newer_marker})) "
                f"ON CONFLICT ({pk}) DO UPDATE SET {sets} WHERE t.{order} IS NULL OR t.{order} <= EXCLUDED.{order}"
            ),
            "read_markers": (
                f'SELECT key, "order", expires IS NULL OR expires > now() FROM {markers} '  # noqa: S608
                "WHERE consumer = %s AND key = ANY(%s)"
            ),
            "write_markers": (
                f'INSERT INTO {markers} (consumer, key, "order", expires) '  # noqa: S608
                "SELECT %s, * FROM unnest(%s::text[], %s::numeric[], %s::timestamptz[]) "
                'ON CONFLICT (consumer, key) DO UPDATE SET "order" = EXCLUDED."order", expires = EXCLUDED.expires'
            ),
            "forget_markers": f"DELETE FROM {markers} WHERE consumer = %s",  # noqa: S608
            "sweep": f"DELETE FROM {markers} WHERE consumer = %s AND expires <= now()",  # noqa: S608
        }

    def _create_missing(self, connection: psycopg.Connection[Any]) -> None:
        super()._create_missing(connection)
        sql = self._sql
        connection.execute(sql["create_markers"])
        connection.execute(sql["create_horizon"])
        markers = f"{quote_identifier(self._pg_schema)}.{quote_identifier(ORDER_MARKERS_TABLE)}"
        if connection.execute(sql["has_trigger"], (markers, f"{ORDER_HORIZON_TABLE}_insert")).fetchone() is None:
            connection.execute(sql["create_function"])
            connection.execute(sql["create_insert_trigger"])
            connection.execute(sql["create_update_trigger"])
            connection.execute(sql["seed_horizon"])
        self._seed_group(connection)

    def _seed_group(self, connection: psycopg.Connection[Any]) -> None:
        """This group's horizon row, if it has none (reading all its markers once, at start)."""
        if connection.execute(self._sql["has_horizon"], (self._consumer,)).fetchone() is None:
            connection.execute(self._sql["seed_group"], (self._consumer, str(ORDER_MIN), self._consumer))

    def _forget_state(self, connection: psycopg.Connection[Any]) -> None:
        connection.execute(self._sql["forget_markers"], (self._consumer,))
        connection.execute(self._sql["forget_horizon"], (self._consumer,))
        self._seed_group(connection)

    # -- batches ----------------------------------------------------------------------------

    def _expiry(self, change: Change) -> tuple[str | None, int | None]:
        """A delete's marker expiry, as text and in ms since the epoch: its record's timestamp (now,
        when Kafka has none) + orderRetention. None for an upsert (its order value never expires)."""
        if type(change.op) is Upsert:
            return None, None
        stamp = change.timestamp_ms if change.timestamp_ms >= 0 else round(time.time() * 1000)
        return timestamp_text(stamp + self._retention_ms), stamp + self._retention_ms

    def prepare(self, changes: Sequence[Change]) -> tuple[list[Any], list[Rejected]]:
        writes = OrderedWrites()
        rejected: list[Rejected] = []
        if self._mode == "append":
            for change in changes:
                try:
                    row = self._append_row(change)
                except ConversionError as error:
                    rejected.append(Rejected(change, DeadLetter("store", str(error))))
                    continue
                writes.append((row, self._row_key(row), change.op.order, *self._expiry(change)))
            return writes, rejected
        newest, stale_upserts, stale_deletes = newest_per_key(changes)
        plain, rejected = super().prepare(newest)
        if rejected:
            refused = {id(r.change) for r in rejected}
            newest = [change for change in newest if id(change) not in refused]
        if len(plain) != len(newest):
            # Two rendered keys name one row (1 and "1" in an integer column): merged by order.
            return self._merged(newest, stale_upserts, stale_deletes), rejected
        # The usual case: one converted row per change of `newest`, in its order.
        expiry = self._expiry
        if self._text_key is not None:
            for change, row in zip(newest, plain, strict=True):
                op = change.op
                writes.append((*row, str(op.order), None if type(op) is Upsert else expiry(change)[0]))
        else:
            for change, row in zip(newest, plain, strict=True):
                op = change.op
                writes.append((*row, str(op.order), None if type(op) is Upsert else expiry(change)[0],
                               self._row_key(row)))
        writes.stale = Stale(stale_upserts, stale_deletes)
        return writes, rejected

    def _row_key(self, row: Sequence[Any]) -> str:
        if self._single_key is not None:
            return row[self._single_key]  # type: ignore[no-any-return]
        return _key_text([same(row[i]) for same, i in zip(self._key_identity, self._key_index, strict=True)])

    def _merged(self, newest: Sequence[Change], stale_upserts: int, stale_deletes: int) -> OrderedWrites:
        """The rows of `newest` (all convertible), the newest per row where rendered keys collide."""
        by_key: dict[str, tuple[tuple[str | None, ...], int, bool]] = {}
        for change in newest:
            row = self._upsert_row(change)
            key = self._row_key(row)
            order = change.op.order
            assert order is not None
            deleting = type(change.op) is not Upsert
            held = by_key.get(key)
            if held is not None:
                older_is_new = order < held[1]
                if deleting if older_is_new else held[2]:
                    stale_deletes += 1
                else:
                    stale_upserts += 1
                if older_is_new:
                    continue
                del by_key[key]
            written = (*row, str(order), self._expiry(change)[0])
            by_key[key] = (written if self._text_key is not None else (*written, key), order, deleting)
        writes = OrderedWrites(write for write, _, _ in by_key.values())
        writes.stale = Stale(stale_upserts, stale_deletes)
        return writes

    def apply(
        self, prepared: Sequence[Any], start: Mapping[int, int | None], end: Mapping[int, int]
    ) -> Stale | None:
        self._stale = getattr(prepared, "stale", Stale())
        super().apply(prepared, start, end)
        return self._stale

    def _read_markers(self, connection: psycopg.Connection[Any], keys: list[str]) -> psycopg.Cursor[Any]:
        """The markers of `keys`: (key, order, unexpired). Planned for each batch's own keys, never
        prepared: a generic plan of `key = ANY($2)` may test every marker of the consumer against
        every key of the batch (seconds per batch once thousands of rows were deleted), where a plan
        for the actual array hashes it or looks each key up in the primary key."""
        return connection.execute(self._sql["read_markers"], (self._consumer, keys), prepare=False)

    def _write(self, connection: psycopg.Connection[Any], prepared: Sequence[Any]) -> None:
        now = time.monotonic()
        if now - self._last_sweep >= SWEEP_SECONDS:
            connection.execute(self._sql["sweep"], (self._consumer,))
            self._last_sweep = now
        if self._mode == "append":
            self._write_changelog(connection, prepared)
            return
        stale_upserts, stale_deletes = self._stale.upserts, self._stale.deletes
        upserts, flag = 0, len(self._fields)
        with connection.cursor() as cursor:
            # The batch table has no statistics: without this the planner may hash the whole table
            # for a few deletes; by its primary key, each statement costs what the batch holds.
            cursor.execute("SET LOCAL enable_hashjoin = off")
            cursor.execute("SET LOCAL enable_mergejoin = off")
            with cursor.copy(self._sql["copy_batch"]) as copy:
                for row in prepared:
                    copy.write_row(row)
                    upserts += row[flag] == "false"
            # Planned for each batch (prepare=False), never from a cached generic plan: a plan made
            # while the markers table was small might scan it whole for every row once it is not.
            # The upserts first: the batch's keys are distinct, so its deletes' markers cannot
            # concern them, and the horizon they compare with is then that of earlier batches.
            consumer = (self._consumer,)
            if upserts:
                applied = cursor.execute(self._sql["upsert"], consumer * 2, prepare=False).rowcount
                stale_upserts += upserts - applied
            if upserts < len(prepared):
                stale_deletes += cursor.execute(self._sql["stale_deletes"], consumer * 2, prepare=False).rowcount
                cursor.execute(self._sql["delete"])
                cursor.execute(self._sql["mark_deletes"], consumer)
        self._stale = Stale(stale_upserts, stale_deletes)

    def _write_changelog(self, connection: psycopg.Connection[Any], prepared: Sequence[Any]) -> None:
        """Append every op with `_stale`: older than its key's last applied op (the markers, then
        the earlier ops of the batch), and record each key's new last order."""
        keys = sorted({write[1] for write in prepared})
        rows = self._read_markers(connection, keys).fetchall()
        last: dict[str, tuple[int, bool]] = {key: (int(order), live) for key, order, live in rows}
        now_ms = time.time() * 1000
        latest: dict[str, tuple[int, str | None]] = {}
        stale_upserts = stale_deletes = 0
        with connection.cursor() as cursor, cursor.copy(self._sql["copy_append"]) as copy:
            for row, key, order, expires, expires_ms in prepared:
                held = last.get(key)
                stale = held is not None and held[1] and order < held[0]
                if stale:
                    if row[-4] == "upsert":
                        stale_upserts += 1
                    else:
                        stale_deletes += 1
                else:
                    last[key] = (order, expires_ms is None or expires_ms > now_ms)
                    latest[key] = (order, expires)
                copy.write_row((*row, str(order), "true" if stale else "false"))
        if latest:
            connection.execute(self._sql["write_markers"], (
                self._consumer, list(latest), [str(o) for o, _ in latest.values()], [e for _, e in latest.values()]))
        self._stale = Stale(stale_upserts, stale_deletes)
