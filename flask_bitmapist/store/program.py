"""A query as a program: the BITOPs and reads of one shard, run as one script.

A report writes its query once, against keys it names by what they hold (an
event's stored period, a scratch key), and :class:`Program` turns it into a
script's ``KEYS`` and ``ARGV`` for each shard of a layout
(:meth:`Program.arguments`). :data:`PROGRAM_SCRIPT` runs it: each BITOP into
a scratch key, each read, then the deletion of the scratch keys, all in one
atomic script that touches only its shard's keys. So a program is a unit
that can be sent to any node, and sent again after a failover, on its own:
it leaves nothing behind that another command would need, and nothing of
another's that it would need (a pipeline of separate BITOPs would, and a
cluster retrying only part of it could count on a key that is not there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from .layout import KeyLayout, Period

__all__ = [
    "MAX_BITOP_SOURCES",
    "PROGRAM_SCRIPT",
    "EventKey",
    "NamedKey",
    "Program",
    "Ref",
    "Scratch",
]

BitOperation = Literal["AND", "OR", "XOR", "NOT"]

#: The most keys of one BITOP that :meth:`Program.union` sends.
MAX_BITOP_SOURCES = 1000


@dataclass(frozen=True)
class EventKey:
    """The key of an event's stored period (an hour, day, week, month or
    ever; never a year) in the shard the program runs on."""

    event_name: str
    period: Period
    # A program looks its keys up once a reference: hashing a period's aware
    # datetime each time was a third of building a cohort's programs.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.event_name, self.period)))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True)
class NamedKey:
    """A key given by its name, such as a bitmapist object's ``redis_key``:
    the same in every shard, so only for layouts of one shard."""

    key: str


@dataclass(frozen=True)
class Scratch:
    """A program's temporary key, deleted when the script ends."""

    index: int


Ref = EventKey | NamedKey | Scratch

# ARGV[1] is the TTL of a kept scratch key, ARGV[2] that key's index in KEYS
# (0: none), ARGV[3] the indexes of the scratch keys to delete at the end,
# ARGV[4] the instructions: words separated by spaces (one argument to pack,
# not one per word), each a letter and its arguments, keys as KEYS indexes:
#   B op destination count sources...  BITOP op into a scratch key
#   U destination count sources...     OR of the sources that exist
#   X count keys...                    the positions (from 1) of the keys
#                                      that exist
#   C key                              BITCOUNT
#   G key                              GET ("" for a missing key)
#   T key offset                       GETBIT
#   P key                              BITPOS key 1
#   L key                              PTTL (-1: no TTL, -2: no key)
#   S key offset count                 a page of set bits: the chunks of 512
#                                      bytes from the byte of offset on that
#                                      hold set bits, until they hold count
#                                      past offset, as {byte, chunk, ...}
#   R primary source cell replace count cells...
#                                      a cohort row: the primary's BITCOUNT,
#                                      then each cell's count (see the report)
# The instructions run under pcall, so that the scratch keys are deleted
# whatever fails (a key of another type), and the error is returned then.
PROGRAM_SCRIPT = """
local function key(word) return KEYS[tonumber(word)] end
local words = {}
for word in string.gmatch(ARGV[4], "%S+") do words[#words + 1] = word end
local results = {}
local function run()
    local i = 1
    while i <= #words do
        local op = words[i]
        if op == "B" then
            local count = tonumber(words[i + 3])
            local sources = {}
            for j = 1, count do sources[j] = key(words[i + 3 + j]) end
            redis.call("BITOP", words[i + 1], key(words[i + 2]), unpack(sources))
            i = i + 4 + count
        elseif op == "U" then
            local destination, count = key(words[i + 1]), tonumber(words[i + 2])
            local found = {}
            for j = 1, count do
                local source = key(words[i + 2 + j])
                if redis.call("EXISTS", source) == 1 then found[#found + 1] = source end
            end
            -- At most 16 keys a BITOP, its fast path: BITOP costs a pass per
            -- byte over every source.
            if #found == 0 then
                redis.call("DEL", destination)
            else
                local last = math.min(16, #found)
                redis.call("BITOP", "OR", destination, unpack(found, 1, last))
                for first = 17, #found, 15 do
                    last = math.min(first + 14, #found)
                    local more = {unpack(found, first, last)}
                    redis.call("BITOP", "OR", destination, destination, unpack(more))
                end
            end
            i = i + 3 + count
        elseif op == "X" then
            local count, found = tonumber(words[i + 1]), {}
            for j = 1, count do
                if redis.call("EXISTS", key(words[i + 1 + j])) == 1 then
                    found[#found + 1] = j
                end
            end
            results[#results + 1] = found
            i = i + 2 + count
        elseif op == "C" then
            results[#results + 1] = redis.call("BITCOUNT", key(words[i + 1]))
            i = i + 2
        elseif op == "G" then
            results[#results + 1] = redis.call("GET", key(words[i + 1])) or ""
            i = i + 2
        elseif op == "T" then
            local bit = redis.call("GETBIT", key(words[i + 1]), words[i + 2])
            results[#results + 1] = bit
            i = i + 3
        elseif op == "P" then
            results[#results + 1] = redis.call("BITPOS", key(words[i + 1]), 1)
            i = i + 2
        elseif op == "S" then
            local page, first = key(words[i + 1]), tonumber(words[i + 2])
            -- The first chunk's first byte may hold 7 bits before offset.
            local wanted = tonumber(words[i + 3]) + 7
            local size = redis.call("STRLEN", page)
            local byte, found, chunks = math.floor(first / 8), 0, {}
            while byte < size and found < wanted do
                local bit = redis.call("BITPOS", page, 1, byte)
                if bit < 0 then break end
                byte = math.floor(bit / 8)
                chunks[#chunks + 1] = byte
                chunks[#chunks + 1] = redis.call("GETRANGE", page, byte, byte + 511)
                found = found + redis.call("BITCOUNT", page, byte, byte + 511)
                byte = byte + 512
            end
            results[#results + 1] = chunks
            i = i + 4
        elseif op == "L" then
            results[#results + 1] = redis.call("PTTL", key(words[i + 1]))
            i = i + 2
        elseif op == "R" then
            local primary, source = key(words[i + 1]), key(words[i + 2])
            local cell = key(words[i + 3])
            local replace, count = words[i + 4] == "1", tonumber(words[i + 5])
            local total = redis.call("BITCOUNT", primary)
            local row = {total}
            if total > 0 then
                if not replace then
                    redis.call("BITOP", "OR", source, primary)
                else
                    source = primary
                end
                for j = 1, count do
                    redis.call("BITOP", "AND", cell, source, key(words[i + 5 + j]))
                    local found = redis.call("BITCOUNT", cell)
                    row[#row + 1] = found
                    if found > 0 and not replace then
                        redis.call("BITOP", "XOR", source, source, cell)
                    end
                end
            end
            results[#results + 1] = row
            i = i + 6 + count
        else
            error("unknown instruction " .. tostring(op))
        end
    end
end
local ok, problem = pcall(run)
-- A thousand keys per DEL: unpack takes no more than about 8,000.
local doomed = {}
for word in string.gmatch(ARGV[3], "%S+") do
    doomed[#doomed + 1] = key(word)
    if #doomed == 1000 then
        redis.call("DEL", unpack(doomed))
        doomed = {}
    end
end
if #doomed > 0 then redis.call("DEL", unpack(doomed)) end
if not ok then
    if type(problem) == "table" and problem.err then problem = problem.err end
    return redis.error_reply(tostring(problem))
end
if ARGV[2] ~= "0" then redis.call("EXPIRE", key(ARGV[2]), ARGV[1]) end
return results
"""

_Word = str | int | Ref

#: The reads only a script can do: a page of a scratch key and a TTL.
_REDIS_ONLY = frozenset({"S", "L"})


class Program:
    """The BITOPs and reads of a query for one shard, written once and run
    on each shard (see the module's documentation).

    Each read returns its index among the program's results. The keys a
    program names are numbered as they first appear, so that running it on
    a shard costs a key name per key, and the instructions are the same text
    on every shard.
    """

    def __init__(self) -> None:
        self._words: list[str] = []
        self._refs: dict[Ref, int] = {}
        self._scratch = 0
        self._reads = 0
        self._keep: Scratch | None = None
        self._client_refused = False

    def scratch(self) -> Scratch:
        """A new scratch key."""
        ref = Scratch(self._scratch)
        self._scratch += 1
        self._number(ref)
        return ref

    def bitop(self, operation: BitOperation, sources: Sequence[Ref]) -> Scratch:
        """``BITOP operation`` of ``sources`` into a new scratch key."""
        destination = self.scratch()
        self.bitop_into(operation, destination, sources)
        return destination

    def bitop_into(
        self, operation: BitOperation, destination: Scratch, sources: Sequence[Ref]
    ) -> None:
        """``BITOP operation`` of ``sources`` into ``destination``."""
        self._add("B", operation, destination, len(sources), *sources)

    def union(self, sources: Sequence[Ref]) -> Ref:
        """The OR of ``sources`` (at least one): the source itself when there
        is one.

        More than :data:`MAX_BITOP_SOURCES` sources are ORed a chunk at a
        time, as Lua's ``unpack`` takes no more than about 8,000 values.
        """
        if len(sources) == 1:
            return sources[0]
        if len(sources) <= MAX_BITOP_SOURCES:
            return self.bitop("OR", sources)
        total = self.bitop("OR", sources[:MAX_BITOP_SOURCES])
        for start in range(MAX_BITOP_SOURCES, len(sources), MAX_BITOP_SOURCES - 1):
            chunk = sources[start : start + MAX_BITOP_SOURCES - 1]
            self.bitop_into("OR", total, [total, *chunk])
        return total

    def union_existing(self, sources: Sequence[Ref]) -> Scratch:
        """The OR of those of ``sources`` that exist, in a new scratch key
        (empty when none does): one ``EXISTS`` per source, then BITOPs of at
        most 16 keys.

        For long lists of keys of which most are missing, such as an event's
        every month since 1970: a BITOP costs its longest key's length times
        its number of keys, missing ones included.
        """
        destination = self.scratch()
        self._add("U", destination, len(sources))
        # Without _add's look at each word: the sources are hundreds of
        # keys (every month since 1970), all references.
        self._words += [str(self._number(ref)) for ref in sources]
        return destination

    def difference(self, first: Ref, second: Ref) -> Scratch:
        """``first`` less the bits of ``second``, whatever their lengths:
        ``first XOR (first AND second)`` (``first AND NOT second`` would cut
        ``first`` to the length of ``second``)."""
        common = self.bitop("AND", [first, second])
        return self.bitop("XOR", [first, common])

    def count(self, ref: Ref) -> int:
        """Read ``BITCOUNT``: an int."""
        return self._read("C", ref)

    def get(self, ref: Ref) -> int:
        """Read the bitmap: bytes (empty for a missing key)."""
        return self._read("G", ref)

    def getbit(self, ref: Ref, offset: int) -> int:
        """Read ``GETBIT``: 0 or 1."""
        return self._read("T", ref, offset)

    def first_bit(self, ref: Ref) -> int:
        """Read ``BITPOS ref 1``: the first set bit, or -1."""
        return self._read("P", ref)

    def page(self, ref: Ref, offset: int, count: int) -> int:
        """Read ``count`` set bits from ``offset`` on, or all there are: a
        list ``[byte, chunk, byte, chunk, ...]`` of the chunks of the bitmap
        (from its byte ``byte``) that hold them, which may hold bits before
        ``offset`` and past the ``count``-th."""
        return self._read("S", ref, offset, count)

    def existing(self, refs: Sequence[Ref]) -> int:
        """Read which of ``refs`` exist: a list of their positions in
        ``refs``, from 1."""
        return self._read("X", len(refs), *refs)

    def ttl(self, ref: Ref) -> int:
        """Read ``PTTL``: milliseconds, -1 without a TTL, -2 without a key."""
        return self._read("L", ref)

    def cohort_row(self, primary: Ref, cells: Sequence[Ref], replace: bool) -> int:
        """Read a cohort row: ``[total, count of cell 0, ...]``, or ``[0]``
        when ``primary`` is empty. Without ``replace``, a user counts only in
        the first cell that holds them."""
        return self._read(
            "R",
            primary,
            self.scratch(),
            self.scratch(),
            "1" if replace else "0",
            len(cells),
            *cells,
        )

    def keep(self, ref: Scratch) -> None:
        """Keep ``ref`` after the script, with the TTL :meth:`arguments` gets,
        instead of deleting it."""
        self._keep = ref

    @property
    def reads(self) -> int:
        """How many results the program returns."""
        return self._reads

    def arguments(
        self, layout: KeyLayout, shard: int, name: str, ttl: int
    ) -> tuple[list[str], list[str | int]]:
        """``(KEYS, ARGV)`` of :data:`PROGRAM_SCRIPT` for ``shard``.

        :param name: what makes this run's scratch keys its own (a query's
            unique name).
        :param ttl: the seconds a kept scratch key lives.
        """
        keys = []
        for ref, stored in zip(
            self._refs, self.stored_keys(layout, shard), strict=True
        ):
            if isinstance(ref, Scratch):
                stored = layout.temporary_key(f"{name}_{ref.index}", shard)
            assert stored is not None
            keys.append(stored)
        kept = 0 if self._keep is None else self._refs[self._keep]
        doomed = " ".join(
            str(number)
            for ref, number in self._refs.items()
            if isinstance(ref, Scratch) and number != kept
        )
        return keys, [ttl, kept, doomed, " ".join(self._words)]

    def stored_keys(self, layout: KeyLayout, shard: int) -> list[str | None]:
        """The name in ``shard`` of each key the program names, by number
        from 1 (the first at index 0), ``None`` for a scratch key."""
        return [
            layout.key(ref.event_name, ref.period, shard)
            if isinstance(ref, EventKey)
            else ref.key
            if isinstance(ref, NamedKey)
            else None
            for ref in self._refs
        ]

    @property
    def words(self) -> list[str]:
        """The instructions, word by word (see :data:`PROGRAM_SCRIPT`)."""
        return list(self._words)

    @property
    def runs_on_client(self) -> bool:
        """Whether the client can run the program
        (:mod:`~flask_bitmapist.store.clientside`): it keeps no scratch key
        and reads no page of one nor a TTL, which only Redis has."""
        return self._keep is None and not self._client_refused

    def _number(self, ref: Ref) -> int:
        number = self._refs.get(ref)
        if number is None:
            number = self._refs[ref] = len(self._refs) + 1
        return number

    def _add(self, *words: _Word) -> None:
        self._words += [
            str(self._number(word))
            if isinstance(word, (EventKey, NamedKey, Scratch))
            else str(word)
            for word in words
        ]

    def _read(self, *words: _Word) -> int:
        if words[0] in _REDIS_ONLY:
            self._client_refused = True
        self._add(*words)
        self._reads += 1
        return self._reads - 1
