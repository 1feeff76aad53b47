"""Review of c1ffff2 (the request path with fewer Python calls).

That commit took the rules' teardown hook out where Flask answers
exceptions itself, at the app's first request, and had a receiver of
``got_request_exception`` mark as 500 a request whose exception came out of
``process_response``. The teardown hook was the one place that saw every
request whose after hook never ran; the receiver saw only some of them, and
marked the ones it saw before their status was known. The first tests
failed on c1ffff2 (the teardown hook is back): a view's error whose 500 an
after function fails, a 500 handler that raises, a BaseException, an app
switched to testing after its first request, and an after function that
fails once on a request whose error handler or hooks send another status.
The others probe edges that held: ids (IntEnum, bool, the bounds), statuses
outside 100 to 599, blueprints, one extension serving two apps, apps
collected, ``unmark_event`` and ``event_marked``, ``system=`` and marks
outside an app.
"""

from __future__ import annotations

import enum
import gc
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Blueprint, Flask, g, request
from keys import day_key, users, users_by_event
from rules_app import page_app

from flask_bitmapist import FlaskBitmapist, mark, mark_event, unmark_event
from flask_bitmapist.track.signals import event_marked

RULES = """
rules:
  - event: "page:ok"
    endpoint: "*page"
    user: query:uid
    status: [200]
  - event: "page:failed"
    endpoint: "*page"
    user: query:uid
    status: [500]
  - event: "page:unavailable"
    endpoint: "*page"
    user: query:uid
    status: [503]
  - event: "page:missing"
    path: "/nowhere"
    user: query:uid
    status: [404]
"""
# An unrelated before rule: all it changes is that the extension installs
# its before_request hook, which runs the first request's setup before the
# view.
BEFORE_RULE = """
  - event: "other:seen"
    endpoint: other
    user: query:uid
    when: before
"""
EVENTS = ("page:ok", "page:failed", "page:unavailable", "page:missing")
MODES = ("after rules only", "with a before rule")
NOW = datetime(2026, 3, 14, 15, 9, tzinfo=timezone.utc)

Marked = Callable[[], dict[str, set[int]]]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_rules_app(redis_url: str, tmp_path: Path, mode: str) -> Callable[..., Flask]:
    """``page_app`` with :data:`RULES` (and a before rule in the second
    mode), without the extension yet, so a test can add hooks first."""

    def factory(rules: str = RULES, **config: Any) -> Flask:
        text = rules + (BEFORE_RULE if mode == MODES[1] else "")
        return page_app(redis_url, tmp_path, text, "calls", **config)

    return factory


@pytest.fixture
def marked(client: redis.Redis) -> Marked:
    """The users marked today, by event."""
    return lambda: users_by_event(client, EVENTS)


def queued(app: Flask) -> int:
    return int(app.extensions["bitmapist"].state(app).writer.stats().queued)


AFTER_A_FIRST_REQUEST = pytest.mark.parametrize("after_a_first", [False, True])


# --- Defects: requests the removed teardown hook used to mark ---------------


@AFTER_A_FIRST_REQUEST
def test_a_view_error_whose_500_an_after_function_fails_counts_as_500(
    make_rules_app: Callable[..., Flask], marked: Marked, after_a_first: bool
) -> None:
    """The view raises; Flask answers 500 and runs the after functions on
    it with ``from_error_handler=True``; one of them (it reads what the view
    would have left on ``g``) fails there, so Flask logs it and sends the
    500 without the extension's after hook. The request's after functions
    never finished: the README says it counts as 500. The exception came
    from the view, not from ``process_response``, so the receiver skips it,
    and the teardown hook that marked it is gone."""
    app = make_rules_app(PROPAGATE_EXCEPTIONS=False)
    FlaskBitmapist(app)

    @app.after_request
    def audit(response: Any) -> Any:
        response.headers["X-Rendered"] = g.rendered  # unset when the view raised
        return response

    @app.before_request
    def start() -> None:
        if not request.args.get("explode"):
            g.rendered = "yes"

    web = app.test_client()
    if after_a_first:
        assert web.get("/page").status_code == 200
    assert web.get("/page?uid=1&explode=1").status_code == 500
    assert web.get("/page?uid=2").status_code == 200
    assert marked() == {"page:failed": {1}, "page:ok": {2}}
    assert queued(app) == 2


@AFTER_A_FIRST_REQUEST
def test_a_500_handler_that_raises_counts_the_request_as_500(
    make_rules_app: Callable[..., Flask], marked: Marked, after_a_first: bool
) -> None:
    """Flask calls the 500 handler for the view's error; the handler raises,
    so the exception leaves ``wsgi_app`` and no after function runs. Flask
    passes the view's error to the teardown hooks, but the extension's is
    gone, and the receiver skips an error that did not come from
    ``process_response``."""
    app = make_rules_app(PROPAGATE_EXCEPTIONS=False)
    FlaskBitmapist(app)

    def broken_handler(error: Exception) -> Any:
        raise LookupError("the error page failed")

    app.register_error_handler(500, broken_handler)
    web = app.test_client()
    if after_a_first:
        assert web.get("/page").status_code == 200
    with pytest.raises(LookupError, match="the error page failed"):
        web.get("/page?uid=1&explode=1")
    assert marked() == {"page:failed": {1}}
    assert queued(app) == 1


class _Stop(BaseException):
    """Not an Exception, as gevent's Timeout or asyncio's CancelledError."""


@AFTER_A_FIRST_REQUEST
def test_a_base_exception_from_the_view_counts_as_500(
    make_rules_app: Callable[..., Flask], marked: Marked, after_a_first: bool
) -> None:
    """Flask does not answer a BaseException: it passes it to the teardown
    hooks and lets it go. A view that raises counts as 500 (module
    docstring): the teardown hook that did so is gone."""
    app = make_rules_app(PROPAGATE_EXCEPTIONS=False)

    @app.get("/stop/page")
    def stop_page() -> str:
        raise _Stop()

    FlaskBitmapist(app)
    web = app.test_client()
    if after_a_first:
        assert web.get("/page").status_code == 200
    with pytest.raises(_Stop):
        web.get("/stop/page?uid=1")
    assert marked() == {"page:failed": {1}}
    assert queued(app) == 1


@pytest.mark.parametrize("switch", ["TESTING", "DEBUG", "PROPAGATE_EXCEPTIONS"])
def test_an_app_switched_to_propagate_after_its_first_request_counts_errors_as_500(
    make_rules_app: Callable[..., Flask], marked: Marked, switch: str
) -> None:
    """A test suite's app serves a first request with TESTING off, then
    turns TESTING (or DEBUG, or PROPAGATE_EXCEPTIONS) on: now the view's
    exception propagates and no after function runs. The README: a request
    whose exception propagates, in testing, counts as 500; the first
    request took out the teardown hook that marked it."""
    app = make_rules_app()
    app.config["TESTING"] = False
    FlaskBitmapist(app)
    web = app.test_client()
    assert web.get("/page?uid=1").status_code == 200
    app.config[switch] = True
    with pytest.raises(RuntimeError, match="the view failed"):
        web.get("/page?uid=2&explode=1")
    assert marked() == {"page:ok": {1}, "page:failed": {2}}
    assert queued(app) == 2


# --- Defect: the receiver marks 500 before the status is known ---------------


def test_an_after_function_that_fails_once_counts_with_the_status_the_500_handler_sends(
    make_rules_app: Callable[..., Flask], marked: Marked
) -> None:
    """An after function fails on the view's 200 only; the app's 500
    handler answers 503 and the after hook runs on it. After rules see the
    status that is finally sent (README), as at the app's first request
    (uid 1, where the teardown hook is still there): the receiver marks the
    later ones (uid 2) as 500 at once."""
    app = make_rules_app(PROPAGATE_EXCEPTIONS=False)
    FlaskBitmapist(app)
    app.register_error_handler(500, lambda error: ("sorry", 503))

    @app.after_request
    def fails_on_success(response: Any) -> Any:
        if request.args.get("fail") and response.status_code == 200:
            raise RuntimeError("the hook failed")
        return response

    web = app.test_client()
    assert web.get("/page?uid=1&fail=1").status_code == 503
    assert web.get("/page?uid=2&fail=1").status_code == 503
    assert marked() == {"page:unavailable": {1, 2}}
    assert queued(app) == 2


def test_an_after_function_that_fails_once_counts_with_the_status_the_hooks_send(
    make_rules_app: Callable[..., Flask], marked: Marked
) -> None:
    """As above, with an after function that turns the error's 500 into 503
    (the README: a request counts as whatever status the app's error
    handlers and hooks turn the error into)."""
    app = make_rules_app(PROPAGATE_EXCEPTIONS=False)
    FlaskBitmapist(app)

    @app.after_request
    def maintenance(response: Any) -> Any:
        if response.status_code == 500:
            response.status_code = 503
        return response

    @app.after_request
    def fails_on_success(response: Any) -> Any:
        if request.args.get("fail") and response.status_code == 200:
            raise RuntimeError("the hook failed")
        return response

    web = app.test_client()
    assert web.get("/page").status_code == 200
    assert web.get("/page?uid=2&fail=1").status_code == 503
    assert marked() == {"page:unavailable": {2}}
    assert queued(app) == 1


def test_a_view_helper_named_process_response_is_not_an_after_function(
    make_rules_app: Callable[..., Flask], marked: Marked
) -> None:
    """The receiver tells an after function's failure by a frame named
    ``process_response`` in the traceback: a view's own helper of that name
    (a common name in HTTP client code) fails inside the view, whose error
    the 500 handler answers with 503; the request is marked 500."""
    app = make_rules_app(PROPAGATE_EXCEPTIONS=False)

    def process_response(payload: str) -> str:
        raise ValueError(f"bad payload {payload}")

    @app.get("/proxy/page")
    def proxy_page() -> str:
        return process_response("upstream")

    FlaskBitmapist(app)
    app.register_error_handler(500, lambda error: ("sorry", 503))
    web = app.test_client()
    assert web.get("/page").status_code == 200
    assert web.get("/proxy/page?uid=3").status_code == 503
    assert marked() == {"page:unavailable": {3}}


# --- Edges that hold: requests -----------------------------------------------


@AFTER_A_FIRST_REQUEST
def test_a_500_handler_sets_the_status_of_a_view_error_after_the_first_request(
    make_rules_app: Callable[..., Flask], marked: Marked, after_a_first: bool
) -> None:
    app = make_rules_app(PROPAGATE_EXCEPTIONS=False)
    FlaskBitmapist(app)
    app.register_error_handler(500, lambda error: ("sorry", 503))
    web = app.test_client()
    if after_a_first:
        assert web.get("/page").status_code == 200
    assert web.get("/page?uid=1&explode=1").status_code == 503
    assert marked() == {"page:unavailable": {1}}
    assert queued(app) == 1


def test_an_after_function_that_keeps_failing_counts_as_500_once(
    make_rules_app: Callable[..., Flask], marked: Marked
) -> None:
    app = make_rules_app(PROPAGATE_EXCEPTIONS=False)
    FlaskBitmapist(app)

    @app.after_request
    def always_fails(response: Any) -> Any:
        if request.args.get("fail"):
            raise RuntimeError("the hook failed")
        return response

    web = app.test_client()
    assert web.get("/page?uid=1").status_code == 200
    assert web.get("/page?uid=2&fail=1").status_code == 500
    assert web.get("/page?uid=3&fail=1").status_code == 500
    assert marked() == {"page:ok": {1}, "page:failed": {2, 3}}
    assert queued(app) == 3


def test_a_session_that_fails_to_save_after_the_first_request_keeps_its_status(
    make_rules_app: Callable[..., Flask], marked: Marked
) -> None:
    """The session is saved inside ``process_response``, after the after
    hook marked the request: the receiver sees ``process_response`` in the
    traceback, and finds the request finished."""
    app = make_rules_app(PROPAGATE_EXCEPTIONS=False, SECRET_KEY="s")
    FlaskBitmapist(app)
    web = app.test_client()
    assert web.get("/page").status_code == 200

    class FailingSessions(type(app.session_interface)):  # type: ignore[misc]
        def save_session(self, *args: Any) -> None:
            raise OSError("the session store is down")

    app.session_interface = FailingSessions()
    assert web.get("/page?uid=1").status_code == 500
    assert marked() == {"page:ok": {1}}
    assert queued(app) == 1


def test_an_app_switched_off_testing_after_its_first_request_marks_once(
    make_rules_app: Callable[..., Flask], marked: Marked
) -> None:
    """The other way round: the teardown hook stays, and the after hook on
    the 500 marks the request; the teardown hook finds it finished."""
    app = make_rules_app()
    FlaskBitmapist(app)
    web = app.test_client()
    assert web.get("/page?uid=1").status_code == 200
    app.config["TESTING"] = False
    assert web.get("/page?uid=2&explode=1").status_code == 500
    assert marked() == {"page:ok": {1}, "page:failed": {2}}
    assert queued(app) == 2


def test_propagate_exceptions_without_testing_counts_a_propagated_error_as_500(
    make_rules_app: Callable[..., Flask], marked: Marked
) -> None:
    app = make_rules_app(PROPAGATE_EXCEPTIONS=True)
    app.config["TESTING"] = False
    FlaskBitmapist(app)
    web = app.test_client()
    assert web.get("/page?uid=1").status_code == 200
    with pytest.raises(RuntimeError, match="the view failed"):
        web.get("/page?uid=2&explode=1")
    assert marked() == {"page:ok": {1}, "page:failed": {2}}
    assert queued(app) == 2


def test_concurrent_first_requests_mark_each_once(
    make_rules_app: Callable[..., Flask], marked: Marked, fast_switching: None
) -> None:
    app = make_rules_app(PROPAGATE_EXCEPTIONS=False)
    FlaskBitmapist(app)
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def run(uid: int) -> None:
        web = app.test_client()
        barrier.wait()
        statuses.append(web.get(f"/page?uid={uid}").status_code)

    threads = [threading.Thread(target=run, args=(uid,)) for uid in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 8
    assert marked() == {"page:ok": set(range(8))}
    assert queued(app) == 8


BLUEPRINT_RULES = """
rules:
  - event: "shop:page"
    endpoint: "shop.*"
    user: query:uid
  - event: "any:page"
    endpoint: "*page"
    user: query:uid
  - event: "page:missing"
    path: "/nowhere"
    user: query:uid
    status: [404]
"""


def test_blueprint_endpoints_and_unrouted_requests_keep_apart_in_the_cache(
    make_rules_app: Callable[..., Flask], client: redis.Redis
) -> None:
    """The after hook's cache is keyed by endpoint: ``shop.page`` and
    ``page`` (the same view name), and ``None`` for a 404."""
    app = make_rules_app(rules=BLUEPRINT_RULES)
    shop = Blueprint("shop", __name__, url_prefix="/shop")

    @shop.get("/page")
    def page() -> str:
        return "shop page"

    app.register_blueprint(shop)
    FlaskBitmapist(app)
    web = app.test_client()
    for _ in range(2):
        assert web.get("/shop/page?uid=1").status_code == 200
        assert web.get("/page?uid=2").status_code == 200
        assert web.get("/nowhere?uid=3").status_code == 404
    events = ("shop:page", "any:page", "page:missing")
    assert users_by_event(client, events) == {
        "shop:page": {1},
        "any:page": {1, 2},
        "page:missing": {3},
    }
    # Two requests of each: marks of /shop/page, /page and /nowhere.
    assert queued(app) == 2 * (2 + 1 + 1)


CLASS_RULES = """
rules:
  - event: "page:5xx"
    endpoint: page
    user: query:uid
    status: ["5xx"]
  - event: "page:1xx"
    endpoint: page
    user: query:uid
    status: ["1xx", 599]
"""


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (599, {"page:5xx": {1}, "page:1xx": {1}}),
        (500, {"page:5xx": {1}}),
        (100, {"page:1xx": {1}}),
        (199, {"page:1xx": {1}}),
        (600, {}),
        (99, {}),
        (0, {}),
        (1500, {}),
    ],
)
def test_status_classes_cover_their_hundred_codes_only(
    make_rules_app: Callable[..., Flask],
    client: redis.Redis,
    status: int,
    expected: dict[str, set[int]],
) -> None:
    app = make_rules_app(rules=CLASS_RULES)

    @app.after_request
    def forced(response: Any) -> Any:
        response.status_code = int(request.args["status"])
        return response

    FlaskBitmapist(app)
    web = app.test_client()
    assert web.get(f"/page?uid=1&status={status}").status_code == status
    assert users_by_event(client, ("page:5xx", "page:1xx")) == expected


def test_concurrent_requests_an_after_function_fails_each_count_as_500_once(
    make_rules_app: Callable[..., Flask], marked: Marked, fast_switching: None
) -> None:
    app = make_rules_app(PROPAGATE_EXCEPTIONS=False)
    FlaskBitmapist(app)

    @app.after_request
    def always_fails(response: Any) -> Any:
        if request.args.get("fail"):
            raise RuntimeError("the hook failed")
        return response

    assert app.test_client().get("/page").status_code == 200
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def run(uid: int) -> None:
        web = app.test_client()
        barrier.wait()
        failing = "&fail=1" if uid % 2 else ""
        statuses.append(web.get(f"/page?uid={uid}{failing}").status_code)

    threads = [threading.Thread(target=run, args=(uid,)) for uid in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 4 + [500] * 4
    assert marked() == {"page:ok": {2, 4, 6, 8}, "page:failed": {1, 3, 5, 7}}
    assert queued(app) == 8


# --- Edges that hold: ids, marks and signals ---------------------------------


class Level(enum.IntEnum):
    ADMIN = 7


ID_RULES = """
rules:
  - event: "page:seen"
    endpoint: page
    user: picked
"""
#: What the named source ``picked`` gives, by the request's ``?v=``.
PICKED: dict[str, Any] = {
    "enum": Level.ADMIN,
    "true": True,
    "max": 2**24 - 1,
    "over": 2**24,
    "negative": -1,
    "digits": "12",
}


def record(app: Flask) -> list[tuple[Any, str, Any, datetime]]:
    received: list[tuple[Any, str, Any, datetime]] = []

    def receiver(
        sender: Flask, event_name: str, user_id: Any, when: datetime, **extra: Any
    ) -> None:
        received.append((sender, event_name, user_id, when))

    event_marked.connect(receiver, app, weak=False)
    return received


def test_rule_ids_of_every_kind_take_the_checks_of_to_user_id(
    make_rules_app: Callable[..., Flask],
    client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An IntEnum is marked as its int, a bool and ids outside 0 to the
    maximum are refused with a warning, a str of digits is read."""
    app = make_rules_app(
        rules=ID_RULES,
        BITMAPIST_ID_SOURCES={"picked": lambda: PICKED[request.args["v"]]},
    )
    FlaskBitmapist(app)
    received = record(app)
    web = app.test_client()
    with caplog.at_level(logging.WARNING, logger="flask_bitmapist"):
        for value in PICKED:
            assert web.get(f"/page?v={value}").status_code == 200
    assert users(client, day_key("page:seen")) == [7, 12, 2**24 - 1]
    assert [(user, type(user)) for _, _, user, _ in received] == [
        (7, int),
        (2**24 - 1, int),
        (12, int),
    ]
    # The rule's first refusal (True) is logged; the limiter holds back the
    # next two (2**24 and -1) for a minute.
    refused = [
        record.getMessage()
        for record in caplog.records
        if "marked nothing" in record.getMessage()
    ]
    assert len(refused) == 1
    assert "got True" in refused[0]
    assert queued(app) == 3


def test_mark_event_ids_in_an_app(app: Flask, client: redis.Redis) -> None:
    received = record(app)
    with app.app_context():
        mark_event("song:played", Level.ADMIN, now=NOW)
        mark_event("song:played", 2**24 - 1, now=NOW)
        mark_event("song:played", "5", now=NOW)
        mark_event("song:played", None, now=NOW)
        for bad in (True, False, -1, 2**24, 1.0):
            with pytest.raises(ValueError, match="song:played"):
                mark_event("song:played", bad, now=NOW)
    assert users(client, day_key("song:played", NOW)) == [5, 7, 2**24 - 1]
    assert [(user, type(user)) for _, _, user, _ in received] == [
        (7, int),
        (2**24 - 1, int),
        (5, int),
    ]
    assert all(sender is app and when == NOW for sender, _, _, when in received)


def test_a_raised_maximum_bounds_the_plain_int_path(
    make_app: Callable[..., Flask], client: redis.Redis
) -> None:
    raised = make_app(name="raised", max_user_id=2**25)
    with raised.app_context():
        mark_event("song:played", 2**25, now=NOW)
        with pytest.raises(ValueError, match="got 33554433"):
            mark_event("song:played", 2**25 + 1, now=NOW)
    assert client.getbit(day_key("song:played", NOW), 2**25) == 1


def test_unmark_event_clears_the_bits_and_sends_no_signal(
    app: Flask, client: redis.Redis
) -> None:
    received = record(app)
    with app.app_context():
        mark_event("song:played", 3, now=NOW, track_hourly=True, track_unique=True)
        mark_event("song:played", 4, now=NOW, track_hourly=True, track_unique=True)
        unmark_event("song:played", 3, now=NOW, track_hourly=True, track_unique=True)
        unmark_event("song:played", Level.ADMIN, now=NOW)
        with pytest.raises(ValueError, match="got True"):
            unmark_event("song:played", True, now=NOW)
    assert users(client, day_key("song:played", NOW)) == [4]
    assert users(client, "trackist_song:played_u") == [4]
    assert users(client, "trackist_song:played_2026-3-14-15") == [4]
    assert [(event, user) for _, event, user, _ in received] == [
        ("song:played", 3),
        ("song:played", 4),
    ]


def test_the_mark_decorator_sends_one_signal_per_call(
    app: Flask, client: redis.Redis
) -> None:
    received = record(app)

    @mark("job:done", lambda: Level.ADMIN)
    def job() -> str:
        return "done"

    with app.app_context():
        assert job() == "done"
        assert job() == "done"
    assert users(client, day_key("job:done")) == [7]
    assert [(sender, event, user) for sender, event, user, _ in received] == [
        (app, "job:done", 7),
        (app, "job:done", 7),
    ]


def test_marks_outside_an_app_and_to_another_system_bypass_the_app(
    make_app: Callable[..., Flask],
    other_redis_url: str,
    client: redis.Redis,
    default_system: redis.Redis,
) -> None:
    """Outside an app a mark goes to the "default" system at once; in an
    app whose system is another one, ``system="default"`` does too, under
    the default maximum, with no signal; ``system=`` the app's own name
    goes through the app's writer."""
    app = make_app(redis_url=other_redis_url, redis_system="mine")
    other = redis.Redis.from_url(other_redis_url)
    received = record(app)
    try:
        mark_event("song:played", 1, now=NOW)
        with pytest.raises(ValueError, match="got True"):
            mark_event("song:played", True, now=NOW)
        with app.app_context():
            mark_event("song:played", 2, now=NOW, system="default")
            mark_event("song:played", 3, now=NOW, system="mine")
            mark_event("song:played", 4, now=NOW)
            unmark_event("song:played", 1, now=NOW, system="default")
        assert users(default_system, day_key("song:played", NOW)) == [2]
        assert users(other, day_key("song:played", NOW)) == [3, 4]
        assert [user for _, _, user, _ in received] == [3, 4]
    finally:
        other.close()


def test_one_extension_serves_two_apps_in_turn(
    redis_url: str,
    other_redis_url: str,
    tmp_path: Path,
    client: redis.Redis,
) -> None:
    """The state cache keeps the app found last: requests, marks and
    ``state()`` of two apps in turn, and one app's context inside the
    other's, each reach their own app."""
    extension = FlaskBitmapist()
    first = page_app(redis_url, tmp_path, RULES, "first")
    second = page_app(other_redis_url, tmp_path, RULES, "second")
    extension.init_app(first)
    extension.init_app(second)
    other = redis.Redis.from_url(other_redis_url)
    try:
        webs = (first.test_client(), second.test_client())
        for uid in range(1, 5):
            assert webs[uid % 2].get(f"/page?uid={uid}").status_code == 200
        with first.app_context():
            mark_event("song:played", 10, now=NOW)
            with second.app_context():
                mark_event("song:played", 20, now=NOW)
                assert extension.state() is extension.state(second)
            mark_event("song:played", 11, now=NOW)
            assert extension.state() is extension.state(first)
        assert extension.state(first) is not extension.state(second)
        assert users_by_event(client, EVENTS) == {"page:ok": {2, 4}}
        assert users_by_event(other, EVENTS) == {"page:ok": {1, 3}}
        assert users(client, day_key("song:played", NOW)) == [10, 11]
        assert users(other, day_key("song:played", NOW)) == [20]
    finally:
        other.close()


def test_an_app_created_after_another_was_collected_gets_its_own_state(
    redis_url: str, other_redis_url: str, tmp_path: Path, client: redis.Redis
) -> None:
    """The cache holds the app weakly: once the app it names is collected,
    a new app (which may take its address) is looked up again."""
    extension = FlaskBitmapist()
    gone = page_app(redis_url, tmp_path, RULES, "gone")
    extension.init_app(gone)
    with gone.app_context():
        mark_event("song:played", 1, now=NOW)
    del gone
    gc.collect()
    fresh = page_app(other_redis_url, tmp_path, RULES, "fresh")
    with pytest.raises(RuntimeError, match="was not initialized"):
        extension.state(fresh)
    extension.init_app(fresh)
    other = redis.Redis.from_url(other_redis_url)
    try:
        with fresh.app_context():
            mark_event("song:played", 2, now=NOW)
        assert fresh.test_client().get("/page?uid=3").status_code == 200
        assert users(client, day_key("song:played", NOW)) == [1]
        assert users(other, day_key("song:played", NOW)) == [2]
        assert users_by_event(other, EVENTS) == {"page:ok": {3}}
    finally:
        other.close()
