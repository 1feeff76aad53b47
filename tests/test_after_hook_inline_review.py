"""Review of c23b3d5 (the after hook marks without _finish; _apply returns
its set): which requests are marked, with which status, exactly once; before
and after rules together; the session: and current_user fallbacks;
BITMAPIST_RAISE_ERRORS; a failing _apply; threads."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask, request, session
from flask_login import LoginManager, UserMixin, login_user, logout_user
from keys import users_by_event
from rules_app import page_app

from flask_bitmapist import FlaskBitmapist
from flask_bitmapist.track import middleware

RULES = """
rules:
  - event: "page:seen"
    endpoint: page
    user: query:uid
    when: before
  - event: "page:seen"
    endpoint: page
    user: query:uid
  - event: "page:ok"
    endpoint: page
    user: query:uid
    status: [200]
  - event: "page:failed"
    endpoint: page
    user: query:uid
    status: [500]
  - event: "page:gone"
    endpoint: page
    user: query:uid
    status: [410]
  - event: "other:ok"
    endpoint: other
    user: query:uid
"""
EVENTS = ("page:seen", "page:ok", "page:failed", "page:gone", "other:ok")


def queued(app: Flask) -> int:
    return int(app.extensions["bitmapist"].state(app).writer.stats().queued)


@pytest.fixture
def marked(client: redis.Redis) -> Callable[[], dict[str, set[int]]]:
    return lambda: users_by_event(client, EVENTS)


@pytest.fixture
def make(redis_url: str, tmp_path: Path) -> Callable[..., Flask]:
    def factory(rules: str = RULES, **config: Any) -> Flask:
        app = page_app(redis_url, tmp_path, rules, "inline", **config)
        FlaskBitmapist(app)
        return app

    return factory


@pytest.mark.parametrize("propagate", [None, False])
def test_each_request_marked_once_with_its_status(
    make: Callable[..., Flask], marked: Any, propagate: bool | None
) -> None:
    app = make(PROPAGATE_EXCEPTIONS=propagate)
    web = app.test_client()
    assert web.get("/page?uid=1").status_code == 200
    assert web.get("/page?uid=2&gone=1").status_code == 410
    assert web.get("/other?uid=3").status_code == 200
    assert web.get("/page").status_code == 200  # no uid: nothing
    if propagate is None:
        with pytest.raises(RuntimeError):
            web.get("/page?uid=4&explode=1")
    else:
        assert web.get("/page?uid=4&explode=1").status_code == 500
    assert marked() == {
        "page:seen": {1, 2, 4},
        "page:ok": {1},
        "page:gone": {2},
        "page:failed": {4},
        "other:ok": {3},
    }
    # page:seen once per request (the before rule), never again after.
    assert queued(app) == 7


def test_the_arrival_keeps_a_frozenset_and_the_after_hook_skips_it(
    make: Callable[..., Flask],
) -> None:
    app = make()
    seen: list[Any] = []

    @app.after_request
    def peek(response: Any) -> Any:
        seen.append(request._get_current_object().__dict__.get(middleware._ARRIVAL))
        return response

    app.test_client().get("/page?uid=1")
    (arrival,) = seen
    assert type(arrival.marked) is frozenset
    assert arrival.marked == {"page:seen"}
    assert queued(app) == 2


def test_many_requests_in_one_app_context_each_marked(
    make: Callable[..., Flask], marked: Any
) -> None:
    app = make()
    with app.app_context():
        for uid in (1, 2, 3):
            with app.test_request_context(f"/page?uid={uid}"):
                app.full_dispatch_request()
    assert marked() == {"page:seen": {1, 2, 3}, "page:ok": {1, 2, 3}}
    assert queued(app) == 6


def test_the_after_hook_run_twice_marks_once(
    make: Callable[..., Flask], marked: Any
) -> None:
    app = make(PROPAGATE_EXCEPTIONS=False)

    @app.after_request
    def fails_on_success(response: Any) -> Any:
        if request.args.get("fail") and response.status_code == 200:
            raise RuntimeError("the hook failed")
        return response

    assert app.test_client().get("/page?uid=2&fail=1").status_code == 500
    assert marked() == {"page:seen": {2}, "page:failed": {2}}
    assert queued(app) == 2


class Failing(Exception):
    pass


def _break_writer(app: Flask, monkeypatch: pytest.MonkeyPatch, when: str) -> None:
    writer = app.extensions["bitmapist"].state(app).writer
    original = writer.submit_many
    calls: list[str] = []

    def submit_many(marks: Any) -> Any:
        # The before rule's submit comes first, the after rules' second.
        calls.append("before" if not calls else "after")
        if request.args.get("break") == calls[-1]:
            raise Failing("the writer failed")
        return original(marks)

    monkeypatch.setattr(writer, "submit_many", submit_many)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_failing_apply_is_logged_and_marks_once(
    make: Callable[..., Flask],
    marked: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    when: str,
) -> None:
    app = make()
    _break_writer(app, monkeypatch, when)
    with caplog.at_level(logging.ERROR, logger="flask_bitmapist"):
        assert app.test_client().get(f"/page?uid=1&break={when}").status_code == 200
    assert any("YAML rules failed to mark" in r.getMessage() for r in caplog.records)
    if when == "before":
        # The before rule failed: its event is left to the after rule.
        assert marked() == {"page:seen": {1}, "page:ok": {1}}
    else:
        # The after rules failed, and the teardown hook does not retry them.
        assert marked() == {"page:seen": {1}}


@pytest.mark.parametrize("when", ["before", "after"])
def test_raise_errors_propagates_a_failing_apply(
    make: Callable[..., Flask],
    marked: Any,
    monkeypatch: pytest.MonkeyPatch,
    when: str,
) -> None:
    app = make(BITMAPIST_RAISE_ERRORS=True)
    _break_writer(app, monkeypatch, when)
    with pytest.raises(Failing):
        app.test_client().get(f"/page?uid=1&break={when}")
    # after: the teardown hook finds the request finished, marks no 500.
    assert marked() == (
        {"page:failed": {1}} if when == "before" else {"page:seen": {1}}
    )


class User(UserMixin):
    def __init__(self, user_id: str) -> None:
        self.id = user_id


FALLBACK_RULES = """
rules:
  - event: "user:logout"
    endpoint: logout
    methods: [POST]
    user: current_user
  - event: "session:logout"
    endpoint: logout
    methods: [POST]
    user: session:uid
  - event: "user:login"
    endpoint: login_view
    methods: [POST]
    user: current_user
"""


def test_the_fallbacks_mark_the_user_who_left(
    redis_url: str, tmp_path: Path, client: redis.Redis
) -> None:
    path = tmp_path / "fallback.yaml"
    path.write_text(FALLBACK_RULES)
    app = Flask("fallback", instance_path=str(tmp_path / "instance"))
    app.config.update(
        TESTING=True,
        SECRET_KEY="s",
        BITMAPIST_REDIS_URL=redis_url,
        BITMAPIST_RULES=str(path),
        BITMAPIST_WRITE_MODE="sync",
    )
    login = LoginManager(app)
    login.user_loader(User)

    @app.post("/login/<uid>")
    def login_view(uid: str) -> str:
        login_user(User(uid))
        session["uid"] = int(uid)
        return "in"

    @app.post("/logout")
    def logout() -> str:
        logout_user()
        session.clear()
        return "out"

    FlaskBitmapist(app)
    web = app.test_client()
    assert web.post("/login/7").status_code == 200
    assert web.post("/logout").status_code == 200
    assert users_by_event(client, ("user:login", "user:logout", "session:logout")) == {
        "user:login": {7},
        "user:logout": {7},
        "session:logout": {7},
    }


def test_threads_mark_each_request_once(
    make: Callable[..., Flask], marked: Any, fast_switching: None
) -> None:
    app = make()
    errors: list[BaseException] = []

    def run(first: int) -> None:
        try:
            web = app.test_client()
            for uid in range(first, first + 25):
                assert web.get(f"/page?uid={uid}").status_code == 200
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(n * 25,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert marked() == {"page:seen": set(range(100)), "page:ok": set(range(100))}
    assert queued(app) == 200
