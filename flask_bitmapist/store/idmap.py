"""The id map: a dense int for any user id (a UUID, a username, a 64-bit
int), allocated in Redis in order of first appearance, and the way back.

**Canonical ids.** :func:`canonical_id` turns what an app gives as a user id
into the one string that names the user in the map:

- an ``int`` (any size whose decimal form has at most 256 characters,
  negative included) and a ``str`` of ASCII decimal digits with an optional
  leading ``-`` are one user: ``"42"``, ``"042"`` and ``42`` are ``"42"``;
- a :class:`uuid.UUID` and its string spellings (any case, with or without
  hyphens, with or without braces) are one user, in the lower-case hyphenated
  form: ``"{1B4E28BA2FA111D2883F0016D3CCA427}"`` is
  ``"1b4e28ba-2fa1-11d2-883f-0016d3cca427"``; a string of 32 decimal digits
  is an int, not a UUID;
- any other ``str`` of 1 to 256 characters without control characters is
  itself, case and spaces included: ``"Alice"`` and ``"alice"`` are two
  users.

**Keys.** The map of a store with one bucket (bitmapist's layout) is three
keys: a counter, a hash from canonical id to dense id, and a hash back::

    trackist:ids:next    the number of ids allocated
    trackist:ids:fwd     canonical id -> dense id
    trackist:ids:rev     dense id -> canonical id

The map of a sharded layout (and so of a Redis Cluster) is cut into
:data:`SHARDED_BUCKETS` buckets, each three keys that share the bucket as
their hash tag, so that each bucket lives in one slot and the buckets spread
over the nodes::

    trackist:ids<buckets>{<bucket>}:next|fwd|rev

An id's bucket is the CRC-32 of its canonical form (UTF-8) modulo the number
of buckets, so every process finds it in the same bucket. Bucket ``b``
hands out the dense ids ``b``, ``b + buckets``, ``b + 2 * buckets``, ...:
its ``n``-th id (from 0) is ``n * buckets + b``. So two buckets never hand
out the same dense id, the dense id of an id is decided by one script in one
slot (get it, or take the bucket's next one and record it both ways, at
once), and the dense ids stay about as dense as with one counter. Order of
first appearance holds within a bucket. ``trackist:`` names are neither
bitmapist's ``trackist_`` keys nor the sharded layout's
``trackist<bits>{...}`` ones, so no event listing reads them.

A dense id is a bit offset, so the map hands out none above the app's
``BITMAPIST_MAX_USER_ID``: a new id that would get one is refused
(:exc:`IdMapFull`) and its marks are dropped and counted.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from ..config import DEFAULT_ID_CACHE_SIZE, MAX_USER_ID, Settings
from .backend import Script, Store, is_cluster
from .layout import KeyLayout

__all__ = [
    "ALLOCATE_SCRIPT",
    "DEFAULT_ID_CACHE_SIZE",
    "ID_PREFIX",
    "MAP_AND_SETBITS_SCRIPT",
    "MAX_ID_LENGTH",
    "RESOLVE_BATCH",
    "SHARDED_BUCKETS",
    "IdMap",
    "IdMapFull",
    "IdMapStats",
    "canonical_id",
    "id_map_of",
    "shown",
]

#: The most characters of a canonical id.
MAX_ID_LENGTH = 256
#: The buckets of a sharded layout's map: enough to spread it over the
#: masters of any cluster the package expects, few enough that a batch of
#: new ids costs one short script per bucket it touches.
SHARDED_BUCKETS = 64
#: How many dense ids one round trip turns back into ids.
RESOLVE_BATCH = 1000
ID_PREFIX = "trackist:ids"

_DECIMAL = re.compile(r"-?[0-9]+")
# A UUID already in canonical form, the usual case: taken as it is.
_CANONICAL_UUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)
_UUID = re.compile(
    r"(\{)?([0-9a-fA-F]{8})(-?)([0-9a-fA-F]{4})\3([0-9a-fA-F]{4})\3"
    r"([0-9a-fA-F]{4})\3([0-9a-fA-F]{12})(?(1)\})"
)
# Control characters (C0, DEL, C1) and lone surrogates, which UTF-8 cannot
# carry to Redis.
_REFUSED_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# 10**256 has 257 digits: ints below it in size have at most 256 characters
# with their sign. Compared before str(), which refuses ints of over 4,300
# digits.
_INT_BOUND = 10**256
# Longer values are cut in error messages.
_SHOWN_CHARACTERS = 60


def shown(value: Any) -> str:
    """``repr(value)`` for an error message, cut to its first 60 characters
    when it is long: messages end up in logs."""
    try:
        text = repr(value)
    except ValueError:
        # An int of over 4,300 digits, which repr() refuses to write.
        return f"a value of type {type(value).__name__} too long to show"
    if len(text) <= _SHOWN_CHARACTERS + 20:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, str) else ""
    return f"{text[:_SHOWN_CHARACTERS]}...{size}"


def canonical_id(value: Any) -> str:
    """The canonical form of a user id (see the module's documentation).

    :raises ValueError: for a bool, an int whose decimal form has over 256
        characters, an empty str, a str of over 256 characters or with a
        control character, and anything that is neither an int, a
        :class:`uuid.UUID` nor a str. The message says what is wrong in a
        phrase that follows "the user id ...".
    """
    if isinstance(value, str):
        # An exact str: a subclass's would not pass the writer's checks,
        # and may change how it prints.
        text: str = str.__str__(value)
        if len(text) == 36 and _CANONICAL_UUID.fullmatch(text):
            return text
        if not text:
            raise ValueError("is an empty string")
        if len(text) > MAX_ID_LENGTH:
            raise ValueError(f"has over {MAX_ID_LENGTH} characters")
        if _DECIMAL.fullmatch(text):
            return str(int(text))
        found = _UUID.fullmatch(text)
        if found:
            return "-".join(found.group(2, 4, 5, 6, 7)).lower()
        if _REFUSED_CHARACTERS.search(text):
            raise ValueError("holds a control character")
        return text
    if isinstance(value, int) and not isinstance(value, bool):
        # int(): an IntEnum member prints its name on Python 3.10.
        number = int(value)
        if not -_INT_BOUND < number < _INT_BOUND or len(str(number)) > MAX_ID_LENGTH:
            raise ValueError(f"has over {MAX_ID_LENGTH} characters in decimal")
        return str(number)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise ValueError("must be an int, a uuid.UUID or a str")


class IdMapFull(redis.ResponseError):
    """New ids would get dense ids above ``BITMAPIST_MAX_USER_ID``. A
    :exc:`redis.ResponseError` that is no outage, so the writers count and
    log the marks of those ids as refused (dropped), and do not retry them."""


# Get the dense id of ids[j] in a bucket, or take the bucket's next one and
# record it both ways. -1 when that one would pass the limit.
_ALLOCATE = """
local function allocate(counter, forward, reverse, buckets, bucket, limit, id)
    local dense = redis.call("HGET", forward, id)
    if dense then return tonumber(dense) end
    local count = tonumber(redis.call("GET", counter) or "0")
    dense = count * buckets + bucket
    if dense > limit then return -1 end
    redis.call("SET", counter, count + 1)
    redis.call("HSET", forward, id, dense)
    redis.call("HSET", reverse, dense, id)
    return dense
end
"""

#: KEYS: each bucket's counter, forward and reverse keys. ARGV: the number
#: of buckets, the largest dense id, then for each bucket its number, how
#: many ids, and the ids. Returns the dense ids, in order (-1: refused).
ALLOCATE_SCRIPT = (
    _ALLOCATE
    + """
local buckets, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local dense = {}
local at = 3
for k = 1, #KEYS, 3 do
    local bucket, count = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
    at = at + 2
    for j = 1, count do
        dense[#dense + 1] = allocate(
            KEYS[k], KEYS[k + 1], KEYS[k + 2], buckets, bucket, limit, ARGV[at])
        at = at + 1
    end
end
return dense
"""
)

#: A map of one bucket and bitmaps of one shard, in one script: the new ids'
#: dense ids, then the SETBITs of the writer's script, where an offset
#: ``#j`` is the dense id of the j-th new id (from 1). KEYS: the map's three
#: keys, then the bitmaps. ARGV: the largest dense id, how many new ids, the
#: ids, then each bitmap's offsets to set and to clear. Returns the dense
#: ids (-1: refused, and its bits left alone).
MAP_AND_SETBITS_SCRIPT = (
    _ALLOCATE
    + """
local limit, count = tonumber(ARGV[1]), tonumber(ARGV[2])
local dense = {}
for j = 1, count do
    dense[j] = allocate(KEYS[1], KEYS[2], KEYS[3], 1, 0, limit, ARGV[2 + j])
end
local function write(key, offsets, value)
    for word in string.gmatch(offsets, "%S+") do
        local offset = word
        if string.sub(word, 1, 1) == "#" then
            offset = dense[tonumber(string.sub(word, 2))]
        end
        if offset ~= -1 then redis.call("SETBIT", key, offset, value) end
    end
end
for index = 4, #KEYS do
    local at = 2 + count + 2 * (index - 4)
    write(KEYS[index], ARGV[at + 1], 1)
    write(KEYS[index], ARGV[at + 2], 0)
end
return dense
"""
)


@dataclass(frozen=True)
class IdMapStats:
    """The size of a store's id map.

    :ivar ids: how many ids are mapped.
    :ivar memory: the bytes its keys take (``MEMORY USAGE``, which
        estimates a large hash from a sample of its entries: reading them all
        would hold Redis for half a second at a million ids).
    :ivar buckets: the map's buckets.
    """

    ids: int
    memory: int
    buckets: int

    @property
    def bytes_per_id(self) -> float | None:
        """Memory per mapped id, or ``None`` for an empty map."""
        return self.memory / self.ids if self.ids else None


class IdMap:
    """A store's map from canonical ids to dense ids (see the module's
    documentation), and a bounded cache of the ids this process has met.

    :param buckets: 1 for a layout of one shard, :data:`SHARDED_BUCKETS` for
        a sharded one; part of the key names, so that two formats never
        read each other's.
    :param limit: the largest dense id handed out (``BITMAPIST_MAX_USER_ID``).
    :param cache_size: how many ids the cache keeps, the least recently met
        out first; 0 keeps none.
    """

    def __init__(
        self,
        buckets: int = 1,
        *,
        limit: int = MAX_USER_ID,
        cache_size: int = DEFAULT_ID_CACHE_SIZE,
    ) -> None:
        if buckets < 1:
            raise ValueError(f"An id map needs 1 bucket or more, got {buckets}.")
        self.buckets = buckets
        self.limit = limit
        self.cache_size = cache_size
        self._cache: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        self_ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _new_lock(self_ref))

    def __repr__(self) -> str:
        return f"IdMap(buckets={self.buckets}, limit={self.limit})"

    def keys(self, bucket: int) -> tuple[str, str, str]:
        """The counter, forward and reverse keys of ``bucket``."""
        if self.buckets == 1:
            prefix = f"{ID_PREFIX}:"
        else:
            prefix = f"{ID_PREFIX}{self.buckets}{{{bucket}}}:"
        return f"{prefix}next", f"{prefix}fwd", f"{prefix}rev"

    def all_keys(self) -> list[str]:
        """Every key of the map, whether it exists or not."""
        return [key for bucket in range(self.buckets) for key in self.keys(bucket)]

    def bucket_of(self, canonical: str) -> int:
        """The bucket of a canonical id."""
        if self.buckets == 1:
            return 0
        return zlib.crc32(canonical.encode()) % self.buckets

    def cached(self, canonical: str) -> int | None:
        """The dense id of ``canonical`` if this process met it lately."""
        return self.cached_many([canonical])[0]

    def cached_many(self, ids: Sequence[str]) -> list[int | None]:
        """The dense ids of ``ids`` this process met lately (``None`` for the
        others), under one lock."""
        with self._lock:
            cache = self._cache
            found = [cache.get(canonical) for canonical in ids]
            for canonical, dense in zip(ids, found, strict=True):
                if dense is not None:
                    cache.move_to_end(canonical)
            return found

    def remember(self, pairs: Iterable[tuple[str, int]]) -> None:
        """Keep ``(canonical id, dense id)`` pairs in the cache."""
        if not self.cache_size:
            return
        with self._lock:
            cache = self._cache
            for canonical, dense in pairs:
                cache[canonical] = dense
                cache.move_to_end(canonical)
            while len(cache) > self.cache_size:
                cache.popitem(last=False)

    def clear_cache(self) -> None:
        """Forget every id met (after the map's keys were deleted)."""
        with self._lock:
            self._cache.clear()

    def allocate(self, store: Store, ids: Sequence[str]) -> list[int]:
        """The dense ids of canonical ``ids``, allocating those not mapped
        yet, in one round trip per node (one script per bucket on a
        cluster, one script on one node); -1 for an id refused for want of
        dense ids. Remembers them in the cache.

        :raises redis.RedisError: the first error of a bucket that failed;
            the dense ids of the buckets that worked are remembered.
        """
        by_bucket: dict[int, list[int]] = {}
        for index, canonical in enumerate(ids):
            by_bucket.setdefault(self.bucket_of(canonical), []).append(index)
        groups = [[bucket] for bucket in by_bucket]
        if not is_cluster(store.client):
            groups = [list(by_bucket)]
        scripts: list[Script] = []
        for group in groups:
            keys: list[str] = []
            args: list[str | int] = [self.buckets, self.limit]
            for bucket in group:
                keys += self.keys(bucket)
                indexes = by_bucket[bucket]
                args += [bucket, len(indexes), *(ids[index] for index in indexes)]
            scripts.append((ALLOCATE_SCRIPT, keys, args))
        replies = store.execute(scripts)
        dense = [-1] * len(ids)
        error: Exception | None = None
        for group, reply in zip(groups, replies, strict=True):
            if isinstance(reply, Exception):
                error = error or reply
                continue
            indexes = [index for bucket in group for index in by_bucket[bucket]]
            for index, value in zip(indexes, reply, strict=True):
                dense[index] = int(value)
        self.remember(
            (canonical, value)
            for canonical, value in zip(ids, dense, strict=True)
            if value >= 0
        )
        if error is not None:
            raise error
        return dense

    def lookup(self, store: Store, ids: Sequence[str]) -> list[int | None]:
        """The dense ids of canonical ``ids`` (``None`` for an id never
        mapped), from the cache or in one round trip per node; allocates
        nothing."""
        dense = self.cached_many(ids)
        missing = [index for index, value in enumerate(dense) if value is None]
        if not missing:
            return dense
        values = self._hmget(
            store, [(self.keys(self.bucket_of(ids[i]))[1], ids[i]) for i in missing]
        )
        found: list[tuple[str, int]] = []
        for index, value in zip(missing, values, strict=True):
            if value is not None:
                dense[index] = int(value)
                found.append((ids[index], int(value)))
        self.remember(found)
        return dense

    def resolve(self, store: Store, dense_ids: Sequence[int]) -> list[str | None]:
        """The canonical ids of ``dense_ids`` (``None`` for a dense id the map
        never handed out), in one round trip per node."""
        values = self._hmget(
            store,
            [(self.keys(dense % self.buckets)[2], str(dense)) for dense in dense_ids],
        )
        return [None if value is None else value.decode() for value in values]

    def stats(self, store: Store) -> IdMapStats:
        """How many ids are mapped, and the memory of the map's keys, in one
        round trip per node."""
        replies = _run(
            store,
            [(_STATS_SCRIPT, self.keys(bucket), []) for bucket in range(self.buckets)],
        )
        return IdMapStats(
            ids=sum(int(reply[0]) for reply in replies),
            memory=sum(int(used) for reply in replies for used in reply[1:]),
            buckets=self.buckets,
        )

    def _hmget(self, store: Store, fields: Sequence[tuple[str, str]]) -> list[Any]:
        """``HGET key field`` of each pair, in HMGETs of at most
        :data:`RESOLVE_BATCH` fields, one round trip per node."""
        by_key: dict[str, list[int]] = {}
        for index, (key, _) in enumerate(fields):
            by_key.setdefault(key, []).append(index)
        chunks = [
            (key, indexes[start : start + RESOLVE_BATCH])
            for key, indexes in by_key.items()
            for start in range(0, len(indexes), RESOLVE_BATCH)
        ]
        replies = _run(
            store,
            [
                (_HMGET_SCRIPT, [key], [fields[index][1] for index in indexes])
                for key, indexes in chunks
            ],
        )
        values: list[Any] = [None] * len(fields)
        for (_, indexes), reply in zip(chunks, replies, strict=True):
            for index, value in zip(indexes, reply, strict=True):
                values[index] = value
        return values


def id_map_of(settings: Settings, layout: KeyLayout) -> IdMap | None:
    """The id map ``BITMAPIST_ID_MAP`` asks for in ``layout``, or ``None``."""
    if not settings.id_map:
        return None
    return IdMap(
        1 if layout.registry_key is None else SHARDED_BUCKETS,
        limit=settings.max_user_id,
        cache_size=settings.id_cache_size,
    )


def _new_lock(ref: weakref.ref[IdMap]) -> None:
    # A fork copies the lock as it was: held, if another thread held it.
    id_map = ref()
    if id_map is not None:
        id_map._lock = threading.Lock()


_HMGET_SCRIPT = 'return redis.call("HMGET", KEYS[1], unpack(ARGV))'
# A bucket's number of ids, then the memory of each of its keys.
_STATS_SCRIPT = """
local found = {redis.call("HLEN", KEYS[2])}
for _, key in ipairs(KEYS) do
    found[#found + 1] = redis.call("MEMORY", "USAGE", key) or 0
end
return found
"""


def _run(store: Store, scripts: Sequence[Script]) -> list[Any]:
    """Each script's reply, one round trip per node; raise the first error."""
    replies = store.execute(scripts)
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies
