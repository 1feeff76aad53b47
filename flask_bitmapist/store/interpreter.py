"""Running a program's instructions on the client, whatever holds the
bitmaps: numpy's 64-bit words (:mod:`.clientside`) or Python's ints
(:mod:`.intbits`). Each gives the same results as
:data:`~flask_bitmapist.store.program.PROGRAM_SCRIPT`, instruction by
instruction."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import redis

__all__ = ["Operations", "Plans", "Reader", "names_of", "run_plans", "run_program"]

#: A bitmap as an implementation holds it; ``None`` for a missing key.
Bitmap = Any
#: Redis's bit offsets: up to 2**32 - 1 (a string of 512 MB).
BIT_OFFSETS = 1 << 32
#: Programs to run on the client: each one's key names by number from 1
#: (``None`` for a scratch key) and its instruction words.
Plans: TypeAlias = Sequence[tuple[Sequence[str | None], Sequence[str]]]
#: A read from Redis: the key names, and a callable that returns each one's
#: value (``None`` for a missing key, the error of a key of another type),
#: or raises the error of the read.
Reader: TypeAlias = Callable[[Sequence[str]], list[Any]]


@dataclass(frozen=True)
class Operations:
    """What an implementation does to its bitmaps.

    :ivar bitop: ``BITOP``: a missing source is an empty string, the result
        as long as the longest source, ``None`` when every source is empty.
    :ivar count: ``BITCOUNT`` of a bitmap.
    :ivar value: the string Redis would hold.
    :ivar getbit: ``GETBIT`` of an offset below :data:`BIT_OFFSETS` (0 past
        the end or for a missing key).
    :ivar first_bit: ``BITPOS key 1``: -1 for a missing or empty bitmap.
    :ivar cohort_cells: the counts of the script's ``R`` for a row with
        users: the primary, its cells, whether with replacement (else a
        user counts only in the first cell that holds them), and a callable
        that returns the cells as one block, or ``None``.
    """

    bitop: Callable[[str, Sequence[Bitmap]], Bitmap]
    count: Callable[[Bitmap], int]
    value: Callable[[Bitmap], bytes]
    getbit: Callable[[Bitmap, int], int]
    first_bit: Callable[[Bitmap], int]
    cohort_cells: Callable[[Bitmap, list[Bitmap], bool, Callable[[], Any]], list[int]]


def _bitmap(value: Any) -> Bitmap:
    """A key's bitmap, or the error of a key of another type raised."""
    if isinstance(value, redis.ResponseError):
        raise value
    return value


def run_program(
    words: Sequence[str],
    values: list[Any],
    operations: Operations,
    block: Callable[[Sequence[str]], Any] = lambda words: None,
) -> list[Any]:
    """Run a program's instructions (see
    :data:`~flask_bitmapist.store.program.PROGRAM_SCRIPT`) on ``values``,
    the bitmap of each of its keys by number (from 1; scratch keys ``None``
    at first; a key of another type its error), and return its results as
    the script would.

    :param block: the bitmaps of the keys of the given words as one block,
        when the implementation holds them so, else ``None``.
    :raises redis.ResponseError: where the script fails: an instruction that
        reads a key of another type, a bit offset out of range.
    """

    def key(word: str) -> Bitmap:
        return _bitmap(values[int(word)])

    results: list[Any] = []
    index = 0
    while index < len(words):
        op = words[index]
        if op == "B":
            count = int(words[index + 3])
            sources = [key(word) for word in words[index + 4 : index + 4 + count]]
            values[int(words[index + 2])] = operations.bitop(words[index + 1], sources)
            index += 4 + count
        elif op == "U":
            count = int(words[index + 2])
            # Most of the sources are missing (every month since 1970): one
            # look at each, no call.
            read = [values[int(word)] for word in words[index + 3 : index + 3 + count]]
            sources = [_bitmap(value) for value in read if value is not None]
            values[int(words[index + 1])] = operations.bitop("OR", sources)
            index += 3 + count
        elif op == "X":
            count = int(words[index + 1])
            found = words[index + 2 : index + 2 + count]
            results.append(
                [
                    position
                    for position, word in enumerate(found, 1)
                    if values[int(word)] is not None
                ]
            )
            index += 2 + count
        elif op == "C":
            bits = key(words[index + 1])
            results.append(0 if bits is None else operations.count(bits))
            index += 2
        elif op == "G":
            bits = key(words[index + 1])
            results.append(b"" if bits is None else operations.value(bits))
            index += 2
        elif op == "T":
            # Redis checks the offset before the key's type.
            offset = int(words[index + 2])
            if not 0 <= offset < BIT_OFFSETS:
                raise redis.ResponseError(
                    "bit offset is not an integer or out of range"
                )
            results.append(operations.getbit(key(words[index + 1]), offset))
            index += 3
        elif op == "P":
            results.append(operations.first_bit(key(words[index + 1])))
            index += 2
        elif op == "R":
            # The primary's count, then each cell's, as the script does: the
            # cells are read only when the row has users.
            count = int(words[index + 5])
            cells = words[index + 6 : index + 6 + count]
            primary = key(words[index + 1])
            total = 0 if primary is None else operations.count(primary)
            row = [total]
            if total:
                row += operations.cohort_cells(
                    primary,
                    [key(word) for word in cells],
                    words[index + 4] == "1",
                    functools.partial(block, cells),
                )
            results.append(row)
            index += 6 + count
        else:
            raise ValueError(f"Instruction {op!r} cannot run on the client.")
    return results


def names_of(plans: Plans) -> list[str]:
    """Every key name the plans read, once each, in the order named."""
    return list(dict.fromkeys(name for keys, _ in plans for name in keys if name))


def run_plans(
    plans: Plans,
    bitmaps: Mapping[str, Any],
    operations: Operations,
    block: Callable[[Sequence[str | None]], Callable[[Sequence[str]], Any]]
    | None = None,
) -> list[list[Any]]:
    """Run each program of ``plans`` on ``bitmaps``, each key name's bitmap
    (or the error of a key of another type).

    :param block: given a program's key names, what
        :func:`run_program` takes as its ``block``.
    """
    return [
        run_program(
            words,
            [None, *(bitmaps[name] if name else None for name in keys)],
            operations,
            *(() if block is None else (block(keys),)),
        )
        for keys, words in plans
    ]
