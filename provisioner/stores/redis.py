"""The Redis store: a data product's rows as hashes or JSON strings, with fenced positions.

Opened by `provisioner.stores.registry.open_store`; driven by the consumer loop through the
`Store` protocol. `prepare` turns a batch into one flat list of strings per key (pure, so its cost
is measurable and a value that cannot be written is rejected before any I/O); `apply` sends the
whole batch as one JSON argument of one server-side script, which compares the positions (the
fence), writes every key and sets the new positions in one atomic step (spec.md, "Stores").
Works with Redis 6.2 and later; no module is needed (`json` is a SET of a JSON string).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

import redis
from redis.exceptions import NoScriptError, RedisError

from provisioner.pipeline.encoding import Unencodable, encode_value, to_json
from provisioner.pipeline.ops import Change, DeadLetter, KeyPart, Upsert, render_key
from provisioner.pipeline.ordering import newest_per_key, order_text
from provisioner.spec.durations import parse_duration
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.spec.names import ORDER_COLUMN
from provisioner.stores.base import (
    OrderedWrites,
    PositionConflict,
    Rejected,
    Stale,
    StoreError,
    VersionFence,
    VersionMoved,
    mask_url,
)
from provisioner.stores.redis_connect import client, failure

# Positions live in one key per (consumer group, topic, partition), listed in an index set; every
# such key starts with the byte 0xFF. Data keys are keyPrefix + rendered key, both UTF-8 text, and
# 0xFF never occurs in UTF-8, so no prefix (even an empty one) and no key can ever produce, match or
# overwrite a positions key. One key per partition lets replicas that own different partitions
# commit side by side: each batch compares and moves only its own partitions' keys.
POSITIONS_KEY_PREFIX: Final = b"\xffprovisioner:positions:"
# The version record of a consumer group (a hash, `stores/versions.py`), under the same 0xFF namespace.
VERSIONS_KEY_PREFIX: Final = b"\xffprovisioner:versions:"
# `spec.order`: the order value last applied to a data key (or a delete's marker) lives under this
# prefix followed by the data key itself, so a shadow's markers follow its keys through a switch.
ORDER_KEY_PREFIX: Final = b"\xffprovisioner:order:"
# With the hash structure: the field of an upserted row holding its order value, and the keys under
# which each key prefix keeps its order horizon and that horizon's seed (see ORDERED_APPLY_SCRIPT).
ORDER_FIELD: Final = ORDER_COLUMN
ORDER_HORIZON_PREFIX: Final = b"\xffprovisioner:order-horizon:"
ORDER_SEED_PREFIX: Final = b"\xffprovisioner:order-seed:"
# The first bytes of a shadow version's keys (U+FFFF in UTF-8; see stores/versions.py).
SHADOW_MARK: Final = "\uffff".encode()
_SCAN_COUNT = 1000
_UNLINK_CHUNK = 500

# The batch, applied atomically (a script runs alone on the server, so it needs no WATCH):
#   KEYS: the position key of each partition of the batch, then the index of partitions, then the
#   version record;
#   ARGV[1] the structure (hash or json), ARGV[2] the TTL in ms ('' none), ARGV[3] the writes as one
#   JSON array of [key, field, value, ...] (hash) or [key, document] (json), [key] alone deleting;
#   ARGV[4] the version fence, `fingerprint:generation` ('' none); then per partition, in KEYS
#   order: the position the batch starts from ('' none), the one it ends at ('' unchanged) and the
#   partition number.
# If the version record names another version, or a stored position differs from the start, nothing
# is written and the reply says which. (A switch rewrites the record in its own script, so a batch
# runs wholly before it or is refused after it.)
# Like MULTI/EXEC, a write the server refuses (a key of another type) does not stop the others, the
# positions still move, and the first error is the reply.
_FENCE_LUA: Final = """
local n = #KEYS - 2
if ARGV[4] ~= '' then
  local v = redis.call('HMGET', KEYS[n + 2], 'fingerprint', 'generation')
  local found = (v[1] or '') .. ':' .. (v[2] or '0')
  if found ~= ARGV[4] then return {'version', found} end
end
for i = 1, n do
  local stored = redis.call('GET', KEYS[i])
  if not stored then stored = '' end
  if stored ~= ARGV[3 * i + 2] then
    return {'conflict', ARGV[3 * i + 4], stored, ARGV[3 * i + 2]}
  end
end
local writes = cjson.decode(ARGV[3])
local ttl = ARGV[2]
local failed = nil
local function check(reply)
  if type(reply) == 'table' and reply.err and not failed then failed = reply.err end
end
"""
_POSITIONS_LUA: Final = """
for i = 1, n do
  local final = ARGV[3 * i + 3]
  if final ~= '' then
    redis.call('SET', KEYS[i], final)
    redis.call('SADD', KEYS[n + 1], ARGV[3 * i + 4])
  end
end
if failed then return redis.error_reply(failed) end
"""
APPLY_SCRIPT: Final = _FENCE_LUA + """
if ARGV[1] == 'hash' then
  for _, w in ipairs(writes) do
    check(redis.pcall('DEL', w[1]))
    if #w > 1 then
      check(redis.pcall('HSET', unpack(w)))
      if ttl ~= '' then check(redis.pcall('PEXPIRE', w[1], ttl)) end
    end
  end
else
  for _, w in ipairs(writes) do
    if #w > 1 then
      if ttl ~= '' then check(redis.pcall('SET', w[1], w[2], 'PX', ttl))
      else check(redis.pcall('SET', w[1], w[2])) end
    else
      check(redis.pcall('DEL', w[1]))
    end
  end
end
""" + _POSITIONS_LUA + """
return 'OK'
"""
# With `spec.order`: each write is [key, order, expiry, ...] (the rest as above: hash fields, a JSON
# document, or nothing), `order` the fixed-width text of the op's order value (compared as a
# string: exact, where Lua numbers are doubles) and `expiry` '' for an upsert or, for a delete, the
# Unix time in ms its marker expires at. ARGV[#ARGV] is the 0xFF order namespace (a key's marker is
# it followed by the data key), ARGV[#ARGV - 1] the name of the store's order horizon and
# ARGV[#ARGV - 2] that of its seed. An op older than the key's order value is skipped (stale); the
# reply counts the stale upserts and deletes.
# Where a key's order value lives:
# - hash: an upserted row's in the row itself, the field ORDER_FIELD, so it is written by the HSET
#   and expires with the row at no cost of its own; a delete's in a marker, the order namespace
#   followed by the data key, expiring when the marker does. The horizon bounds every marker's order
#   value (the highest a delete ever left), so a marker can only be newer than an op below it: ops
#   at or above the horizon (the usual case, orders rising with the stream) skip the marker lookup.
#   Without a horizon every op reads its marker, and applied deletes raise the seed instead, until
#   `ensure_schema` sets the horizon (HORIZON_SCRIPT): at once for a store without positions, else
#   from a scan of the markers (which also finds the order values a store kept beside its rows
#   before they were a field) and the seed, which holds what was written during that scan.
# - json: the document is the user's, so every key's order value is in the order namespace: an
#   applied upsert sets it with the row's TTL, an applied delete with the marker's expiry.
# What it costs the server (instructions per record, measured with bench/order_server_cost.py):
# every command a script calls has a cost of its own, well above that of one more key in a command,
# and so has writing it to the append-only file. So per 500 writes markers are read with one MGET,
# the applied deletes and replaced hashes are deleted with one DEL (the batch's keys are distinct,
# so deleting them all before writing any is the same as deleting each just before its write), and
# json's order values written with one MSET. With a TTL, a row (and json's order value) expires at
# one instant, PEXPIREAT the script's start (TIME) + TTL: the AOF takes PEXPIREAT as it is, where
# it rewrites each PEXPIRE into one. Calls on our own 0xFF keys (of no other type) cannot fail and
# use redis.call; calls on data keys (a key of another type) and expiries (out of range) are checked.
# TIME is allowed before writes because scripts replicate their effects
# (redis.replicate_commands: the default since Redis 5, the only mode since 7).
ORDERED_APPLY_SCRIPT: Final = "redis.replicate_commands()\n" + _FENCE_LUA + """
local markers = ARGV[#ARGV]
local hash = ARGV[1] == 'hash'
local call, try = redis.call, redis.pcall
local at = ''
if ttl ~= '' then
  local now = call('TIME')
  at = string.format('%d', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ttl))
end
local horizon, raised, seed = nil, nil, nil
if hash then
  horizon = call('GET', ARGV[#ARGV - 1])
  if not horizon then seed = call('GET', ARGV[#ARGV - 2]) or '' end
end
local field = '""" + ORDER_FIELD + """'
local chunk = 500
local stale_upserts, stale_deletes = 0, 0
for first = 1, #writes, chunk do
  local last = math.min(first + chunk - 1, #writes)
  local previous, names, at_j, n = {}, {}, {}, 0
  for i = first, last do
    local w = writes[i]
    local j = i - first + 1
    if hash then
      local got = try('HGET', w[1], field)
      previous[j] = type(got) == 'string' and got
      if not horizon or w[2] < horizon then
        n = n + 1
        names[n] = markers .. w[1]
        at_j[n] = j
      end
    else
      n = n + 1
      names[n] = markers .. w[1]
      at_j[n] = j
    end
  end
  if n > 0 then
    local found = call('MGET', unpack(names))
    for k = 1, n do
      local v, j = found[k], at_j[k]
      if v and (not previous[j] or v > previous[j]) then previous[j] = v end
    end
  end
  local upserts, gone, values = {}, {}, {}
  local nu, ng, nv = 0, 0, 0
  for j = 1, last - first + 1 do
    local w = writes[first + j - 1]
    local before, order, expiry = previous[j], w[2], w[3]
    if before and before > order then
      if expiry == '' then stale_upserts = stale_upserts + 1 else stale_deletes = stale_deletes + 1 end
    elseif expiry ~= '' or (hash and #w == 3) then
      -- A delete, or a hash upsert of no fields, which leaves no row (as without order): the order
      -- value is kept in a marker, a delete's until its retention ends, an upsert's as its row's would be.
      ng = ng + 1
      gone[ng] = w[1]
      if expiry ~= '' then check(try('SET', markers .. w[1], order, 'PXAT', expiry))
      elseif at ~= '' then check(try('SET', markers .. w[1], order, 'PXAT', at))
      else call('SET', markers .. w[1], order) end
      if hash and order > (horizon or seed) and (not raised or order > raised) then raised = order end
    else
      nu = nu + 1
      upserts[nu] = w
      if hash then
        ng = ng + 1
        gone[ng] = w[1]
      else
        values[nv + 1] = markers .. w[1]
        values[nv + 2] = order
        nv = nv + 2
      end
    end
  end
  if ng > 0 then check(try('DEL', unpack(gone))) end
  for k = 1, nu do
    local w = upserts[k]
    local key = w[1]
    if hash then
      check(try('HSET', key, field, w[2], unpack(w, 4)))
      if at ~= '' then check(try('PEXPIREAT', key, at)) end
    elseif at ~= '' then check(try('SET', key, w[4], 'PXAT', at))
    else check(try('SET', key, w[4])) end
  end
  if nv > 0 then
    call('MSET', unpack(values))
    if at ~= '' then
      for j = 1, nv, 2 do check(try('PEXPIREAT', values[j], at)) end
    end
  end
end
if raised then call('SET', horizon and ARGV[#ARGV - 1] or ARGV[#ARGV - 2], raised) end
""" + _POSITIONS_LUA + """
return {'stale', stale_upserts, stale_deletes}
"""
# KEYS: the horizon, its seed, the index of the store's partitions; ARGV[1]: '' to set the horizon
# of a store without positions (it can have no markers of its own: they are written with positions)
# or the highest order value a scan of its markers found, 'scan' to ask for one.
HORIZON_SCRIPT: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 'set' end
local seed = redis.call('GET', KEYS[2]) or ''
local found = ARGV[1]
if found == 'scan' then
  if redis.call('EXISTS', KEYS[3]) == 1 or seed ~= '' then return 'scan' end
  found = ''
end
if seed > found then found = seed end
redis.call('SET', KEYS[1], found)
redis.call('DEL', KEYS[2])
return 'set'
"""
ORDERED_APPLY_SCRIPT_SHA: Final = hashlib.sha1(ORDERED_APPLY_SCRIPT.encode()).hexdigest()  # noqa: S324
APPLY_SCRIPT_SHA: Final = hashlib.sha1(APPLY_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis names scripts so
_encode_writes = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode


def chunks(keys: Iterator[bytes]) -> Iterator[list[bytes]]:
    """`keys` in lists of at most _UNLINK_CHUNK, for UNLINK calls of a bounded size."""
    chunk: list[bytes] = []
    for key in keys:
        chunk.append(key)
        if len(chunk) >= _UNLINK_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def glob_escape(prefix: bytes) -> bytes:
    """`prefix` as a literal in a SCAN MATCH pattern (a prefix may contain *, ?, [ or \\)."""
    out = bytearray()
    for byte in prefix:
        if byte in b"*?[]\\":
            out += b"\\"
        out.append(byte)
    return bytes(out)


# One prepared key write: [key, field, value, ...] (hash: the whole hash, none = deleted),
# [key, document] (json) or [key] (deleted). Lists of str: the batch goes to the server as JSON.
RedisWrite = list[str]


class _Unwritable(ValueError):
    pass


def _utf8(text: str, what: str) -> str:
    """`text`, checked to be valid UTF-8 (no lone surrogate)."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise _Unwritable(f"{what} contains a lone surrogate, not valid UTF-8") from None
    return text


class RedisStore:
    """A `Store` over one Redis database for one (product, store) pair."""

    def __init__(self, product: DataProduct, store: StoreSpec, url: str, *, timeout: float = 10.0,
                 fence: VersionFence | None = None, shared: redis.Redis | None = None) -> None:
        """`shared`: a client for `url` to use instead of opening one, and never to close (a
        caller reading many stores of one server, e.g. the operator's status reads)."""
        assert store.redis is not None, "RedisStore needs a redis store spec"
        self._url = url
        self._timeout = timeout
        self._prefix = product.key_prefix(store).encode("utf-8")
        self._structure = store.redis.structure
        self._fields = tuple(product.fields)
        self._prefix_text = product.key_prefix(store)
        ttl = parse_duration(store.redis.ttl) if store.redis.ttl else None
        millis = round(ttl.total_seconds() * 1000) if ttl is not None else 0
        # Sub-millisecond TTLs round up to 1 ms; a zero TTL means no expiry (PX 0 is an error).
        positive = ttl is not None and ttl.total_seconds() > 0
        self._ttl = str(max(1, millis)) if positive else ""
        topic = product.spec.source.topic
        self.positions_key = POSITIONS_KEY_PREFIX + f"{product.consumer_group(store)}:{topic}".encode()
        self._partitions_key = self.positions_key + b":partitions"
        self._version_key = VERSIONS_KEY_PREFIX + product.consumer_group(store).encode()
        self._fence = b"" if fence is None else fence.text.encode()
        self._ordered = product.spec.order is not None
        self._horizon_key = ORDER_HORIZON_PREFIX + self._prefix
        self._seed_key = ORDER_SEED_PREFIX + self._prefix
        retention = parse_duration(product.spec.order_retention)
        self._retention_ms = round(retention.total_seconds() * 1000)
        self._shared = shared
        self._client: redis.Redis | None = shared

    # -- connection -------------------------------------------------------------------------

    def _connect(self) -> redis.Redis:
        if self._client is None:
            self._client = client(self._url, timeout=self._timeout)
        return self._client

    def _error(self, doing: str, error: BaseException) -> StoreError:
        return failure(self._url, doing, error)

    def _drop_client(self) -> None:
        if self._client is not None and self._client is not self._shared:
            self._client.close()
        self._client = None

    def close(self) -> None:
        self._drop_client()

    # -- protocol ---------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Nothing to create in Redis; checks the server answers so a bad URL fails early, and
        gives an ordered hash store its horizon (see ORDERED_APPLY_SCRIPT)."""
        try:
            client = self._connect()
            client.ping()
            if self._ordered and self._structure == "hash":
                self._set_horizon(client)
        except RedisError as error:
            self._drop_client()
            raise self._error("ping failed", error) from None

    def _set_horizon(self, client: redis.Redis) -> None:
        """The horizon at once when the store has no positions; else the highest order value of a
        scan of its markers (SCAN, so the server serves others between steps), merged with the
        seed that batches applied meanwhile raised."""
        keys = (self._horizon_key, self._seed_key, self._partitions_key)
        if client.eval(HORIZON_SCRIPT, 3, *keys, "scan") != b"scan":
            return
        found = b""
        pattern = glob_escape(ORDER_KEY_PREFIX + self._prefix) + b"*"
        for names in chunks(client.scan_iter(match=pattern, count=_SCAN_COUNT)):
            found = max([found, *(v for v in client.mget(names) if isinstance(v, bytes))])
        client.eval(HORIZON_SCRIPT, 3, *keys, found)

    def prepare(self, changes: Sequence[Change]) -> tuple[list[Any], list[Rejected]]:
        if self._ordered:
            return self._prepare_ordered(changes)
        return self._prepare(changes)

    def _prepare_ordered(self, changes: Sequence[Change]) -> tuple[list[Any], list[Rejected]]:
        """The newest change per key (`newest_per_key`), written as `ORDERED_APPLY_SCRIPT` takes it."""
        newest, stale_upserts, stale_deletes = newest_per_key(changes)
        plain, rejected = self._prepare(newest)
        if rejected:
            refused = {id(r.change) for r in rejected}
            newest = [change for change in newest if id(change) not in refused]
        # One write per change of `newest`, in its order: their keys are distinct rendered keys.
        retention = self._retention_ms
        for change, write in zip(newest, plain, strict=True):
            op = change.op
            write[1:1] = (order_text(op.order), "" if type(op) is Upsert else str(change.timestamp_ms + retention))  # type: ignore[arg-type]
        writes = OrderedWrites(plain)
        writes.stale = Stale(stale_upserts, stale_deletes)
        return writes, rejected

    def _prepare(self, changes: Sequence[Change]) -> tuple[list[Any], list[Rejected]]:
        # The last op per key wins within a batch (each op replaces the whole key), so one write
        # per key is both faster and the same result as applying every change in order. Keys are
        # distinct, so the order of the writes does not change the result.
        writes: dict[str, RedisWrite] = {}
        rejected: list[Rejected] = []
        if self._structure != "hash":
            for change in changes:
                try:
                    whole = self._write(change)
                except _Unwritable as error:
                    rejected.append(Rejected(change, DeadLetter("store", str(error))))
                    continue
                writes[whole[0]] = whole
            return list(writes.values()), rejected
        # The hash structure, inlined: this loop runs for every row of every batch. Values are
        # encoded by a shortcut for str, int and finite float and by `encode_value` otherwise (the
        # property test in tests/unit/test_encoding.py holds the two to the same text). Anything
        # unusual (text that is not valid UTF-8) goes through `_write`, which says what is wrong.
        prefix = self._prefix_text
        fields = self._fields
        isfinite = math.isfinite
        for change in changes:
            op = change.op
            parts = op.key
            key = prefix + parts[0] if len(parts) == 1 and type(parts[0]) is str else prefix + render_key(parts)
            if type(op) is not Upsert and key.isascii():
                writes[key] = [key]
                continue
            ascii_only = key.isascii()
            write: RedisWrite = [key]
            row = op.row if type(op) is Upsert else {}
            for name in fields:
                value = row.get(name)
                text: str
                kind = type(value)
                if kind is str:
                    text = value  # type: ignore[assignment]
                    if ascii_only and not text.isascii():
                        ascii_only = False
                elif value is None:
                    continue
                elif kind is int:
                    text = str(value)
                elif kind is float and isfinite(value):
                    text = repr(value)  # what json.dumps writes for a finite float
                else:
                    try:
                        encoded = encode_value(value)
                    except Unencodable:
                        ascii_only = False  # `_write` refuses the row, naming the field
                        break
                    if encoded is None:
                        continue
                    text = encoded
                    ascii_only = ascii_only and text.isascii()
                write.append(name)
                write.append(text)
            if not ascii_only:
                try:
                    write = self._write(change)
                except _Unwritable as error:
                    rejected.append(Rejected(change, DeadLetter("store", str(error))))
                    continue
            writes[key] = write
        return list(writes.values()), rejected

    def _write(self, change: Change) -> RedisWrite:
        """One key's write, every text checked (the general path; the hash loop above inlines it)."""
        op = change.op
        key = self._prefix_text + _utf8(render_key(op.key), "the key")
        if not isinstance(op, Upsert):
            return [key]
        row = op.row
        if self._structure == "json":
            document = {name: row.get(name) for name in self._fields}
            try:
                text = to_json(document, allow_nan=False)
            except Unencodable as error:
                raise _Unwritable(str(error)) from None
            except ValueError:
                raise _Unwritable("a field is NaN or infinity, which JSON cannot represent") from None
            return [key, _utf8(text, "the row")]
        write: RedisWrite = [key]
        for name in self._fields:
            try:
                encoded = encode_value(row.get(name))
            except Unencodable as error:
                raise _Unwritable(f"field {name!r}: {error}") from None
            if encoded is not None:
                write.append(_utf8(name, "a field name"))
                write.append(_utf8(encoded, f"field {name!r}"))
        return write

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
    ) -> Stale | None:
        client = self._connect()
        pool = client.connection_pool
        try:
            connection: Any = pool.get_connection()
        except RedisError as error:
            self._drop_client()
            raise self._error("cannot connect", error) from None
        healthy = False
        try:
            stale = self._apply_on(connection, prepared, start, end)
            healthy = True
            return stale
        except (PositionConflict, VersionMoved):
            healthy = True
            raise
        except (RedisError, OSError) as error:
            raise self._error("applying a batch failed", error) from None
        finally:
            if not healthy:
                # A reply may be pending (the script may still be running): the connection is
                # unusable; the script itself is atomic, so it has either run whole or not at all.
                connection.disconnect()
            pool.release(connection)

    def _apply_on(
        self,
        connection: Any,
        prepared: Sequence[Any],
        start: Mapping[int, int | None],
        end: Mapping[int, int],
    ) -> Stale | None:
        partitions = sorted({*start, *end})
        if not partitions:
            return None
        keys = [self.partition_key(p) for p in partitions]
        keys.append(self._partitions_key)
        keys.append(self._version_key)
        args: list[Any] = [self._structure, self._ttl, _encode_writes(prepared), self._fence]
        for partition in partitions:
            begin = start.get(partition)
            final = end.get(partition)
            args += ["" if begin is None else b"%d" % begin, "" if final is None else b"%d" % final,
                     b"%d" % partition]
        script, sha = APPLY_SCRIPT, APPLY_SCRIPT_SHA
        if self._ordered:
            script, sha = ORDERED_APPLY_SCRIPT, ORDERED_APPLY_SCRIPT_SHA
            args += (self._seed_key, self._horizon_key, ORDER_KEY_PREFIX)
        connection.send_command("EVALSHA", sha, len(keys), *keys, *args)
        try:
            reply = connection.read_response()
        except NoScriptError:
            # A restarted or flushed server forgot the script: EVAL sends it (and caches it again).
            connection.send_command("EVAL", script, len(keys), *keys, *args)
            reply = connection.read_response()
        if isinstance(reply, list) and reply and reply[0] == b"version":
            found = reply[1].decode()[:8] or "none"
            raise VersionMoved(f"redis {mask_url(self._url)}: the store's version is {found}, "
                               f"not {self._fence.decode()[:8]}: this spec no longer writes it")
        if isinstance(reply, list) and reply and reply[0] == b"conflict":
            _, partition, stored, began = (item.decode() for item in reply)
            raise PositionConflict(
                f"partition {partition}: the store is at {stored or None}, the batch started from {began or None}"
            )
        if isinstance(reply, list) and reply and reply[0] == b"stale":
            within: Stale = getattr(prepared, "stale", Stale())
            return Stale(within.upserts + int(reply[1]), within.deletes + int(reply[2]))
        return None

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
                row.update(self._hash_row(value))
            rows.append(row)
        return rows

    def read_row(self, key: tuple[KeyPart, ...]) -> dict[str, Any] | None:
        """The row stored under `key` as the store holds it (hash fields as text, a JSON document
        decoded; an ordered hash's order field aside), or None when there is none; for `provisioner explain`."""
        name = (self._prefix_text + render_key(key)).encode("utf-8", "surrogatepass")
        try:
            client = self._connect()
            value: Any = client.get(name) if self._structure == "json" else client.hgetall(name)
        except RedisError as error:
            self._drop_client()
            raise self._error("read failed", error) from None
        if not value:
            return None
        if self._structure == "json":
            try:
                document = json.loads(value)
            except ValueError:
                return {"_raw": value.decode("utf-8", "replace")}
            return document if isinstance(document, dict) else {"_raw": document}
        return self._hash_row(value)

    def _hash_row(self, value: Mapping[bytes, bytes]) -> dict[str, Any]:
        """A stored hash as text, without an ordered row's order field (the store's, not the spec's:
        fixed-width text only the script compares)."""
        row = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in value.items()}
        if self._ordered:
            row.pop(ORDER_FIELD, None)
        return row

    def holds_row(self, key: tuple[KeyPart, ...], row: Mapping[str, Any] | None) -> bool:
        """Whether the store holds exactly what writing `row` under `key` leaves (None: no row),
        compared in the store's own representation (the text `prepare` writes)."""
        stored = self.read_row(key)
        if row is None or stored is None:
            return row is None and stored is None
        prepared, rejected = self._prepare([Change(0, 0, 0, Upsert(key, row))])
        if rejected or not prepared:
            return False
        (write,) = prepared
        if self._structure == "json":
            return bool(json.loads(write[1]) == stored)
        return dict(zip(write[1::2], write[2::2], strict=True)) == stored

    def _scan(self) -> Iterator[bytes]:
        """Every data key under the prefix (never a positions key, even with an empty prefix)."""
        pattern = glob_escape(self._prefix) + b"*"
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
            for keys in chunks(self._scan()):
                client.unlink(*keys)
            self._unlink_markers(client)
        except RedisError as error:
            self._drop_client()
            raise self._error("reset failed", error) from None

    def _unlink_markers(self, client: redis.Redis) -> None:
        """Delete the order horizon, order values and delete markers of this store's keys (`spec.order`)."""
        client.unlink(self._horizon_key, self._seed_key)
        markers = ORDER_KEY_PREFIX + self._prefix
        pattern = glob_escape(markers) + b"*"
        # Under an empty prefix, a shadow's markers (U+FFFF after the namespace) are not ours.
        theirs = markers + SHADOW_MARK if not self._prefix.startswith(SHADOW_MARK) else None
        found = client.scan_iter(match=pattern, count=_SCAN_COUNT)
        for keys in chunks(k for k in found if theirs is None or not k.startswith(theirs)):
            client.unlink(*keys)
