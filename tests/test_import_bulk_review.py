"""Review of 1d59206 (the import's fast reader, MarkReader, and the bulk
write of store/bulk.py).

What held: every line gives, through the fast path, the mark or the error
the checks of mark_event give it (JSON Lines with and without orjson, CSV);
the import leaves Redis as writing the same marks with write_marks does
(bitmapist's layout and the sharded one, hourly and unique keys, ids near
the maximum, a larger max_user_id); strict mode writes nothing.

The defects, fixed in the commit after it: an empty group crashed
write_user_ids; a script carried up to twice SCRIPT_BYTES of bitmaps and
twice SCRIPT_SETBITS (then MAX_BATCH) SETBITs, not "at most"; repeated ids
made two far-apart users a bitmap of many kilobytes; the importer's docstrings named a
function that no longer existed."""

from __future__ import annotations

import csv
import inspect
import io
import itertools
import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis

from flask_bitmapist.store import bulk
from flask_bitmapist.store.backend import Store
from flask_bitmapist.store.layout import BITMAPIST, Period, ShardedLayout
from flask_bitmapist.store.writer import DENSE_BYTES_PER_MARK, Mark, write_marks
from flask_bitmapist.track import importer
from flask_bitmapist.track.importer import (
    MalformedLine,
    MarkReader,
    import_marks,
    read_marks,
)

UTC = timezone.utc
NOW = datetime(2026, 3, 14, 12, tzinfo=UTC)


def contents(client: redis.Redis) -> dict[bytes, tuple[bytes, Any]]:
    """Every key, its type and its value."""
    found: dict[bytes, tuple[bytes, Any]] = {}
    for key in client.keys("*"):
        kind = client.type(key)
        found[key] = (kind, client.get(key) if kind == b"string" else None)
    return found


def outcome(item: Mark | MalformedLine) -> tuple[Any, ...]:
    if isinstance(item, MalformedLine):
        return ("error", item.reason)
    when = item.when
    return (
        item.event_name,
        item.user_id,
        type(item.user_id),
        when,
        when.tzinfo,
        item.track_hourly,
        item.track_unique,
        item.value,
    )


class Sizes:
    """What each script sent: bytes of bitmaps, and SETBIT offsets."""

    def __init__(self) -> None:
        self.bitmap_bytes: list[int] = []
        self.setbits: list[int] = []


@pytest.fixture
def sizes(client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> Sizes:
    found = Sizes()
    evaluate = client.eval

    def counting(script: str, keys: int, *args: Any) -> Any:
        words = args[keys:]
        found.bitmap_bytes.append(
            sum(len(word) for word in words if isinstance(word, bytes))
        )
        found.setbits.append(
            sum(
                len(re.findall(r"\d+", words[index + 1]))
                for index in range(0, len(words), 3)
                if words[index] == "s"
            )
        )
        return evaluate(script, keys, *args)

    monkeypatch.setattr(client, "eval", counting)
    return found


# --- Defects ---------------------------------------------------------------


@pytest.mark.parametrize(
    "layout", [BITMAPIST, ShardedLayout(3)], ids=["bitmapist", "sharded3"]
)
def test_write_user_ids_takes_an_empty_group_as_write_marks_takes_no_marks(
    client: redis.Redis, layout: Any
) -> None:
    """write_user_ids (public, in docs/api.rst) with a group of no ids: on
    bitmapist's layout, _entries calls max() of the empty list (ValueError);
    the sharded layout's _by_shard drops it. Fix: skip empty groups (or
    empty offsets) in write_user_ids."""
    store = Store(client, layout)
    bulk.write_user_ids(store, {("a", NOW): [], ("b", NOW): [3]}, False, False, set())
    write_marks(store, [])
    day = store.layout.key("b", Period.of("day", NOW), 0)
    assert client.getbit(day, 3) == 1
    assert client.exists(store.layout.key("a", Period.of("day", NOW), 0)) == 0


def test_a_script_carries_at_most_script_bytes_of_bitmaps(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch, sizes: Sizes
) -> None:
    """README: "in scripts of at most 1 MiB of bitmaps"; SCRIPT_BYTES: "The
    most bytes of bitmaps one script carries". _send checks the size after
    adding a piece, so one script carries up to twice SCRIPT_BYTES (here the
    month's and the week's piece, 2 x 63 bytes against 64; at the real size
    2 MiB - 2). Fix: run the script before adding a piece that would pass
    SCRIPT_BYTES (a piece is at most SCRIPT_BYTES, so each fits alone)."""
    monkeypatch.setattr(bulk, "SCRIPT_BYTES", 64)
    lines = [
        json.dumps({"event": "a", "user": user, "time": "2026-03-14T12:00:00Z"})
        for user in range(63 * 8)
    ]
    result = import_marks(client, read_marks(lines, "jsonl"))
    assert result.imported == 63 * 8
    day = BITMAPIST.key("a", Period.of("day", NOW))
    assert client.bitcount(day) == 63 * 8
    assert max(sizes.bitmap_bytes) <= bulk.SCRIPT_BYTES


def test_a_script_carries_at_most_max_batch_setbits(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch, sizes: Sizes
) -> None:
    """bulk._send's docstring: scripts of at most SCRIPT_SETBITS (then
    MAX_BATCH) SETBITs. The count was checked after adding a key's SETBITs,
    so a script held up to 2 x SCRIPT_SETBITS - 1 (here 6 + 6 against 7). Fix: as for the bytes, run
    the script before adding an entry that would pass SCRIPT_SETBITS."""
    monkeypatch.setattr(bulk, "MAX_BATCH", 7)
    monkeypatch.setattr(bulk, "SCRIPT_SETBITS", 7)
    lines = [
        json.dumps({"event": "a", "user": user, "time": "2026-03-14T12:00:00Z"})
        for user in (1, 100, 1000, 10_000, 100_000, 1_000_000)
    ]
    import_marks(client, read_marks(lines, "jsonl"))
    assert sum(sizes.setbits) == 3 * 6
    assert max(sizes.setbits) <= bulk.SCRIPT_SETBITS


def test_repeated_ids_of_two_far_apart_users_go_as_setbits_not_a_bitmap(
    client: redis.Redis, sizes: Sizes
) -> None:
    """Two users (ids 60 KB apart) active on 150 days, with unique keys:
    the unique key's offsets list holds each id 150 times, and is_dense
    counts the repeats (300 >= DENSE_MARKS, 60 KB <= 512 x 300), so a 60 KB
    bitmap goes for 2 bits, where write_marks (which counts distinct bits)
    sends 2 SETBITs. README: "as a bitmap ... when its ids are close
    together, else as SETBITs". Fix: count distinct offsets in _entries
    (it builds dict.fromkeys(offsets) for SETBITs anyway)."""
    far = 8 * 60_000
    lines = [
        json.dumps(
            {
                "event": "a",
                "user": user,
                "time": (NOW - timedelta(days=day)).isoformat(),
            }
        )
        for day in range(150)
        for user in (0, far)
    ]
    import_marks(client, read_marks(lines, "jsonl", track_unique=True))
    unique = BITMAPIST.key("a", Period.of("ever", NOW))
    assert client.bitcount(unique) == 2
    # Each bitmap sent may span DENSE_BYTES_PER_MARK bytes per distinct bit.
    assert sum(sizes.bitmap_bytes) <= 2 * DENSE_BYTES_PER_MARK


def test_the_importers_docstrings_name_functions_that_exist() -> None:
    """_fields and _read_again say lines go "through :func:`_mark`", which
    the commit renamed (_mark_fields, read again by _read_again). Fix: name
    _read_again / _mark_fields."""
    missing = []
    for name, value in vars(importer).items():
        if getattr(value, "__module__", None) != importer.__name__:
            continue
        doc = inspect.getdoc(value) if callable(value) else None
        for target in re.findall(r":func:`~?\.?([\w.]+)`", doc or ""):
            if "." not in target and not hasattr(importer, target):
                missing.append((name, target))
    assert missing == []


# --- Behaviour that held ---------------------------------------------------

EVENTS = ["a", "é", "", " a", "bitop", None, 5]
USERS: list[Any] = [
    0,
    7,
    16_777_215,
    16_777_216,
    -1,
    True,
    1.0,
    2**64,
    "7",
    "007",
    "0000000007",
    "00000000007",
    "١٢",
    "\uff15",
    " 7",
    "",
    None,
    [1],
]
TIMES: list[Any] = [
    "2026-03-14T12:00:00Z",
    "2026-03-14T12:00:00z",
    "2026-03-14T12:00:00-00:00",
    "2026-03-14T23:30:00-01:00",
    "2026-03-14T12:00:00",
    "2026-03-14",
    "1970-01-01T00:00:00",
    "1969-12-31T23:59:59Z",
    "1970-01-01T00:30:00+01:00",
    "2099-12-31T23:59:59Z",
    "2100-01-01T00:00:00",
    "9999-12-31T23:59:59-23:59",
    "nope",
    "",
    5,
    None,
]


def jsonl_cases() -> list[str]:
    lines = [
        json.dumps({"event": event, "user": user, "time": time})
        for event, user, time in itertools.product(EVENTS, USERS, TIMES)
    ]
    return [
        *lines,
        '{"event": "a", "user": 123456789012345678901234, "time": "2026-01-01"}',
        '{"event": "a", "user": NaN, "time": "2026-01-01"}',
        '{"event": "a", "user": 1, "time": "2026-01-01", "x": NaN}',
        '{"event": "a", "user": 1, "time": "2026-01-01", "user": "x"}',
        '{"event": "a", "user": 1}',
        "[1, 2]",
        "null",
        "{",
    ]


def csv_cases() -> list[str]:
    rows = []
    for event, user, time in itertools.product(EVENTS, USERS, TIMES):
        if all(isinstance(value, str) for value in (event, user, time)):
            buffer = io.StringIO()
            csv.writer(buffer).writerow([time, user, "x", event])
            rows.append(buffer.getvalue())
    return [*rows, "2026-01-01,1\n", "2026-01-01,1,x,a,extra\n", " \n"]


@pytest.mark.parametrize("orjson", [True, False])
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_the_fast_path_reads_each_line_as_the_first_line_of_a_file(
    monkeypatch: pytest.MonkeyPatch, fmt: str, orjson: bool
) -> None:
    """A line read after one that named its event (the fast path) gives the
    mark or the error it gives as a file's only line (mark_event's checks)."""
    if not orjson:
        monkeypatch.setattr(importer, "_orjson_loads", lambda: None)
    if fmt == "jsonl":
        header: list[str] = []
        primer = [
            json.dumps({"event": event, "user": 1, "time": "2026-01-01"})
            for event in ("a", "é")
        ]
        cases = jsonl_cases()
    else:
        header = ["time,user,other,event\n"]
        primer = ["2026-01-01,1,x,a\n", "2026-01-01,1,x,é\n"]
        cases = csv_cases()
    for max_user_id in (16_777_215, 10):
        for hourly, unique in ((False, False), (True, True)):
            fast = list(
                read_marks(
                    [*header, *primer, *cases],
                    fmt,  # type: ignore[arg-type]
                    hourly,
                    unique,
                    max_user_id,
                )
            )[len(primer) :]
            for line, (_, item) in zip(cases, fast, strict=True):
                if not line.strip():
                    continue
                ((_, alone),) = list(
                    read_marks(
                        [*header, line],
                        fmt,  # type: ignore[arg-type]
                        hourly,
                        unique,
                        max_user_id,
                    )
                )
                assert outcome(item) == outcome(alone), line


def lines_for(max_user_id: int, seed: int) -> list[str]:
    """Lines of three events over three weeks, some malformed. Ids near
    max_user_id (keys of 2 MiB and more) only for event "a" at NOW, so that
    few keys grow that large in the shared Redis."""
    import random

    chosen = random.Random(seed)
    lines = []
    for _ in range(2000):
        when = NOW - timedelta(days=chosen.randrange(21), hours=chosen.randrange(24))
        event = chosen.choice("abc")
        users: list[Any] = [
            chosen.randrange(700),
            chosen.randrange(1 << 16),
            str(chosen.randrange(1 << 12)),
            -1,
            "x",
        ]
        if chosen.random() < 0.2:
            event, when = "a", NOW
            users = [
                str(max_user_id - chosen.randrange(300)),
                max_user_id - chosen.randrange(1 << 12),
                max_user_id,
                max_user_id + 1,
            ]
        time = when.isoformat() if chosen.random() < 0.7 else when.strftime("%Y-%m-%d")
        user = chosen.choice(users)
        lines.append(json.dumps({"event": event, "user": user, "time": time}))
        if chosen.random() < 0.01:
            lines.append("\n")
    return lines


@pytest.mark.parametrize(
    "layout",
    [BITMAPIST, ShardedLayout(3), ShardedLayout(12)],
    ids=["bitmapist", "sharded3", "sharded12"],
)
@pytest.mark.parametrize("max_user_id", [2**24 - 1, 2**26])
@pytest.mark.parametrize("flags", [(False, False), (True, True)])
def test_the_import_writes_what_write_marks_writes(
    client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    layout: Any,
    max_user_id: int,
    flags: tuple[bool, bool],
) -> None:
    """Same keys, bits, skipped lines and count as writing the reader's marks
    one batch at a time with write_marks; small scripts and pages; an
    existing key's TTL kept."""
    monkeypatch.setattr(bulk, "SCRIPT_BYTES", 512)
    monkeypatch.setattr(bulk, "MAX_BATCH", 50)
    monkeypatch.setattr(bulk, "SCRIPT_SETBITS", 50)
    monkeypatch.setattr(importer, "WINDOW", 700)
    hourly, unique = flags
    lines = lines_for(max_user_id, seed=max_user_id + hourly)
    store = Store(client, layout)
    month = layout.key("a", Period.of("month", NOW), 0)

    def prepare() -> None:
        client.flushdb()
        client.setbit(month, 2, 1)
        client.expire(month, 1000)

    prepare()
    result = import_marks(
        store, read_marks(lines, "jsonl", hourly, unique, max_user_id=max_user_id)
    )
    imported = contents(client)
    assert 990 <= client.ttl(month) <= 1000
    prepare()
    marks, skipped = [], []
    for _, item in read_marks(lines, "jsonl", hourly, unique, max_user_id=max_user_id):
        if isinstance(item, MalformedLine):
            skipped.append((item.line, item.reason))
        else:
            marks.append(item)
    for start in range(0, len(marks), 500):
        write_marks(store, marks[start : start + 500], set())
    assert imported == contents(client)
    assert result.imported == len(marks)
    assert [(line.line, line.reason) for line in result.skipped] == skipped


def test_ids_of_a_key_past_the_real_script_size(client: redis.Redis) -> None:
    """max_user_id 2**26: ids 2 KiB apart over 2.5 MiB and the largest id
    (an 8 MiB key, past SCRIPT_BYTES: SETBITs), as write_marks writes them."""
    ids = [*range(0, (1 << 24) + (1 << 22), 2048), 2**26]
    lines = [
        json.dumps({"event": "a", "user": user, "time": "2026-03-14T12:00:00Z"})
        for user in ids
    ]
    result = import_marks(client, read_marks(lines, "jsonl", max_user_id=2**26))
    assert result.imported == len(ids)
    imported = contents(client)
    client.flushdb()
    write_marks(client, [Mark("a", user, NOW, False, False) for user in ids])
    assert imported == contents(client)
    assert client.bitcount(BITMAPIST.key("a", Period.of("day", NOW))) == len(ids)


def test_strict_raises_at_the_first_malformed_line_and_writes_nothing(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even when more good lines than a window come before the bad one."""
    monkeypatch.setattr(importer, "WINDOW", 3)
    good = [
        json.dumps({"event": "a", "user": user, "time": "2026-03-14"})
        for user in range(10)
    ]
    bad = ['{"event": "a", "user": -1, "time": "2026-03-14"}', "{"]
    with pytest.raises(MalformedLine) as raised:
        import_marks(client, read_marks([*good, *bad], "jsonl"), strict=True)
    assert raised.value.line == 11
    assert client.keys("*") == []


def test_a_mark_reader_iterates_and_hands_its_fields_to_the_import(
    client: redis.Redis,
) -> None:
    """What iterating reads, fields() does not, and the import writes the
    rest; a MarkReader of fields read before imports as the reader would."""
    lines = [
        json.dumps({"event": "a", "user": user, "time": "2026-03-14"})
        for user in range(5)
    ]
    reader = read_marks(lines, "jsonl")
    assert isinstance(reader, MarkReader)
    first = next(reader)
    assert first[0] == 1 and isinstance(first[1], Mark)
    assert import_marks(client, reader).imported == 4
    day = BITMAPIST.key("a", Period.of("day", NOW))
    assert sorted(offset for offset in range(8) if client.getbit(day, offset)) == [
        1,
        2,
        3,
        4,
    ]
    fields: Iterator[Any] = iter(list(read_marks(lines, "jsonl").fields()))
    client.flushdb()
    assert import_marks(client, MarkReader(fields, False, False)).imported == 5


def test_a_key_of_another_type_stops_the_import_with_no_scratch_key(
    client: redis.Redis,
) -> None:
    day = BITMAPIST.key("a", Period.of("day", NOW))
    client.rpush(day, "x")
    lines = [
        json.dumps({"event": "a", "user": user, "time": "2026-03-14"})
        for user in range(300)
    ]
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        import_marks(client, read_marks(lines, "jsonl"))
    assert not [key for key in client.keys("*") if b"bitop" in key]
