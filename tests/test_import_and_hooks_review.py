"""Review of 893607c (the rules' teardown hook returns at once when Flask
passes no exception) and 69d9a2c (grouped import, orjson, fast paths).

The first version's defects (a failed request unmarked where exceptions
propagate, one deeply nested line ending the import, the id map's dense ids
out of the file's order) are fixed; the others probe edges that held."""

from __future__ import annotations

import enum
import io
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask, after_this_request, request
from keys import users_by_event
from rules_app import page_app

from flask_bitmapist import FlaskBitmapist
from flask_bitmapist.store.backend import Store
from flask_bitmapist.store.idmap import IdMap
from flask_bitmapist.store.layout import BITMAPIST, to_mark_time
from flask_bitmapist.store.writer import Mark, write_marks
from flask_bitmapist.track import importer
from flask_bitmapist.track.ids import to_user_id
from flask_bitmapist.track.importer import MalformedLine, import_marks, read_marks
from flask_bitmapist.track.signals import event_marked

RULES = """
rules:
  - event: "page:ok"
    endpoint: "page"
    user: query:uid
    status: [200]
  - event: "page:seen"
    endpoint: "page"
    user: query:uid
  - event: "page:failed"
    endpoint: "page"
    user: query:uid
    status: [500]
"""
EVENTS = ("page:ok", "page:seen", "page:failed")


def make_app(redis_url: str, tmp_path: Path, **config: Any) -> Flask:
    app = page_app(redis_url, tmp_path, RULES, "review", **config)
    FlaskBitmapist(app)
    return app


def queued(app: Flask) -> int:
    return int(app.extensions["bitmapist"].state(app).writer.stats().queued)


# --- 893607c: the teardown hook ------------------------------------------------


def test_a_dispatched_request_whose_exception_is_caught_in_its_context_counts_as_500(
    redis_url: str, tmp_path: Path, client: redis.Redis
) -> None:
    """The view ran and raised, the after hooks never ran, and the
    exception was caught inside the context (``pytest.raises`` inside
    ``test_request_context``): Flask pops the context with no exception.
    In testing, where exceptions propagate, the teardown hook still looks,
    and the request counts as 500."""
    app = make_app(redis_url, tmp_path)
    with (
        app.test_request_context("/page?uid=1&explode=1"),
        pytest.raises(RuntimeError, match="the view failed"),
    ):
        app.full_dispatch_request()
    assert users_by_event(client, EVENTS) == {"page:failed": {1}}


def test_should_ignore_error_does_not_hide_a_failed_request_from_the_rules(
    redis_url: str, tmp_path: Path, client: redis.Redis
) -> None:
    """An app whose ``should_ignore_error`` ignores the error (Flask
    then passes teardown hooks ``None``) and whose exception propagates
    (testing): the after hooks never ran, and the request counts as 500,
    as the module's docstring says of an exception that propagates."""
    app = make_app(redis_url, tmp_path)
    app.should_ignore_error = lambda error: True  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="the view failed"):
        app.test_client().get("/page?uid=1&explode=1")
    assert users_by_event(client, EVENTS) == {"page:failed": {1}}


@pytest.mark.parametrize("after_a_first", [False, True])
def test_an_after_this_request_callback_that_keeps_failing_counts_as_500_once(
    redis_url: str, tmp_path: Path, client: redis.Redis, after_a_first: bool
) -> None:
    """Flask passes the teardown hook the callback's error, at the app's
    first request as after it."""
    app = make_app(redis_url, tmp_path, PROPAGATE_EXCEPTIONS=False)

    @app.before_request
    def arm() -> None:
        if request.args.get("bad"):

            @after_this_request
            def broken(response: Any) -> Any:
                raise OSError("callback failed")

    web = app.test_client()
    if after_a_first:
        web.get("/page")
    assert web.get("/page?uid=1&bad=1").status_code == 500
    assert users_by_event(client, EVENTS) == {"page:failed": {1}}
    assert queued(app) == 1


def test_abort_in_an_after_request_function_propagated_counts_as_500(
    redis_url: str, tmp_path: Path, client: redis.Redis
) -> None:
    """A propagated exception from an after_request function."""
    app = make_app(redis_url, tmp_path)

    @app.after_request
    def deny(response: Any) -> Any:
        raise LookupError("after hook failed")

    with pytest.raises(LookupError):
        app.test_client().get("/page?uid=3")
    assert users_by_event(client, EVENTS) == {"page:failed": {3}}


def test_rule_marks_are_sent_by_the_app_and_share_one_time(
    redis_url: str, tmp_path: Path
) -> None:
    """Event_marked's sender is the app, for the after hook's and
    the teardown hook's marks; one request's marks share one time."""
    app = make_app(redis_url, tmp_path)
    seen: list[tuple[Any, str, Any, Any]] = []

    def receiver(sender: Any, **extra: Any) -> None:
        seen.append((sender, extra["event_name"], extra["user_id"], extra["when"]))

    event_marked.connect(receiver)
    try:
        web = app.test_client()
        web.get("/page?uid=5")
        with pytest.raises(RuntimeError):
            web.get("/page?uid=6&explode=1")
    finally:
        event_marked.disconnect(receiver)
    assert [(s is app, e, u) for s, e, u, _ in seen] == [
        (True, "page:ok", 5),
        (True, "page:seen", 5),
        (True, "page:failed", 6),
    ]
    assert seen[0][3] is seen[1][3]


# --- 69d9a2c: reading --------------------------------------------------------

LINE = '{"event": "e", "user": 1, "time": "2026-01-01T00:00:00Z"'


def read(lines: list[str], orjson: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as patched:
        if not orjson:
            patched.setattr(importer, "_orjson_loads", lambda: None)
        try:
            return [repr(item) for item in read_marks(lines, "jsonl")]
        except RecursionError as error:
            return f"RecursionError: {error}"


def test_a_deeply_nested_line_is_a_malformed_line_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Orjson refuses depth > 1024 and hands the line to json, whose
    RecursionError is no ValueError: the line is reported and skipped, not
    the end of the import (README: "A malformed line is reported with its
    number and skipped")."""
    lines = ["[" * 100_000 + "\n", LINE + "}\n"]
    result = read(lines, True, monkeypatch)
    assert isinstance(result, list), result
    assert "MalformedLine" in result[0]


def test_a_deep_extra_field_is_the_one_line_orjson_and_json_may_read_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A valid line whose ignored extra field nests 1,010 deep: orjson
    (limit 1,024) reads it into a mark; json reads it on Python 3.12 and
    later (limits of 1,497 and 9,998 levels), and on 3.10 and 3.11 (995)
    gives a malformed line, not a crash: the documented exception to "the
    same mark, or the same error, with or without orjson"."""
    depth = 1_010
    lines = [LINE + ', "x": ' + "[" * depth + "]" * depth + "}\n"]
    with_orjson = read(lines, True, monkeypatch)
    assert isinstance(with_orjson, list) and "Mark(event_name='e'" in with_orjson[0]
    expected = (
        with_orjson
        if sys.version_info >= (3, 12)
        else [repr((1, MalformedLine(1, "invalid JSON: nested too deeply")))]
    )
    assert read(lines, False, monkeypatch) == expected


class Level(enum.IntEnum):
    LOW = 3


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
@pytest.mark.parametrize("id_map", [False, True])
@pytest.mark.parametrize(
    "user",
    [0, 1, 16_777_215, 16_777_216, -1, True, False, Level.LOW, 2**64, "7", "007"],
)
def test_the_fast_id_path_gives_what_to_user_id_gives(
    user: Any, id_map: bool, fmt: str
) -> None:
    """The importer's fast path (taken once a line has named the event)
    reads an id as to_user_id reads what the line holds."""
    time = "2026-01-01T00:00:00Z"
    if fmt == "jsonl":
        lines = [
            json.dumps({"event": "e", "user": 1, "time": time}),
            json.dumps({"event": "e", "user": user, "time": time}),
        ]
        held = json.loads(lines[1])["user"]
    else:
        held = str(int(user)) if isinstance(user, int) else user
        lines = ["event,user,time", f"e,1,{time}", f"e,{held},{time}"]
    _, item = list(read_marks(lines, fmt, id_map=id_map))[1]  # type: ignore[arg-type]
    try:
        want = to_user_id("e", held, max_user_id=16_777_215, id_map=id_map)
    except ValueError as error:
        assert isinstance(item, MalformedLine)
        assert item.reason == str(error).rstrip(".")
    else:
        assert isinstance(item, Mark)
        assert item.user_id == want
        assert type(item.user_id) is type(want)


#: Times in UTC, naive, in other offsets, at and beyond the years marks may
#: have.
TIMES = [
    "2026-03-14T15:09:26.535897Z",
    "2026-03-14T15:09:26z",
    "2026-03-14T15:09:26+00:00",
    "2026-03-14T15:09:26-00:00",
    "2026-03-14T15:09:26+00:00:00",
    "2026-03-14T15:09:26",
    "2026-03-14",
    "1970-01-01T00:00:00Z",
    "2099-12-31T23:59:59.999999Z",
    "2100-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "2099-12-31T23:00:00-01:00",
    "1970-01-01T00:30:00+01:00",
    "0001-01-01T00:00:00+00:00",
    "9999-12-31T23:59:59-23:59",
]


@pytest.mark.parametrize("text", TIMES)
def test_parse_time_fast_path_gives_what_converting_gives(text: str) -> None:
    """A UTC time checked by its year gives the slow path's answer."""

    def outcome(call: Any) -> Any:
        try:
            when = call()
        except ValueError:
            return "error"
        return (when, when.utcoffset(), type(when))

    slow_text = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    assert outcome(lambda: importer.parse_time(text)) == outcome(
        lambda: to_mark_time(datetime.fromisoformat(slow_text))
    )


@pytest.mark.parametrize("text", TIMES)
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_the_readers_fast_path_reads_times_as_parse_time(text: str, fmt: str) -> None:
    """Once a line has named the event, the reader's own reading of a time
    gives parse_time's answer: the same instant in UTC, or the same error."""
    lines = (
        [json.dumps({"event": "e", "user": 1, "time": t}) for t in ("2026-01-01", text)]
        if fmt == "jsonl"
        else ["event,user,time", "e,1,2026-01-01", f"e,1,{text}"]
    )
    _, item = list(read_marks(lines, fmt))[1]  # type: ignore[arg-type]
    try:
        want = importer.parse_time(text)
    except ValueError as error:
        assert isinstance(item, MalformedLine)
        assert item.reason == str(error).rstrip(".")
    else:
        assert isinstance(item, Mark)
        assert (item.when, type(item.when), item.when.tzinfo) == (
            want,
            type(want),
            want.tzinfo,
        )


@pytest.mark.parametrize("value", [0, 1.5, None, b"2026-01-01", ["2026-01-01"]])
def test_parse_time_refuses_what_is_not_a_str(value: Any) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        importer.parse_time(value)


# --- 69d9a2c: grouping -------------------------------------------------------


def test_windows_and_batches_with_skipped_lines_hourly_and_unique(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small WINDOW and BATCH, bad lines (out of years, bad ids)
    mixed in: the count, the skipped lines in order, and Redis as writing
    the marks one by one leaves it."""
    monkeypatch.setattr(importer, "BATCH", 3)
    monkeypatch.setattr(importer, "WINDOW", 5)
    lines = []
    for number in range(40):
        event = "ab"[number % 2]
        day = 1 + number % 3
        if number % 7 == 3:
            lines.append(json.dumps({"event": event, "user": 1, "time": "2100-01-01"}))
        elif number % 11 == 5:
            lines.append(json.dumps({"event": event, "user": -1, "time": "2026-01-01"}))
        else:
            lines.append(
                json.dumps(
                    {
                        "event": event,
                        "user": number,
                        "time": f"2026-01-0{day}T1{day}:00Z",
                    }
                )
            )
    text = "\n".join(lines) + "\n"
    marks = list(read_marks(io.StringIO(text), "jsonl", True, True))
    result = import_marks(client, iter(marks))
    good = [mark for _, mark in marks if isinstance(mark, Mark)]
    assert result.imported == len(good)
    assert [line.line for line in result.skipped] == [
        number for number, mark in marks if not isinstance(mark, Mark)
    ]
    imported = {key: client.get(key) for key in client.keys("*")}
    client.flushdb()
    for mark in good:
        write_marks(client, [mark])
    assert {key: client.get(key) for key in client.keys("*")} == imported


def test_with_the_id_map_dense_ids_follow_the_order_of_the_file(
    client: redis.Redis,
) -> None:
    """The id map gives dense ids "in the order the map first meets"
    an id (README), and get_users lists mapped ids in the order of their
    dense ids: with the map, the import keeps the order of the file rather
    than grouping by event and day."""
    lines = [
        '{"event": "a", "user": "alice", "time": "2026-01-01T00:00:00Z"}\n',
        '{"event": "b", "user": "bob", "time": "2026-01-01T00:00:00Z"}\n',
        '{"event": "a", "user": "carol", "time": "2026-01-01T00:00:00Z"}\n',
    ]
    store = Store(client, BITMAPIST, IdMap())
    import_marks(store, read_marks(lines, "jsonl", id_map=True))
    dense = {
        key.decode(): int(value)
        for key, value in client.hgetall("trackist:ids:fwd").items()
    }
    assert sorted(dense, key=dense.__getitem__) == ["alice", "bob", "carol"]
