"""The Redis store: a data product's rows as hashes or JSON strings, with fenced positions.

Opened by `provisioner.stores.registry.open_store`; driven by the consumer loop through the
`Store` protocol. `prepare` turns a batch into ready-to-send RESP bytes (pure, so its cost is
measurable and a value that cannot be written is rejected before any I/O); `apply` sends the whole
batch in one MULTI/EXEC, after WATCHing and comparing the positions hash (spec.md, "Stores").
Works with Redis 6.2 and later; no module is needed (`json` is a SET of a JSON string).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, NamedTuple

import redis
from redis._parsers import _HiredisParser
from redis._parsers import hiredis as _hiredis_parser
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.retry import Retry

from provisioner.pipeline.encoding import encode_value, to_json
from provisioner.pipeline.ops import Change, DeadLetter, Upsert, render_key
from provisioner.spec.durations import parse_duration
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.stores.base import PositionConflict, Rejected, StoreError, mask_url, scrub_secrets

# Positions live in one key per (consumer group, topic, partition), listed in an index set; every
# such key starts with the byte 0xFF. Data keys are keyPrefix + rendered key, both UTF-8 text, and
# 0xFF never occurs in UTF-8, so no prefix (even an empty one) and no key can ever produce, match or
# overwrite a positions key. One key per partition lets replicas that own different partitions
# commit side by side: each WATCHes only its own partitions' keys.
POSITIONS_KEY_PREFIX: Final = b"\xffprovisioner:positions:"
_MULTI: Final = b"*1\r\n$5\r\nMULTI\r\n"
_EXEC: Final = b"*1\r\n$4\r\nEXEC\r\n"
_SCAN_COUNT = 1000
_UNLINK_CHUNK = 500


def _bulk(arg: bytes) -> bytes:
    """One argument as a RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(arg), arg)


def _command(*args: bytes) -> bytes:
    """One command in RESP, the wire format (an array of bulk strings)."""
    return b"*%d\r\n" % len(args) + b"".join(_bulk(arg) for arg in args)


def _read_queued(connection: Any, count: int) -> None:
    """Read `count` status replies (+OK / +QUEUED); an error reply raises (and aborts the MULTI).

    A batch queues hundreds of thousands of commands; redis-py's `read_response` costs a few
    microseconds of Python per reply (holding the GIL the consumer's loop needs), so with the
    hiredis parser the replies are taken straight from its reader. Any other parser (or a redis-py
    whose internals differ) gets the generic loop.
    """
    parser = getattr(connection, "_parser", None)
    reader = getattr(parser, "_reader", None)
    fill = getattr(parser, "read_from_socket", None)
    pending = getattr(_hiredis_parser, "NOT_ENOUGH_DATA", None)
    if not isinstance(parser, _HiredisParser) or reader is None or fill is None or pending is None:
        for _ in range(count):
            connection.read_response()
        return
    gets = reader.gets
    while count:
        reply = gets()
        if reply is pending:  # not enough data buffered yet
            fill()
            continue
        if isinstance(reply, Exception):
            if isinstance(reply, ResponseError | RedisConnectionError):
                raise reply
            raise ResponseError(str(reply))
        count -= 1


def _glob_escape(prefix: bytes) -> bytes:
    """`prefix` as a literal in a SCAN MATCH pattern (a prefix may contain *, ?, [ or \\)."""
    out = bytearray()
    for byte in prefix:
        if byte in b"*?[]\\":
            out += b"\\"
        out.append(byte)
    return bytes(out)


class RedisWrite(NamedTuple):
    """One prepared key write: the RESP commands that leave `key` in its final state for the batch.

    A named tuple (not a dataclass): one is built per key of every batch, and a tuple is cheaper.
    """

    key: bytes
    commands: bytes
    commands_count: int


class _Unwritable(ValueError):
    pass


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise _Unwritable(f"{what} contains a lone surrogate, not valid UTF-8") from None


class RedisStore:
    """A `Store` over one Redis database for one (product, store) pair."""

    def __init__(self, product: DataProduct, store: StoreSpec, url: str, *, timeout: float = 10.0) -> None:
        assert store.redis is not None, "RedisStore needs a redis store spec"
        self._url = url
        self._timeout = timeout
        self._prefix = product.key_prefix(store).encode("utf-8")
        self._structure = store.redis.structure
        self._fields = tuple(product.fields)
        self._field_bulks = tuple((name, _bulk(name.encode("utf-8"))) for name in self._fields)
        ttl = parse_duration(store.redis.ttl) if store.redis.ttl else None
        millis = round(ttl.total_seconds() * 1000) if ttl is not None else 0
        # Sub-millisecond TTLs round up to 1 ms; a zero TTL means no expiry (PX 0 is an error).
        positive = ttl is not None and ttl.total_seconds() > 0
        self._ttl_bulk = _bulk(b"%d" % max(1, millis)) if positive else None
        topic = product.spec.source.topic
        self.positions_key = POSITIONS_KEY_PREFIX + f"{product.consumer_group(store)}:{topic}".encode()
        self._partitions_key = self.positions_key + b":partitions"
        self._client: redis.Redis | None = None

    # -- connection -------------------------------------------------------------------------

    def _connect(self) -> redis.Redis:
        if self._client is None:
            try:
                self._client = redis.Redis.from_url(
                    self._url,
                    socket_timeout=self._timeout,
                    socket_connect_timeout=self._timeout,
                    # The consumer retries with backoff; a hidden retry here would only delay that.
                    retry=Retry(NoBackoff(), 0),
                )
            except (ValueError, RedisError) as error:
                raise self._error("cannot open", error) from None
        return self._client

    def _error(self, doing: str, error: BaseException) -> StoreError:
        message = scrub_secrets(str(error) or type(error).__name__, self._url)
        return StoreError(f"redis {mask_url(self._url)}: {doing}: {message}")

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def close(self) -> None:
        self._drop_client()

    # -- protocol ---------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Nothing to create in Redis; checks the server answers so a bad URL fails early."""
        try:
            self._connect().ping()
        except RedisError as error:
            self._drop_client()
            raise self._error("ping failed", error) from None

    def prepare(self, changes: Sequence[Change]) -> tuple[list[Any], list[Rejected]]:
        # The last op per key wins within a batch (each op replaces the whole key), so one write
        # per key is both faster and the same result as applying every change in order. Keys are
        # distinct, so the order of the writes in the MULTI does not change the result.
        writes: dict[bytes, RedisWrite] = {}
        rejected: list[Rejected] = []
        if self._structure != "hash":
            for change in changes:
                try:
                    write = self._write(change)
                except _Unwritable as error:
                    rejected.append(Rejected(change, DeadLetter("store", str(error))))
                    continue
                writes[write.key] = write
            return list(writes.values()), rejected
        # The hash structure, inlined: this loop runs for every row of every batch. Values are
        # encoded by a shortcut for str, int and finite float and by `encode_value` otherwise (the
        # property test in tests/unit/test_encoding.py holds the two to the same text). Anything
        # unusual (a value that is not UTF-8) goes through `_write`, which says what is wrong.
        prefix = self._prefix
        field_bulks = self._field_bulks
        ttl_bulk = self._ttl_bulk
        isfinite = math.isfinite
        for change in changes:
            op = change.op
            parts = op.key
            try:
                if len(parts) == 1 and type(parts[0]) is str:
                    key = prefix + parts[0].encode("utf-8")
                else:
                    key = prefix + render_key(parts).encode("utf-8")
                key_bulk = b"$%d\r\n%s\r\n" % (len(key), key)
                if type(op) is not Upsert:
                    writes[key] = RedisWrite(key, b"*2\r\n$3\r\nDEL\r\n" + key_bulk, 1)
                    continue
                row = op.row
                pairs: list[bytes] = []
                for name, name_bulk in field_bulks:
                    value = row.get(name)
                    text: str
                    kind = type(value)
                    if kind is str:
                        text = value  # type: ignore[assignment]
                    elif value is None:
                        continue
                    elif kind is int:
                        text = str(value)
                    elif kind is float and isfinite(value):
                        text = repr(value)  # what json.dumps writes for a finite float
                    else:
                        encoded = encode_value(value)
                        if encoded is None:
                            continue
                        text = encoded
                    data = text.encode("utf-8")
                    pairs.append(name_bulk)
                    pairs.append(b"$%d\r\n%s\r\n" % (len(data), data))
            except UnicodeEncodeError:
                try:
                    write = self._write(change)
                except _Unwritable as error:
                    rejected.append(Rejected(change, DeadLetter("store", str(error))))
                    continue
                writes[write.key] = write  # pragma: no cover - _write refuses what failed here
                continue
            # The whole hash is replaced: DEL first so fields that became null disappear.
            if not pairs:
                writes[key] = RedisWrite(key, b"*2\r\n$3\r\nDEL\r\n" + key_bulk, 1)
                continue
            commands = b"*2\r\n$3\r\nDEL\r\n%s*%d\r\n$4\r\nHSET\r\n%s%s" % (
                key_bulk, len(pairs) + 2, key_bulk, b"".join(pairs))
            if ttl_bulk is None:
                writes[key] = RedisWrite(key, commands, 2)
            else:
                writes[key] = RedisWrite(key, commands + b"*3\r\n$7\r\nPEXPIRE\r\n" + key_bulk + ttl_bulk, 3)
        return list(writes.values()), rejected

    def _write(self, change: Change) -> RedisWrite:
        # Builds RESP by hand (the key's bulk string once, field names precomputed): this loop
        # runs for every row, and redis-py's generic command packing would triple its cost.
        op = change.op
        key = self._prefix + _utf8(render_key(op.key), "the key")
        key_bulk = _bulk(key)
        if not isinstance(op, Upsert):
            return RedisWrite(key, b"*2\r\n$3\r\nDEL\r\n" + key_bulk, 1)
        row = op.row
        if self._structure == "json":
            document = {name: row.get(name) for name in self._fields}
            try:
                text = to_json(document, allow_nan=False)
            except ValueError:
                raise _Unwritable("a field is NaN or infinity, which JSON cannot represent") from None
            value = _bulk(_utf8(text, "the row"))
            if self._ttl_bulk is None:
                return RedisWrite(key, b"*3\r\n$3\r\nSET\r\n" + key_bulk + value, 1)
            return RedisWrite(key, b"*5\r\n$3\r\nSET\r\n" + key_bulk + value + b"$2\r\nPX\r\n"
                              + self._ttl_bulk, 1)
        pairs: list[bytes] = []
        for name, name_bulk in self._field_bulks:
            encoded = encode_value(row.get(name))
            if encoded is not None:
                pairs.append(name_bulk)
                pairs.append(_bulk(_utf8(encoded, f"field {name!r}")))
        # The whole hash is replaced: DEL first so fields that became null disappear.
        commands = b"*2\r\n$3\r\nDEL\r\n" + key_bulk
        if not pairs:
            return RedisWrite(key, commands, 1)
        commands += b"*%d\r\n$4\r\nHSET\r\n%s%s" % (len(pairs) + 2, key_bulk, b"".join(pairs))
        if self._ttl_bulk is None:
            return RedisWrite(key, commands, 2)
        return RedisWrite(key, commands + b"*3\r\n$7\r\nPEXPIRE\r\n" + key_bulk + self._ttl_bulk, 3)

    def partition_key(self, partition: int) -> bytes:
        """The key holding one partition's position."""
        return self.positions_key + b":%d" % partition

    def read_positions(self) -> dict[int, int]:
        try:
            client = self._connect()
            partitions = sorted(int(p) for p in client.smembers(self._partitions_key))
            offsets = client.mget([self.partition_key(p) for p in partitions]) if partitions else []
        except RedisError as error:
            self._drop_client()
            raise self._error("reading positions failed", error) from None
        return {p: int(o) for p, o in zip(partitions, offsets, strict=True) if o is not None}

    def apply(
        self, prepared: Sequence[Any], start: Mapping[int, int | None], end: Mapping[int, int]
    ) -> None:
        client = self._connect()
        pool = client.connection_pool
        try:
            connection: Any = pool.get_connection()
        except RedisError as error:
            self._drop_client()
            raise self._error("cannot connect", error) from None
        healthy = False
        try:
            self._apply_on(connection, prepared, start, end)
            healthy = True
        except PositionConflict:
            healthy = True
            raise
        except (RedisError, OSError) as error:
            raise self._error("applying a batch failed", error) from None
        finally:
            if not healthy:
                # Unread replies may be pending: the connection is unusable, and closing it makes
                # the server discard the open MULTI.
                connection.disconnect()
            pool.release(connection)

    def _apply_on(
        self,
        connection: Any,
        prepared: Sequence[Any],
        start: Mapping[int, int | None],
        end: Mapping[int, int],
    ) -> None:
        partitions = sorted({*start, *end})
        if not partitions:
            return
        keys = [self.partition_key(p) for p in partitions]
        connection.send_command("WATCH", *keys)
        connection.read_response()
        connection.send_command("MGET", *keys)
        reply = connection.read_response()
        stored = {p: int(o) for p, o in zip(partitions, reply, strict=True) if o is not None}
        for partition in partitions:
            if stored.get(partition) != start.get(partition):
                connection.send_command("UNWATCH")
                connection.read_response()
                raise PositionConflict(
                    f"partition {partition}: the store is at {stored.get(partition)}, "
                    f"the batch started from {start.get(partition)}"
                )
        position_args: list[bytes] = []
        for partition, offset in end.items():
            position_args += [self.partition_key(partition), b"%d" % offset]
        chunks = [_MULTI]
        queued = 0
        for write in prepared:
            chunks.append(write.commands)
            queued += write.commands_count
        if position_args:
            chunks.append(_command(b"MSET", *position_args))
            chunks.append(_command(b"SADD", self._partitions_key, *(b"%d" % p for p in end)))
            queued += 2
        chunks.append(_EXEC)
        connection.send_packed_command(chunks)
        _read_queued(connection, 1 + queued)  # +OK for MULTI, then a +QUEUED per command
        results = connection.read_response()
        if results is None:
            raise PositionConflict("the positions changed between WATCH and EXEC")
        for result in results:
            if isinstance(result, Exception):
                raise result

    def inspect(self, limit: int) -> list[dict[str, Any]]:
        keys: list[bytes] = []
        for key in self._scan():
            keys.append(key)
            if len(keys) >= limit:
                break
        keys.sort()
        try:
            pipe = self._connect().pipeline(transaction=False)
            for key in keys:
                if self._structure == "json":
                    pipe.get(key)
                else:
                    pipe.hgetall(key)
            values = pipe.execute(raise_on_error=False)
        except RedisError as error:
            self._drop_client()
            raise self._error("inspect failed", error) from None
        rows: list[dict[str, Any]] = []
        for key, value in zip(keys, values, strict=True):
            if not value or isinstance(value, Exception):
                continue  # expired since the scan, or not ours (a foreign key under an empty prefix)
            row: dict[str, Any] = {"_key": key.decode("utf-8", "replace")}
            if self._structure == "json":
                try:
                    row.update(json.loads(value))
                except ValueError:
                    continue
            else:
                row.update({k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
                            for k, v in value.items()})
            rows.append(row)
        return rows

    def _scan(self) -> Iterator[bytes]:
        """Every data key under the prefix (never a positions key, even with an empty prefix)."""
        pattern = _glob_escape(self._prefix) + b"*"
        try:
            for key in self._connect().scan_iter(match=pattern, count=_SCAN_COUNT):
                if not key.startswith(b"\xff"):
                    yield key
        except RedisError as error:
            self._drop_client()
            raise self._error("scan failed", error) from None

    def count(self) -> int:
        return sum(1 for _ in self._scan())

    def reset(self) -> None:
        """Delete the positions first, then every key under the prefix (in chunks, with UNLINK).

        Positions go first so an interrupted reset leaves a store that re-reads from the start,
        never one whose positions claim data that is gone.
        """
        client = self._connect()
        try:
            partitions = client.smembers(self._partitions_key)
            client.delete(*(self.partition_key(int(p)) for p in partitions), self._partitions_key)
            chunk: list[bytes] = []
            for key in self._scan():
                chunk.append(key)
                if len(chunk) >= _UNLINK_CHUNK:
                    client.unlink(*chunk)
                    chunk = []
            if chunk:
                client.unlink(*chunk)
        except RedisError as error:
            self._drop_client()
            raise self._error("reset failed", error) from None
