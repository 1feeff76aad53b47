"""Running programs on the client: read every key they name once, then do
their BITOPs and counts here, with numpy, instead of in a Redis script.

This is the floor of a query (one read of every bitmap it needs, then the bit
operations of every cell, vectorized): on this machine numpy ANDs and counts
two bitmaps of 375 KB in 37 us where Redis takes 100 us, so a report is
faster this way at every size measured, from 10,000 to 10,000,000 users a
day, even with the transfer (scripts/bench_curve.py). And Redis only serves
reads (``MGET``, ``STRLEN``, ``GETRANGE``), in round trips of about
:data:`~flask_bitmapist.store.backend.READ_CHUNK_BYTES` at most, so a big
query never holds it for long.

Used when numpy is installed (the ``fast`` extra) and ``BITMAPIST_QUERY_ENGINE``
is ``"auto"`` or ``"client"`` (without numpy, :mod:`.intbits`); the results
are those of :data:`~flask_bitmapist.store.program.PROGRAM_SCRIPT`,
instruction by instruction (:mod:`.interpreter`). Programs that keep a
scratch key or page through one (users lists) always run in Redis.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy
import redis

from . import interpreter

__all__ = ["Bits", "run_programs"]


_WORD = numpy.uint64
#: A bitmap's 64-bit words, or a matrix of them, a bitmap a row.
Words: TypeAlias = "numpy.ndarray[Any, numpy.dtype[numpy.uint64]]"
#: The most bytes of a cohort row's cells ANDed in one numpy call: past
#: that, the call's temporary arrays cost more (fresh memory, out of the CPU
#: caches) than a call a cell into one reused buffer: a 30x30 cohort on
#: 30,000,000 ids (3.75 MB keys) took 863 ms in whole rows, 555 ms so
#: (scripts/bench_curve.py).
_BLOCK_BYTES = 1 << 20
#: Fewer words than this hold fewer than 2**32 bits, whose count a 32-bit
#: sum holds.
_WORDS_COUNTED_IN_32_BITS = interpreter.BIT_OFFSETS // 64


def _count(words: Words) -> int:
    """The bits set in ``words``: the sum of each word's count in 32 bits
    where it fits, which numpy adds in half the time of 64 (2.4 against
    4.3 us for 100 KB)."""
    total = numpy.uint32 if len(words) < _WORDS_COUNTED_IN_32_BITS else numpy.uint64
    return int(numpy.bitwise_count(words).sum(dtype=total))


@dataclass
class Bits:
    """A bitmap: its bytes in 64-bit words, the bytes past ``size`` zero."""

    words: Words
    size: int

    @classmethod
    def of(cls, value: bytes) -> Bits:
        """The bitmap of a string read from Redis: its own buffer, read-only
        (padded to whole words, a copy; none when it is whole words)."""
        padding = -len(value) % 8
        padded = value + bytes(padding) if padding else value
        return cls(numpy.frombuffer(padded, dtype=_WORD), len(value))

    def count(self) -> int:
        """``BITCOUNT``."""
        return _count(self.words)

    def value(self) -> bytes:
        """The string Redis would hold."""
        return self.words.view(numpy.uint8)[: self.size].tobytes()


#: The ufunc of each BITOP of two sources.
_TWO_SOURCES = {
    "AND": numpy.bitwise_and,
    "OR": numpy.bitwise_or,
    "XOR": numpy.bitwise_xor,
}

#: A key's value while a program runs: a bitmap, ``None`` (no key), or the
#: error of a key of another type, raised by the instruction that reads it.
Value: TypeAlias = "Bits | redis.ResponseError | None"


def bitop(operation: str, sources: Sequence[Bits | None]) -> Bits | None:
    """``BITOP``: a missing source is an empty string, the result as long as
    the longest source, and no key at all when every source is empty."""
    size = max((source.size for source in sources if source is not None), default=0)
    if size == 0:
        return None
    if len(sources) == 2 and operation != "NOT":
        first, second = sources
        if first is not None and second is not None:
            return _of_two(operation, first, second, size)
    words = numpy.zeros((size + 7) // 8, dtype=_WORD)
    if operation == "NOT":
        (source,) = sources
        assert source is not None
        numpy.invert(source.words, out=words)
        words.view(numpy.uint8)[size:] = 0
    elif operation == "AND":
        first, *others = sources
        if first is not None:
            words[: len(first.words)] = first.words
        for source in others:
            if source is None:
                words[:] = 0
                break
            words[len(source.words) :] = 0
            words[: len(source.words)] &= source.words
    else:
        combine = numpy.bitwise_or if operation == "OR" else numpy.bitwise_xor
        for source in sources:
            if source is not None:
                part = words[: len(source.words)]
                combine(part, source.words, out=part)
    return Bits(words, size)


def _of_two(operation: str, first: Bits, second: Bits, size: int) -> Bits:
    """``BITOP`` of two bitmaps (the most common, in every report): one
    pass over the shorter one's words into a result not zeroed first, the
    longer one's tail copied (an OR, a XOR) or zeroed (an AND)."""
    if len(first.words) > len(second.words):
        first, second = second, first
    shared = len(first.words)
    words = numpy.empty(len(second.words), dtype=_WORD)
    _TWO_SOURCES[operation](first.words, second.words[:shared], out=words[:shared])
    words[shared:] = 0 if operation == "AND" else second.words[shared:]
    return Bits(words, size)


def _and_count(
    first: Bits, second: Bits | None, scratch: numpy.ndarray[Any, Any]
) -> int:
    """``BITCOUNT`` of the AND of two bitmaps, without building it."""
    if second is None:
        return 0
    length = min(len(first.words), len(second.words))
    both = scratch[:length]
    numpy.bitwise_and(first.words[:length], second.words[:length], out=both)
    return _count(both)


def _first_bit(bits: Bits | None) -> int:
    """``BITPOS key 1``: -1 for a missing or empty bitmap."""
    if bits is None:
        return -1
    found = numpy.flatnonzero(bits.words.view(numpy.uint8)[: bits.size])
    if not len(found):
        return -1
    byte = int(found[0])
    return byte * 8 + 8 - int(bits.words.view(numpy.uint8)[byte]).bit_length()


def _getbit(bits: Bits | None, offset: int) -> int:
    if bits is None or offset >> 3 >= bits.size:
        return 0
    return int(bits.words.view(numpy.uint8)[offset >> 3]) >> (7 - (offset & 7)) & 1


def run_program(
    words: Sequence[str],
    values: list[Value],
    block: Callable[[Sequence[str]], Words | None] = lambda words: None,
) -> list[Any]:
    """Run a program's instructions on ``values`` with numpy (see
    :func:`~flask_bitmapist.store.interpreter.run_program`).

    :param block: the bitmaps of the keys of the given words as one matrix,
        a row each, when they are consecutive rows of one (see
        :class:`_Stack`), else ``None``.
    """
    return interpreter.run_program(words, values, _OPERATIONS, block)


def _cohort_cells(
    primary: Bits,
    cells: list[Bits | None],
    replace: bool,
    cells_block: Callable[[], Words | None],
) -> list[int]:
    """A cohort row's cell counts (see
    :class:`~flask_bitmapist.store.interpreter.Operations`)."""
    words = primary.words
    block = cells_block() if replace else None
    if (
        block is not None
        and block.shape[1] == len(words)
        and block.nbytes <= _BLOCK_BYTES
    ):
        # The cells of a cohort's row are consecutive days: one AND and one
        # count for the whole row, not one a cell (a cell of at most
        # _BLOCK_BYTES: its count fits in 32 bits).
        counts = numpy.bitwise_count(numpy.bitwise_and(block, words)).sum(
            axis=1, dtype=numpy.uint32
        )
        return [int(count) for count in counts]
    scratch = numpy.empty(len(words), dtype=_WORD)
    row = []
    if replace:
        for cell in cells:
            if cell is not None and len(cell.words) == len(words):
                # Most cells: keys of the same length, no slices to make.
                numpy.bitwise_and(words, cell.words, out=scratch)
                row.append(_count(scratch))
            else:
                row.append(_and_count(primary, cell, scratch))
        return row
    remaining = primary.words.copy()
    for cell in cells:
        if cell is None:
            row.append(0)
            continue
        length = min(len(remaining), len(cell.words))
        both = scratch[:length]
        numpy.bitwise_and(remaining[:length], cell.words[:length], out=both)
        found = _count(both)
        row.append(found)
        if found:
            remaining[:length] ^= both
    return row


_OPERATIONS = interpreter.Operations(
    bitop=bitop,
    count=Bits.count,
    value=Bits.value,
    getbit=_getbit,
    first_bit=_first_bit,
    cohort_cells=_cohort_cells,
)


def run_programs(plans: interpreter.Plans, read: interpreter.Reader) -> list[list[Any]]:
    """Run programs on the client.

    :param plans: each program's key names by number from 1 (``None`` for a
        scratch key) and its instruction words.
    :param read: reads the values of the key names given (every one named by
        the plans, each once).
    """
    names = interpreter.names_of(plans)
    if any("R" in words for _, words in plans):
        # The list read is dropped once stacked: kept alive beside the
        # matrix, its bytes made the heap grow and shrink on every query
        # (a cohort, and the floor beside it, 1 ms slower in
        # scripts/bench_queries.py).
        stack = _Stack(names, read(names))
        return interpreter.run_plans(plans, stack.values, _OPERATIONS, stack.blocks)
    # No cohort row to read as a block: each bitmap in its own buffer,
    # without the copy of them all into one matrix (a tenth of a 30-day
    # lifecycle's time, scripts/bench_reports.py).
    bitmaps = {
        name: Bits.of(value) if isinstance(value, bytes) else value
        for name, value in zip(names, read(names), strict=True)
    }
    return interpreter.run_plans(plans, bitmaps, _OPERATIONS)


class _Stack:
    """The values read, the bitmaps of the most common length in one
    matrix, a row each in the order read, so that consecutive keys (a
    cohort's days) are a slice of it."""

    def __init__(self, names: Sequence[str], values: Sequence[Any]) -> None:
        widths = Counter(
            (len(value) + 7) // 8 for value in values if isinstance(value, bytes)
        )
        width = widths.most_common(1)[0][0] if widths else 0
        stacked = [
            name
            for name, value in zip(names, values, strict=True)
            if isinstance(value, bytes) and (len(value) + 7) // 8 == width
        ]
        self.rows: dict[str, int] = {name: row for row, name in enumerate(stacked)}
        read = dict(zip(names, values, strict=True))
        # One copy of them all, each padded to whole words (read-only).
        joined = b"".join(
            part
            for name in stacked
            for part in (read[name], bytes(width * 8 - len(read[name])))
        )
        self.matrix: Words = numpy.frombuffer(joined, dtype=_WORD).reshape(
            len(stacked), width
        )
        self.values: dict[str, Value] = {}
        for name, value in read.items():
            row = self.rows.get(name)
            if row is None:
                self.values[name] = (
                    Bits.of(value) if isinstance(value, bytes) else value
                )
            else:
                self.values[name] = Bits(self.matrix[row], len(value))

    def blocks(
        self, keys: Sequence[str | None]
    ) -> Callable[[Sequence[str]], Words | None]:
        """For a program of key names ``keys``, what gives the matrix rows
        of the keys it numbers (see :meth:`block`)."""
        rows = [None, *(self.rows.get(name) if name else None for name in keys)]
        return functools.partial(self.block, rows)

    def block(self, rows: Sequence[int | None], words: Sequence[str]) -> Words | None:
        """The matrix rows of the keys numbered ``words``, when they are
        consecutive rows of it (a view, no copy), else ``None``."""
        numbers = [rows[int(word)] for word in words]
        first = numbers[0] if numbers else None
        if first is None or numbers != list(range(first, first + len(numbers))):
            return None
        return self.matrix[first : first + len(numbers)]
