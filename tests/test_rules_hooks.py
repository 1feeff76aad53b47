"""Where the rules hook into a request, and that after rules see the status
that is sent however the app's hooks change it: with only after rules (an
``after_request`` function, and a teardown hook for requests it never saw),
and with a before rule too (a ``before_request`` hook keeps what the after
rules need)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Blueprint, Flask, after_this_request, request
from keys import users_by_event
from rules_app import page_app

from flask_bitmapist import FlaskBitmapist

AFTER_RULES = """
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
  - event: "page:gone"
    endpoint: "*page"
    user: query:uid
    status: [410]
  - event: "page:missing"
    path: "/nowhere"
    user: query:uid
    status: [404]
"""
# One before rule, on another endpoint, is what makes the extension install
# its before hook.
BEFORE_RULE = """
  - event: "other:seen"
    endpoint: other
    user: query:uid
    when: before
"""
EVENTS = ("page:ok", "page:failed", "page:unavailable", "page:gone", "page:missing")


@pytest.fixture(params=["after rules only", "with a before rule"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_rules_app(mode: str, redis_url: str, tmp_path: Path) -> Callable[..., Flask]:
    rules = AFTER_RULES + (BEFORE_RULE if mode == "with a before rule" else "")
    return lambda **config: page_app(redis_url, tmp_path, rules, "hooks", **config)


@pytest.fixture
def marked(client: redis.Redis) -> Callable[[], dict[str, set[int]]]:
    """The users marked today, by event."""
    return lambda: users_by_event(client, EVENTS)


def queued(app: Flask) -> int:
    return int(app.extensions["bitmapist"].state(app).writer.stats().queued)


def test_after_rules_see_the_status_set_by_hooks_registered_after_the_extension(
    make_rules_app: Callable[..., Flask], marked: Any
) -> None:
    app = make_rules_app()
    FlaskBitmapist(app)

    @app.after_request
    def unavailable(response: Any) -> Any:
        if request.args.get("down"):
            response.status_code = 503
        return response

    web = app.test_client()
    assert web.get("/page?uid=1&down=1").status_code == 503
    assert web.get("/page?uid=2").status_code == 200
    assert marked() == {"page:unavailable": {1}, "page:ok": {2}}


def test_after_rules_see_the_status_of_every_kind_of_hook(
    make_rules_app: Callable[..., Flask], marked: Any
) -> None:
    app = make_rules_app()

    @app.after_request
    def registered_before(response: Any) -> Any:
        if request.args.get("before"):
            response.status_code = 503
        return response

    shop = Blueprint("shop", __name__)

    @shop.get("/shop/page")
    def page() -> str:
        if request.args.get("this_request"):

            @after_this_request
            def gone(response: Any) -> Any:
                response.status_code = 410
                return response

        return "shop"

    @shop.after_request
    def blueprint_hook(response: Any) -> Any:
        if request.args.get("blueprint"):
            response.status_code = 503
        return response

    app.register_blueprint(shop)
    FlaskBitmapist(app)
    web = app.test_client()
    assert web.get("/page?uid=1&before=1").status_code == 503
    assert web.get("/shop/page?uid=2&blueprint=1").status_code == 503
    assert web.get("/shop/page?uid=3&this_request=1").status_code == 410
    assert web.get("/shop/page?uid=4").status_code == 200
    assert marked() == {"page:unavailable": {1, 2}, "page:gone": {3}, "page:ok": {4}}


# A failed request is tested as the app's first, and after a first one that
# marks nothing (no uid): the hooks learn at the first request whether
# exceptions propagate.
AFTER_A_FIRST_REQUEST = pytest.mark.parametrize("after_a_first", [False, True])


@AFTER_A_FIRST_REQUEST
def test_an_exception_answered_500_counts_with_the_status_the_hooks_send(
    make_rules_app: Callable[..., Flask], marked: Any, after_a_first: bool
) -> None:
    app = make_rules_app(PROPAGATE_EXCEPTIONS=False)
    FlaskBitmapist(app)

    @app.after_request
    def maintenance(response: Any) -> Any:
        if request.args.get("maintenance"):
            response.status_code = 503
        return response

    web = app.test_client()
    if after_a_first:
        web.get("/page")
    assert web.get("/page?uid=1&explode=1").status_code == 500
    assert web.get("/page?uid=2&explode=1&maintenance=1").status_code == 503
    assert marked() == {"page:failed": {1}, "page:unavailable": {2}}
    # One mark per request: the teardown hook leaves them to the after hook.
    assert queued(app) == 2


def test_an_error_handler_sets_the_status_after_rules_see(
    make_rules_app: Callable[..., Flask], marked: Any
) -> None:
    app = make_rules_app(PROPAGATE_EXCEPTIONS=False)
    FlaskBitmapist(app)
    app.register_error_handler(500, lambda error: ("sorry", 503))
    assert app.test_client().get("/page?uid=1&explode=1").status_code == 503
    assert marked() == {"page:unavailable": {1}}


def test_a_propagated_exception_counts_as_500_once(
    make_rules_app: Callable[..., Flask], marked: Any
) -> None:
    app = make_rules_app()
    FlaskBitmapist(app)
    web = app.test_client()
    with pytest.raises(RuntimeError, match="the view failed"):
        web.get("/page?uid=1&explode=1")
    assert marked() == {"page:failed": {1}}
    assert queued(app) == 1


def test_a_session_that_fails_to_save_marks_its_request_once_as_it_was(
    make_rules_app: Callable[..., Flask],
) -> None:
    # The session is saved after every after_request function: its exception
    # reaches the teardown hook after the after rules ran.
    app = make_rules_app(SECRET_KEY="s")
    FlaskBitmapist(app)

    class FailingSessions(type(app.session_interface)):  # type: ignore[misc]
        def save_session(self, *args: Any) -> None:
            raise OSError("the session store is down")

    app.session_interface = FailingSessions()
    with pytest.raises(OSError, match="the session store is down"):
        app.test_client().get("/page?uid=1")
    assert queued(app) == 1


@pytest.mark.parametrize("testing", [True, False])
def test_a_request_context_that_never_answers_counts_as_500_where_exceptions_propagate(
    make_rules_app: Callable[..., Flask], marked: Any, testing: bool
) -> None:
    """Where Flask answers exceptions itself, the teardown hook trusts it: a
    request it passes no exception ran its after hooks, so a context pushed
    by hand that never dispatches is not marked. Where exceptions propagate
    (testing), one can end a request unseen by Flask, so every request whose
    after hooks did not run counts as 500. Dispatched requests are marked
    either way."""
    app = make_rules_app()
    app.testing = testing
    FlaskBitmapist(app)
    with app.test_request_context("/page?uid=1"):
        app.preprocess_request()
    with app.test_request_context("/page?uid=2"):
        app.full_dispatch_request()
    assert marked() == (
        {"page:ok": {2}, "page:failed": {1}} if testing else {"page:ok": {2}}
    )


def test_abort_and_unknown_urls_count_with_their_status(
    make_rules_app: Callable[..., Flask], marked: Any
) -> None:
    app = make_rules_app()
    FlaskBitmapist(app)
    web = app.test_client()
    assert web.get("/page?uid=1&gone=1").status_code == 410
    assert web.get("/nowhere?uid=2").status_code == 404
    assert marked() == {"page:gone": {1}, "page:missing": {2}}


def test_the_before_hook_is_installed_only_when_a_rule_needs_it(
    make_rules_app: Callable[..., Flask], mode: str
) -> None:
    app = make_rules_app()
    FlaskBitmapist(app)
    with_before = mode == "with a before rule"
    assert len(app.before_request_funcs.get(None, [])) == int(with_before)
    assert len(app.teardown_request_funcs[None]) == 1
    assert len(app.after_request_funcs[None]) == 1


def test_rules_that_match_no_route_are_logged_at_the_first_request(
    make_rules_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_rules_app()
    FlaskBitmapist(app)
    web = app.test_client()
    with caplog.at_level(logging.WARNING, logger="flask_bitmapist"):
        web.get("/other")
        web.get("/other")
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 1
    assert "/nowhere" in lines[0]


def test_an_after_function_that_fails_once_counts_as_500_once(
    make_rules_app: Callable[..., Flask], marked: Any
) -> None:
    """The function fails on the view's 200 only: the after hook then runs
    on the 500 and marks it; the teardown hook, passed the error, finds the
    request marked already."""
    app = make_rules_app(PROPAGATE_EXCEPTIONS=False)
    FlaskBitmapist(app)

    @app.after_request
    def fails_on_success(response: Any) -> Any:
        if request.args.get("fail") and response.status_code == 200:
            raise RuntimeError("the hook failed")
        return response

    web = app.test_client()
    assert web.get("/page?uid=1").status_code == 200
    assert web.get("/page?uid=2&fail=1").status_code == 500
    assert marked() == {"page:ok": {1}, "page:failed": {2}}
    assert queued(app) == 2
