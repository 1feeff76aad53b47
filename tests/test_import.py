"""flask bitmapist import: JSON Lines and CSV, from a file or stdin, into the
keys mark_event writes. The tests of bitmapist's keys, and of imports that
write nothing, run on ``app``; those of what got imported, read back through
the queries, on each of conftest.STORES (``store_app``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from keys import bitmap

from flask_bitmapist import EventSet, get_event_data, list_event_names
from flask_bitmapist.store.layout import BITMAPIST
from flask_bitmapist.testing import free_port

T0 = datetime(2026, 3, 14, 15, 9, tzinfo=timezone.utc)


def snapshot(client: redis.Redis) -> dict[bytes, bytes]:
    return {key: client.get(key) for key in client.keys("*")}  # type: ignore[misc]


def store_snapshot(app: Flask) -> dict[bytes, bytes]:
    """Every key of the app's store (on a cluster, of every primary), with
    its value."""
    client = app.extensions["bitmapist"].state(app).client
    if isinstance(client, redis.RedisCluster):
        keys = client.keys("*", target_nodes=client.PRIMARIES)
    else:
        keys = client.keys("*")
    return {key: client.get(key) for key in keys}  # type: ignore[misc]


def invoke(app: Flask, *args: str, input: str | None = None) -> Any:
    return app.test_cli_runner().invoke(
        args=["bitmapist", "import", *args], input=input
    )


def jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


EVENTS = [
    {"event": "song:played", "user": 3, "time": "2026-03-14T15:09:00Z"},
    {"event": "song:played", "user": "7", "time": "2026-03-14T23:30:00-05:00"},
    {"event": "song:liked", "user": 3, "time": "2025-12-31T12:00:00"},
]


def spelled_ids(hourly: bool = False, unique: bool = False) -> dict[str, list[int]]:
    """The users of each key (after ``trackist_``) that ``bitmapist.mark_event``
    writes for EVENTS. 2026-03-14T23:30:00-05:00 is 2026-03-15 04:30 UTC;
    2025-12-31 is in ISO week 1 of 2026."""
    ids = {
        "song:played_2026-3": [3, 7],
        "song:played_W2026-11": [3, 7],
        "song:played_2026-3-14": [3],
        "song:played_2026-3-15": [7],
        "song:liked_2025-12": [3],
        "song:liked_W2026-1": [3],
        "song:liked_2025-12-31": [3],
    }
    if hourly:
        ids |= {
            "song:played_2026-3-14-15": [3],
            "song:played_2026-3-15-4": [7],
            "song:liked_2025-12-31-12": [3],
        }
    if unique:
        ids |= {"song:played_u": [3, 7], "song:liked_u": [3]}
    return ids


def spelled_snapshot(hourly: bool = False, unique: bool = False) -> dict[bytes, bytes]:
    """The keys and bits that ``bitmapist.mark_event`` writes for EVENTS."""
    return {
        f"trackist_{name}".encode(): bitmap(bits)
        for name, bits in spelled_ids(hourly, unique).items()
    }


def read_back(app: Flask) -> dict[str, list[int]]:
    """The users of each event and period that an import of EVENTS may write
    (hours and unique included), named as in :func:`spelled_ids` and read
    back through the queries from the app's store, whatever its layout; the
    empty ones are left out."""
    store = app.extensions["bitmapist"].state(app).store
    found = {}
    for name in spelled_ids(hourly=True, unique=True):
        parsed = BITMAPIST.parse(f"trackist_{name}")
        assert parsed is not None
        if ids := list(EventSet.of_period(*parsed, store)):
            found[name] = ids
    return found


def event_names(app: Flask) -> list[str]:
    with app.app_context():
        return list_event_names()


def reference_snapshot(
    other_redis_url: str, hourly: bool = False, unique: bool = False
) -> dict[bytes, bytes]:
    """What ``bitmapist.mark_event`` writes for EVENTS, in a second db."""
    import bitmapist

    reference = redis.Redis.from_url(other_redis_url)
    for record, when in zip(
        EVENTS,
        [
            T0,
            datetime(2026, 3, 15, 4, 30, tzinfo=timezone.utc),
            datetime(2025, 12, 31, 12, tzinfo=timezone.utc),
        ],
        strict=True,
    ):
        bitmapist.mark_event(
            record["event"],
            int(record["user"]),
            system=reference,
            now=when,
            track_hourly=hourly,
            track_unique=unique,
        )  # type: ignore[arg-type]
    return snapshot(reference)


Expected = Callable[..., dict[bytes, bytes]]


@pytest.fixture(
    params=["spelled out", pytest.param("bitmapist", marks=pytest.mark.bitmapist)]
)
def expected(request: pytest.FixtureRequest, other_redis_url: str) -> Expected:
    """``expected(hourly=..., unique=...)``: what the import of EVENTS must
    write, spelled out, or as ``bitmapist.mark_event`` writes it."""
    if request.param == "bitmapist":
        return lambda **flags: reference_snapshot(other_redis_url, **flags)
    return spelled_snapshot


@pytest.mark.bitmapist
@pytest.mark.parametrize(("hourly", "unique"), [(False, False), (True, True)])
def test_the_spelled_out_keys_are_what_bitmapist_writes(
    other_redis_url: str, hourly: bool, unique: bool
) -> None:
    assert reference_snapshot(other_redis_url, hourly, unique) == spelled_snapshot(
        hourly, unique
    )


def test_jsonl_file_writes_the_keys_of_mark_event(
    app: Flask, client: redis.Redis, expected: Expected, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(jsonl(EVENTS))
    result = invoke(app, str(path))
    assert result.exit_code == 0, result.output
    assert "Imported 3 events; skipped 0 lines." in result.stdout
    assert snapshot(client) == expected()


def test_hourly_and_unique_keys_on_request(
    app: Flask, client: redis.Redis, expected: Expected, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(jsonl(EVENTS))
    assert invoke(app, str(path), "--track-hourly", "--track-unique").exit_code == 0
    assert snapshot(client) == expected(hourly=True, unique=True)


def test_csv_from_stdin_with_columns_in_any_order(store_app: Flask) -> None:
    rows = ["time,user,event,extra"] + [
        f"{e['time']},{e['user']},{e['event']},x" for e in EVENTS
    ]
    result = invoke(store_app, "-", input="\n".join(rows) + "\n")
    assert result.exit_code == 0, result.output
    assert read_back(store_app) == spelled_ids()
    assert event_names(store_app) == ["song:liked", "song:played"]


def test_jsonl_from_stdin_is_detected(store_app: Flask) -> None:
    result = invoke(store_app, "-", input=jsonl(EVENTS))
    assert result.exit_code == 0, result.output
    assert read_back(store_app) == spelled_ids()
    assert event_names(store_app) == ["song:liked", "song:played"]


def test_reimporting_leaves_redis_unchanged(store_app: Flask, tmp_path: Path) -> None:
    app = store_app
    path = tmp_path / "events.jsonl"
    path.write_text(jsonl(EVENTS))
    invoke(app, str(path))
    first = store_snapshot(app)
    assert invoke(app, str(path)).exit_code == 0
    assert store_snapshot(app) == first


def test_malformed_lines_are_reported_and_skipped(
    store_app: Flask, tmp_path: Path
) -> None:
    app = store_app
    path = tmp_path / "events.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps(EVENTS[0]),
                "{not json",
                json.dumps(
                    {"event": "song:played", "user": -1, "time": "2026-03-14T00:00:00"}
                ),
                "",
                json.dumps(
                    {"event": "two words", "user": 1, "time": "2026-03-14T00:00:00"}
                ),
                json.dumps({"event": "song:played", "user": 1, "time": "yesterday"}),
                json.dumps({"event": "song:played", "time": "2026-03-14T00:00:00"}),
                json.dumps([1, 2]),
                json.dumps(EVENTS[1]),
            ]
        )
        + "\n"
    )
    result = invoke(app, str(path))
    assert result.exit_code == 1
    assert [
        line for line in result.stderr.splitlines() if line.startswith("skipped")
    ] == [
        "skipped line 2: invalid JSON: Expecting property name enclosed in double quotes",
        "skipped line 3: User id for event 'song:played' must be from 0 to 16777215 (BITMAPIST_MAX_USER_ID; set BITMAPIST_ID_MAP = True to use any int), got -1",
        "skipped line 5: Event name must not contain whitespace or control characters, got 'two words'",
        "skipped line 6: time must be an ISO 8601 string, got 'yesterday'",
        "skipped line 7: missing user",
        "skipped line 8: expected an object with event, user and time, got [1, 2]",
    ]
    assert "Imported 2 events; skipped 6 lines." in result.stdout
    # EVENTS[0] and EVENTS[1]: both plays, and nothing else.
    assert read_back(app) == {
        name: ids
        for name, ids in spelled_ids().items()
        if name.startswith("song:played_")
    }
    assert event_names(app) == ["song:played"]


def test_strict_stops_at_the_first_bad_line_and_writes_nothing(
    app: Flask, client: redis.Redis, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(jsonl(EVENTS[:2]) + "oops\n" + jsonl(EVENTS[2:]))
    result = invoke(app, str(path), "--strict")
    assert result.exit_code == 1
    assert (
        "Error: line 3: invalid JSON: Expecting value; nothing was imported (--strict)."
        in result.stderr
    )
    assert client.keys("*") == []


def test_a_csv_without_the_columns_is_one_error(
    app: Flask, client: redis.Redis, tmp_path: Path
) -> None:
    path = tmp_path / "events.csv"
    path.write_text("event,who,when\nsong:played,1,2026-03-14\n")
    result = invoke(app, str(path))
    assert result.exit_code == 1
    assert "skipped line 1: the CSV header lacks user, time" in result.stderr
    assert client.keys("*") == []


def test_large_files_go_in_several_batches(make_store_app: Any, tmp_path: Path) -> None:
    # Shards of 256 ids in the sharded stores: 98 shards, each batch of
    # 10,000 marks ending inside one that the next batch continues (the
    # tests' usual 8 ids would make 3,125 shards, and seconds of runtime).
    app = make_store_app(shard_bits=8)
    path = tmp_path / "big.jsonl"
    times = [(T0 - timedelta(days=n % 3)).isoformat() for n in range(25_000)]
    path.write_text(
        "".join(
            json.dumps({"event": "e", "user": n, "time": t}) + "\n"
            for n, t in enumerate(times)
        )
    )
    result = invoke(app, str(path))
    assert result.exit_code == 0, result.output
    assert "Imported 25000 events" in result.stdout
    with app.app_context():
        assert len(get_event_data("e", "month", now=T0)) == 25_000
        assert len(get_event_data("e", "day", now=T0)) == 8334


def test_redis_unreachable_is_one_line_without_a_traceback(
    make_app: Any, tmp_path: Path
) -> None:
    app = make_app(redis_url=f"redis://127.0.0.1:{free_port()}")
    path = tmp_path / "events.jsonl"
    path.write_text(jsonl(EVENTS))
    result = invoke(app, str(path))
    assert result.exit_code == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("Error: Redis is unreachable: Error 111")
    )
    assert "Traceback" not in result.output


def test_ids_above_the_maximum_are_malformed_lines(
    make_app: Any, client: redis.Redis
) -> None:
    records = [
        {"event": "song:played", "user": 2**24 - 1, "time": "2026-03-14T15:09:00Z"},
        {"event": "song:played", "user": 2**24, "time": "2026-03-14T15:09:00Z"},
    ]
    result = invoke(make_app(), "-", input=jsonl(records))
    assert result.exit_code == 1
    assert (
        "skipped line 2: User id for event 'song:played' must be from 0 to 16777215 "
        "(BITMAPIST_MAX_USER_ID; set BITMAPIST_ID_MAP = True to use any int), got 16777216"
        in result.output
    )
    assert "Imported 1 events; skipped 1 lines." in result.output
    key = "trackist_song:played_2026-3-14"
    assert client.getbit(key, 2**24 - 1) == 1
    assert client.strlen(key) == 2 * 1024 * 1024

    raised = invoke(
        make_app(name="raised", max_user_id=2**24), "-", input=jsonl(records)
    )
    assert raised.exit_code == 0, raised.output
    assert client.getbit(key, 2**24) == 1
