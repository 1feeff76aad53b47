"""What a review of the cheaper request path (bb932ab) found: requests that
share one app context, after_request functions that fail, apps whose own
before_request answers, a wake of the writer that loses the race to it, and
that a grouped batch writes what its marks write one by one. Each of the
first four failed on bb932ab."""

from __future__ import annotations

import linecache
import random
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask, abort, request
from keys import day_key, users_by_event
from keys import users as key_users
from rules_app import page_app

from flask_bitmapist import FlaskBitmapist, mark_event
from flask_bitmapist.store.writer import Mark, PartialWrite, mark_periods, write_marks
from flask_bitmapist.track.ids import to_user_id

AFTER_RULES = """
rules:
  - event: "page:ok"
    endpoint: page
    user: query:uid
    status: [200]
  - event: "page:failed"
    endpoint: page
    user: query:uid
    status: [500]
  - event: "page:unavailable"
    endpoint: page
    user: query:uid
    status: [503]
"""
# An unrelated before rule: all it changes is that the extension installs its
# before_request hook ("mode B").
BEFORE_RULE = """
  - event: "other:seen"
    endpoint: other
    user: query:uid
    when: before
"""
EVENTS = ("page:ok", "page:failed", "page:unavailable")
MODES = ("after rules only", "with a before rule")


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _app(
    redis_url: str, tmp_path: Path, mode: str, name: str = "review", **config: Any
) -> Flask:
    rules = AFTER_RULES + (BEFORE_RULE if mode == MODES[1] else "")
    return page_app(redis_url, tmp_path, rules, name, **config)


@pytest.fixture
def marked(client: redis.Redis) -> Callable[[], dict[str, set[int]]]:
    """The users marked today, by event."""
    return lambda: users_by_event(client, EVENTS)


@pytest.fixture
def make_rules_app(redis_url: str, tmp_path: Path, mode: str) -> Callable[..., Flask]:
    def factory(**config: Any) -> Flask:
        return _app(redis_url, tmp_path, mode, **config)

    return factory


# --- rules hooks ----------------------------------------------------------


def test_every_request_in_one_app_context_is_marked(
    make_rules_app: Callable[..., Flask], marked: Any
) -> None:
    """Requests made while an app context of the same app is pushed share
    that context's ``g`` (Flask reuses it): what the hooks keep about a
    request lives on the request."""
    app = make_rules_app()
    FlaskBitmapist(app)
    web = app.test_client()
    with app.app_context():
        assert web.get("/page?uid=1").status_code == 200
        assert web.get("/page?uid=2").status_code == 200
        assert web.get("/page?uid=3").status_code == 200
    assert marked() == {"page:ok": {1, 2, 3}}


@pytest.mark.parametrize("propagate", [True, False])
def test_a_session_that_fails_to_save_keeps_the_status_its_response_had(
    make_rules_app: Callable[..., Flask], marked: Any, propagate: bool
) -> None:
    """Flask saves the session after every after_request function, so the
    request is marked, once, with the status its response had (the
    documented limit: only a request_finished receiver, which costs every
    request 3.6 us, would see the failure)."""
    app = make_rules_app(SECRET_KEY="s", PROPAGATE_EXCEPTIONS=propagate)
    FlaskBitmapist(app)

    class FailingSessions(type(app.session_interface)):  # type: ignore[misc]
        def save_session(self, *args: Any) -> None:
            raise OSError("the session store is down")

    app.session_interface = FailingSessions()
    web = app.test_client()
    if propagate:
        with pytest.raises(OSError, match="the session store is down"):
            web.get("/page?uid=1")
    else:
        assert web.get("/page?uid=1").status_code == 500
    assert marked() == {"page:ok": {1}}
    assert app.extensions["bitmapist"].state(app).writer.stats().queued == 1


@pytest.mark.parametrize("after_a_first", [False, True])
def test_an_after_request_function_that_raises_counts_as_500(
    make_rules_app: Callable[..., Flask], marked: Any, after_a_first: bool
) -> None:
    """Without propagation Flask answers an exception of an after_request
    function with 500, running the after_request functions again: the one
    that raised raises again before the extension's (which runs last), so
    the extension's never runs, and its teardown hook marks the 500, at the
    app's first request as after it."""
    app = make_rules_app(PROPAGATE_EXCEPTIONS=False)
    FlaskBitmapist(app)

    @app.after_request
    def broken(response: Any) -> Any:
        if request.args.get("fail"):
            raise RuntimeError("the hook failed")
        return response

    web = app.test_client()
    if after_a_first:
        web.get("/page")
    assert web.get("/page?uid=1&fail=1").status_code == 500
    assert web.get("/page?uid=2").status_code == 200
    assert marked() == {"page:failed": {1}, "page:ok": {2}}


def _short_circuit_app(redis_url: str, tmp_path: Path, mode: str) -> Flask:
    app = _app(redis_url, tmp_path, mode, name=mode.replace(" ", "-"))

    # The app's own guard, registered before the extension (an app factory
    # that sets up its hooks before its extensions).
    @app.before_request
    def maintenance() -> Any:
        if request.args.get("down"):
            abort(503)
        return None

    FlaskBitmapist(app)
    return app


def test_a_before_request_that_answers_is_marked_alike_in_both_modes(
    redis_url: str, tmp_path: Path, marked: Any
) -> None:
    """The same after rule, on the same request answered 503 by the app's
    before_request, registered before the extension: marked whether or not
    an unrelated ``when: before`` rule makes the extension install its before
    hook (which never runs here)."""
    only_after = _short_circuit_app(redis_url, tmp_path, MODES[0])
    with_before = _short_circuit_app(redis_url, tmp_path, MODES[1])
    assert only_after.test_client().get("/page?uid=1&down=1").status_code == 503
    assert with_before.test_client().get("/page?uid=2&down=1").status_code == 503
    assert marked() == {"page:unavailable": {1, 2}}


# --- the background writer's hand-off -------------------------------------


NOW = datetime(2026, 3, 14, 15, 9, tzinfo=timezone.utc)


def _wait_until_idle(writer: Any) -> None:
    """Until the writer thread waits in ``_next_batch`` for marks."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        top = frame = sys._current_frames().get(writer._thread.ident)
        names = []
        while frame is not None:
            names.append(frame.f_code.co_name)
            frame = frame.f_back
        if (
            top is not None
            and names[:2] == ["wait", "_next_batch"]
            and "waiter.acquire("
            in linecache.getline(top.f_code.co_filename, top.f_lineno)
        ):
            return
        time.sleep(0.001)
    raise AssertionError("the writer never went back to waiting")


def test_a_wake_that_loses_the_race_to_the_writer_leaves_it_asleep(
    make_app: Any, client: redis.Redis
) -> None:
    """A request thread reads ``_wake_requested`` without the lock, and then
    sets it under the lock whether or not the writer took the batch in
    between (here a flush takes it; the flush_interval timeout or another
    thread's wake do the same). The flag then stays set over an empty
    queue: the next flush_at marks wake nobody, and wait for flush_interval
    (an hour here). Before bb932ab the thread that made the queue cross
    flush_at woke the writer under the lock. The request thread is held at
    the start of ``_wake`` by a trace function, to make the interleaving
    certain."""
    app = make_app(write_mode="background", flush_interval=3600, flush_at=2)
    writer = app.extensions["bitmapist"].state(app).writer
    with app.app_context():
        mark_event("played", 0, now=NOW)
        assert writer.flush(10)
    at_wake = threading.Event()
    go_on = threading.Event()

    # Where a request thread decides to wake the writer, before it takes the
    # lock (the code before bb932ab decided under the lock, in submit_many).
    hold_at = "_wake" if hasattr(type(writer), "_wake") else "submit_many"

    def hold_in_wake(frame: Any, event: str, arg: Any) -> Any:
        if event == "call" and frame.f_code.co_name == hold_at:
            at_wake.set()
            go_on.wait(10)
        return None

    def request_thread() -> None:
        sys.settrace(hold_in_wake)
        try:
            with app.app_context():
                mark_event("played", 2, now=NOW)
        finally:
            sys.settrace(None)

    with app.app_context():
        mark_event("played", 1, now=NOW)
    thread = threading.Thread(target=request_thread)
    thread.start()
    # The thread filled the queue to flush_at and saw no wake requested.
    assert at_wake.wait(10)
    # Meanwhile the writer takes the batch (through a flush), writes it, and
    # goes back to waiting for the next one.
    assert writer.flush(10)
    _wait_until_idle(writer)
    go_on.set()
    thread.join(10)
    # Its late wake woke the writer, which found nothing and waits again.
    time.sleep(0.1)
    _wait_until_idle(writer)
    with app.app_context():
        mark_event("played", 3, now=NOW)
        mark_event("played", 4, now=NOW)
    # flush_at marks are waiting: the writer must take them, without flush.
    deadline = time.monotonic() + 5
    while writer.stats().pending >= 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    # Fewer than flush_at marks may wait for flush_interval; not flush_at.
    assert writer.stats().pending < 2, (
        f"the writer sleeps with {len(writer._queue)} marks queued "
        f"(flush_at 2), _wake_requested={getattr(writer, '_wake_requested', None)}"
    )
    assert writer.flush(10)
    assert set(key_users(client, day_key("played", NOW))) == {0, 1, 2, 3, 4}


# --- write_marks' grouping: a batch writes what its marks one by one write --


def _marks(prefix: str, rng: random.Random, ids: list[Any]) -> list[Mark]:
    base = datetime(2026, 2, 27, 22, 30, tzinfo=timezone.utc)
    marks = []
    for _ in range(300):
        when = base + timedelta(hours=rng.choice([0, 1, 2, 30, 800]))
        if rng.random() < 0.03:
            when = datetime(2100, 1, 1, 0, 5, tzinfo=timezone.utc)
        marks.append(
            Mark(
                f"{prefix}{rng.choice('ab')}",
                rng.choice(ids),
                when,
                rng.random() < 0.5,
                rng.random() < 0.5,
                0 if rng.random() < 0.2 else 1,
            )
        )
    return marks


@pytest.mark.parametrize("id_map", [False, True])
def test_a_batch_writes_what_its_marks_write_one_by_one(
    make_store_app: Any, id_map: bool
) -> None:
    """Holds (bitmapist, sharded, cluster; with and without the id map):
    grouped and mark-by-mark (clearing) batches, out-of-years marks mixed in,
    hourly and unique flags mixed, a generator as input."""
    app = make_store_app(id_map=id_map)
    store = app.extensions["bitmapist"].state(app).store
    rng = random.Random(1)
    ids: list[Any] = list(range(40))
    if id_map:
        ids = [to_user_id("e", f"user-{n}", id_map=True) for n in range(40)]
    clearing = _marks("b", rng, ids)
    setting = [mark._replace(value=1) for mark in clearing]

    def write(marks: list[Mark]) -> None:
        try:
            write_marks(store, iter(marks))
        except PartialWrite as partial:
            assert all(mark.when.year == 2100 for mark in partial.refused)

    def renamed(marks: list[Mark], prefix: str) -> list[Mark]:
        return [
            mark._replace(event_name=prefix + mark.event_name[1:]) for mark in marks
        ]

    # (batch prefix, one-by-one prefix, marks)
    cases = [("b", "s", clearing), ("c", "d", setting)]
    for batch_prefix, single_prefix, marks in cases:
        write(renamed(marks, batch_prefix))
        for mark in renamed(marks, single_prefix):
            write([mark])
    layout, redis_client = store.layout, store.client
    pairs = {
        (
            layout.key(batch_prefix + mark.event_name[1:], period, shard),
            layout.key(single_prefix + mark.event_name[1:], period, shard),
        )
        for batch_prefix, single_prefix, marks in cases
        for mark in marks
        if mark.when.year != 2100
        for period in mark_periods(mark)
        for shard in range(8)
    }
    for batch_key, single_key in pairs:
        assert redis_client.get(batch_key) == redis_client.get(single_key)
