"""Review of the write script's two ways of writing a bitmap piece (834ea4a):
ORed in through a scratch key into a key of at most PIECE_KEY_BYTES, or,
into a longer one, set bit by bit (834ea4a) and then ORed into the bytes it
covers only (the fix of the one defect found: a key grown past
PIECE_KEY_BYTES between the import's STRLEN and its script took a SETBIT
for every bit of the bitmap). Every bit is compared with a plain SETBIT
reference in Redis; the boundaries, the TTL, a key of another type, a
missing key, clearing marks, the sharded layout and the bulk import's
bounds are checked."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import redis
from test_bulk import script_words

from flask_bitmapist.store import bulk, writer
from flask_bitmapist.store.backend import Store
from flask_bitmapist.store.bulk import write_user_ids
from flask_bitmapist.store.layout import BITMAPIST, KeyLayout, Period, ShardedLayout
from flask_bitmapist.store.writer import (
    BITS_AND_PIECES_SCRIPT,
    PIECE_KEY_BYTES,
    Mark,
    is_dense,
    mark_periods,
    write_marks,
)

UTC = timezone.utc
NOW = datetime(2026, 3, 14, 12, tzinfo=UTC)
P = PIECE_KEY_BYTES
#: A bit that makes a key one byte longer than PIECE_KEY_BYTES.
LONG_BIT = 8 * P + 3


def calls(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {
        name: stats.get(f"cmdstat_{name}", {}).get("calls", 0)
        for name in ("bitop", "setbit", "setrange")
    }


def spent(client: redis.Redis, before: dict[str, int]) -> dict[str, int]:
    after = calls(client)
    return {name: after[name] - before[name] for name in after}


def reference(client: redis.Redis, key: str, first: int, piece: bytes) -> None:
    """A SETBIT for each set bit of ``piece`` laid at byte ``first``."""
    for index, byte in enumerate(piece):
        for bit in range(8):
            if byte & (0x80 >> bit):
                client.setbit(key, 8 * (first + index) + bit, 1)


def region(client: redis.Redis, key: str, start: int, end: int) -> bytes:
    """Bytes ``start`` to ``end`` (excluded) of ``key``, zeros past its end."""
    return client.getrange(key, start, end - 1).ljust(end - start, b"\0")


@pytest.fixture
def db(client: redis.Redis) -> Iterator[redis.Redis]:
    yield client
    client.flushdb()


# --- The script, into a long key ------------------------------------------

PIECES = [
    (0, b"\x80"),  # bit 0: the high bit of byte 0
    (0, b"\x01"),  # bit 7
    (1, b"\xff"),
    (3, b"\x00\x80\x00\x01"),  # a leading zero byte, a NUL inside
    (17, b"\xff\x00\x00\xff"),
    (1000, bytes(range(256))),  # every byte value, 0x00 first
    (P - 300, b"\x01\x00\x00\x00\x80"),  # ends 295 bytes before P
    (P - 1, b"\x80"),  # the last byte below P
]


def test_a_piece_into_a_long_key_sets_the_bits_setbit_sets(
    db: redis.Redis,
) -> None:
    """Into keys longer than PIECE_KEY_BYTES (set bit by bit at 834ea4a,
    ORed into the bytes it covers since):
    the bits a SETBIT each leaves, the TTL kept, the number of keys
    replied, no scratch key left."""
    keys = [f"long{number}" for number in range(len(PIECES))]
    words: list[Any] = []
    for key, (first, piece) in zip(keys, PIECES, strict=True):
        db.setbit(key, LONG_BIT, 1)
        db.expire(key, 1000)
        words += ("p", first, piece)
    reply = db.eval(
        BITS_AND_PIECES_SCRIPT, 2 + len(keys), "scratch", "covered", *keys, *words
    )
    assert reply == len(keys)
    assert db.exists("scratch", "covered") == 0
    for number, (key, (first, piece)) in enumerate(zip(keys, PIECES, strict=True)):
        want = f"ref{number}"
        db.setbit(want, LONG_BIT, 1)
        reference(db, want, first, piece)
        start, end = max(0, first - 2), first + len(piece) + 2
        assert region(db, key, start, end) == region(db, want, start, end), piece
        assert db.bitcount(key) == db.bitcount(want)
        assert db.strlen(key) == (LONG_BIT >> 3) + 1
        assert 990 < db.ttl(key) <= 1000


@pytest.mark.parametrize(
    ("length", "first", "piece"),
    [
        (P, P - 1, b"\x81"),  # key exactly P bytes, piece ends at P
        (0, P - 2, b"\x40\x02"),  # missing key, piece ends at P
        (0, P - 1, b"\x01\x80"),  # missing key, piece ends at P + 1
        (P + 1, 0, b"\xf0"),  # key P + 1 bytes, piece at byte 0
        (P - 1, 5, b"\x08"),  # short key
    ],
)
def test_the_two_ways_meet_at_piece_key_bytes(
    db: redis.Redis, length: int, first: int, piece: bytes
) -> None:
    """At 834ea4a a key or piece ending at PIECE_KEY_BYTES is ORed in (its
    TTL put back), one byte more set bit by bit: both leave the bytes and
    the length a SETBIT each leaves, and the TTL."""
    if length:
        db.setbit("key", 8 * length - 1, 1)
        db.setbit("want", 8 * length - 1, 1)
        db.expire("key", 1000)
    db.eval(BITS_AND_PIECES_SCRIPT, 3, "scratch", "covered", "key", "p", first, piece)
    reference(db, "want", first, piece)
    assert db.strlen("key") == db.strlen("want")
    start = max(0, first - 2)
    assert region(db, "key", start, first + 8) == region(db, "want", start, first + 8)
    assert db.exists("scratch", "covered") == 0
    if length:
        assert 990_000 < db.pttl("key") <= 1_000_000
    else:
        assert db.ttl("key") == -1


@pytest.mark.parametrize("long_key", [False, True])
def test_a_key_of_another_type_is_wrongtype_and_leaves_no_scratch_key(
    db: redis.Redis, long_key: bool
) -> None:
    """Keys before it written, keys after it not, WRONGTYPE raised, in
    either way of writing the pieces."""
    if long_key:
        for key in ("before", "after"):
            db.setbit(key, LONG_BIT, 1)
    db.hset("other", "a", "1")
    words = ["p", 2, b"\x81", "p", 0, b"\xff", "p", 4, b"\x10"]
    with pytest.raises(redis.ResponseError, match=r"^WRONGTYPE"):
        db.eval(
            BITS_AND_PIECES_SCRIPT,
            5,
            "scratch",
            "covered",
            "before",
            "other",
            "after",
            *words,
        )
    assert db.exists("scratch", "covered") == 0
    assert [db.getbit("before", offset) for offset in (16, 17, 23)] == [1, 0, 1]
    assert db.bitcount("after") == int(long_key)
    assert db.type("other") == b"hash"


# --- The writer: is_dense, batches against a SETBIT reference ---------------


def test_is_dense_takes_a_bitmap_ending_within_piece_key_bytes_only() -> None:
    ending = range(8 * P - 256, 8 * P)
    assert is_dense(ending)
    assert not is_dense(range(8 * P - 255, 8 * P + 1))
    assert not is_dense(range(8 * P, 8 * P + 256))
    assert is_dense(range(256))


def setbit_reference(client: redis.Redis, layout: KeyLayout, marks: list[Mark]) -> None:
    """Each mark as a plain SETBIT into each of its keys, in order."""
    for mark in marks:
        shard, offset = layout.split(mark.user_id)  # type: ignore[arg-type]
        for period in mark_periods(mark):
            client.setbit(
                "ref:" + layout.key(mark.event_name, period, shard), offset, mark.value
            )


def compare(client: redis.Redis) -> None:
    keys = [key.decode() for key in client.keys("*") if not key.startswith(b"ref:")]
    keys = [key for key in keys if client.type(key) == b"string"]
    assert keys
    for key in keys:
        if client.exists("ref:" + key):
            assert client.get(key) == client.get("ref:" + key), key


@pytest.mark.parametrize(
    "layout", [BITMAPIST, ShardedLayout(23), ShardedLayout(26)], ids=repr
)
def test_a_batch_of_pieces_setbits_and_clears_writes_what_setbit_writes(
    db: redis.Redis, layout: KeyLayout
) -> None:
    """One batch: event "a" dense near the end of the first 4 MiB (a piece,
    some keys made long first), event "b" dense past it (SETBITs), event "c"
    setting and clearing (last mark wins); hourly and unique keys too."""
    high = 8 * P - 2048
    marks = [Mark("a", high + 5 * user, NOW, True, True) for user in range(400)]
    marks += [Mark("b", 8 * P + 3 * user, NOW, False, True) for user in range(300)]
    marks += [Mark("c", user, NOW, True, False) for user in range(0, 3000, 3)]
    marks += [Mark("c", user, NOW, True, False, 0) for user in range(0, 3000, 9)]
    marks += [Mark("c", 9, NOW, True, False)]  # cleared, then set again
    shard = layout.split(high)[0]
    for period in mark_periods(marks[0])[1:]:  # the week, day, hour and ever
        key = layout.key("a", period, shard)
        for name in (key, "ref:" + key):
            db.setbit(name, LONG_BIT, 1)
        db.expire(key, 1000)
    write_marks(Store(db, layout), marks)
    setbit_reference(db, layout, marks)
    compare(db)
    day = layout.key("a", Period.of("day", NOW), shard)
    assert 990 < db.ttl(day) <= 1000
    assert db.getbit(layout.key("c", Period.of("day", NOW), 0), 9) == 1


# --- The import: key lengths at the boundary, and a key grown meanwhile -----


@pytest.mark.parametrize(("length", "kind"), [(P, "p"), (P + 1, "s")])
def test_the_import_takes_a_bitmap_into_a_key_of_at_most_piece_key_bytes(
    db: redis.Redis, monkeypatch: pytest.MonkeyPatch, length: int, kind: str
) -> None:
    store = Store(db, BITMAPIST)
    day = BITMAPIST.key("a", Period.of("day", NOW))
    db.setbit(day, 8 * length - 1, 1)
    db.expire(day, 1000)
    sent = script_words(monkeypatch, db)
    # 5,334 ids: a 4 MiB key has at most 1 KiB (BYTES_PER_BIT) for each.
    ids = list(range(0, 16_000, 3))
    write_user_ids(store, {("a", NOW): ids}, False, False, set())
    # The month and the week are new keys: bitmaps.
    assert sent.count("p") == 2 + (kind == "p")
    assert sent.count("s") == (kind == "s")
    assert db.bitcount(day) == len(ids) + 1
    assert [db.getbit(day, offset) for offset in (0, 1, 3, 3999)] == [1, 0, 1, 1]
    assert 990 < db.ttl(day) <= 1000


def test_a_key_grown_past_piece_key_bytes_after_strlen_gets_no_more_than_max_batch_setbits(
    db: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The import reads its keys' lengths (one round trip of STRLENs), builds
    its bitmaps, then sends them. If another client (the app's writer, a
    user with an id past 33,554,432) makes a key longer than PIECE_KEY_BYTES
    meanwhile, the script sets that key's bitmap bit by bit: 12,000 SETBITs
    in one script here, a whole window's ids (up to 250,000, 0.2 s) in
    general, against the "at most 10,000 SETBITs a script" that bulk._send
    and the README promise. (Before 834ea4a the same race cost a BITOP over
    the long key.)"""
    store = Store(db, BITMAPIST)
    day = BITMAPIST.key("a", Period.of("day", NOW))
    read_lengths = bulk._lengths

    def lengths_then_a_concurrent_mark(store: Store, keys: list[str]) -> list[int]:
        found = read_lengths(store, keys)
        db.setbit(day, LONG_BIT, 1)  # another client's mark, in real Redis
        return found

    monkeypatch.setattr(bulk, "_lengths", lengths_then_a_concurrent_mark)
    setbits: list[int] = []
    evaluate = db.eval

    def measuring(script: str, keys: int, *args: Any) -> Any:
        before = calls(db)
        try:
            return evaluate(script, keys, *args)
        finally:
            setbits.append(spent(db, before)["setbit"])

    monkeypatch.setattr(db, "eval", measuring)
    ids = list(range(0, 24_000, 2))
    write_user_ids(store, {("a", NOW): ids}, False, False, set())
    assert db.bitcount(day) == len(ids) + 1
    assert db.bitcount(BITMAPIST.key("a", Period.of("month", NOW))) == len(ids)
    assert max(setbits) <= bulk.SCRIPT_SETBITS, setbits


def test_the_script_constant_is_piece_key_bytes() -> None:
    """The script compares with the constant the client checks with."""
    assert f"longest > {writer.PIECE_KEY_BYTES} then" in BITS_AND_PIECES_SCRIPT
    assert bulk.SCRIPT_BYTES == writer.PIECE_KEY_BYTES
