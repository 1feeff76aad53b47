"""Review of a change that was not kept: taking out the rules' teardown
hook, with a receiver of ``got_request_exception`` and a wrapper around
each view with after rules replacing a failed request's ``close`` by one
that marks it as 500 unless its after hook finished (it saved 7 Python
calls a request). These tests failed on it and pass with the teardown hook,
so they guard the requests only that hook sees: a ``BaseException`` from a
``before_request`` or ``after_request`` function (a worker timeout's
``SystemExit``, gevent's ``Timeout``); a teardown function or
``request_tearing_down`` receiver that raises after an error propagated
(Flask then never calls ``request.close``); a copied request context
(``copy_current_request_context``) popped while an error handler runs; a
second URL rule for a view after ``init_app``, and a tool that finds a
view's endpoint by comparing functions (apispec), which a wrapped view
breaks; a late view's ``BaseException``; a ``g`` value that a teardown
function registered before the extension drops; a ``got_request_exception``
sent outside a request. The others probe edges that held either way.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import (
    Blueprint,
    Flask,
    Response,
    copy_current_request_context,
    g,
    got_request_exception,
    request,
    request_tearing_down,
    stream_with_context,
)
from flask.views import MethodView
from flask_login import LoginManager, UserMixin, logout_user
from keys import users_by_event
from rules_app import page_app
from test_request_calls_review import (
    AFTER_A_FIRST_REQUEST,
    BEFORE_RULE,
    MODES,
    Marked,
    queued,
)
from test_request_calls_review import mode as mode  # the fixture

from flask_bitmapist import FlaskBitmapist

RULES = """
rules:
  - event: "page:ok"
    endpoint: "*page"
    methods: "*"
    user: query:uid
    status: [200]
  - event: "page:failed"
    endpoint: "*page"
    methods: "*"
    user: query:uid
    status: [500]
  - event: "page:unavailable"
    endpoint: "*page"
    methods: "*"
    user: query:uid
    status: [503]
  - event: "page:gone"
    endpoint: "*page"
    methods: "*"
    user: query:uid
    status: [410]
"""
EVENTS = ("page:ok", "page:failed", "page:unavailable", "page:gone")


class _Stop(BaseException):
    """Not an Exception: as gevent's Timeout, or the SystemExit a worker
    timeout raises wherever the request is."""


@pytest.fixture
def make_rules_app(redis_url: str, tmp_path: Path, mode: str) -> Callable[..., Flask]:
    """``page_app`` with :data:`RULES` (and a before rule in the second
    mode), without the extension yet."""

    def factory(rules: str = RULES, name: str = "close", **config: Any) -> Flask:
        text = rules + (BEFORE_RULE if mode == MODES[1] else "")
        return page_app(redis_url, tmp_path, text, name, **config)

    return factory


@pytest.fixture
def marked(client: redis.Redis) -> Marked:
    """The users marked today, by event."""
    return lambda: users_by_event(client, EVENTS)


# --- Defects ------------------------------------------------------------------


@AFTER_A_FIRST_REQUEST
@pytest.mark.parametrize("hook", ["before_request", "after_request"])
def test_a_base_exception_from_a_request_function_counts_as_500(
    make_rules_app: Callable[..., Flask], marked: Marked, after_a_first: bool, hook: str
) -> None:
    """DEFECT: a ``BaseException`` raised by a ``before_request`` function
    (a worker timeout hitting a slow auth lookup), or by an
    ``after_request`` function registered after the extension (so it runs
    before the extension's after hook), ends the request with no after
    hook; the README says such a request counts as 500, and the teardown
    hook marked it. Flask sends no ``got_request_exception`` for a
    ``BaseException`` and the view wrapper never sees it: nothing replaced
    ``close``, so the request was not marked."""
    app = make_rules_app(PROPAGATE_EXCEPTIONS=False)
    FlaskBitmapist(app)

    def stop_when_asked(response: Any = None) -> Any:
        if request.args.get("stop"):
            raise _Stop()
        return response

    getattr(app, hook)(stop_when_asked)
    web = app.test_client()
    if after_a_first:
        assert web.get("/page?uid=1").status_code == 200
    with pytest.raises(_Stop):
        web.get("/page?uid=2&stop=1")
    expected = {"page:failed": {2}}
    if after_a_first:
        expected["page:ok"] = {1}
    assert marked() == expected


@pytest.mark.parametrize("where", ["teardown_request", "request_tearing_down"])
def test_a_teardown_that_raises_leaves_a_propagated_error_counted_as_500(
    make_rules_app: Callable[..., Flask], marked: Marked, where: str
) -> None:
    """DEFECT: the view's error propagates (testing); then a teardown
    function registered before the extension (or a ``request_tearing_down``
    receiver) raises. Flask's ``RequestContext.pop`` calls
    ``request.close()`` only after every teardown function and the signal
    returned, so the replaced ``close`` never runs and the request is not
    marked. The teardown hook, registered after that function, ran before
    it (Flask calls them in reverse) and before the signal, and marked it
    as 500."""
    app = make_rules_app()

    def release(error: BaseException | None) -> None:
        raise OSError("the connection pool is gone")

    if where == "teardown_request":
        app.teardown_request(release)
    FlaskBitmapist(app)
    if where == "request_tearing_down":

        def on_tearing_down(sender: Flask, exc: Any = None, **extra: Any) -> None:
            release(exc)

        request_tearing_down.connect(on_tearing_down, app, weak=False)
    web = app.test_client()
    with pytest.raises(OSError, match="pool is gone"):
        web.get("/page?uid=1&explode=1")
    assert marked() == {"page:failed": {1}}


@pytest.mark.parametrize("error", ["view error", "abort(410)"])
def test_a_copied_request_context_popped_by_an_error_handler_keeps_the_status(
    make_rules_app: Callable[..., Flask], marked: Marked, error: str
) -> None:
    """DEFECT: an error handler reports the error from a worker thread that
    runs in a copy of the request context (``copy_current_request_context``,
    Flask's way to hand a request to another thread) and waits for it. The
    copy shares the request object, so popping it calls the replaced
    ``close``, which marks the request as 500 while the handler is still
    running: its 503 (or the 410 of an ``abort``, which the view wrapper
    also counts as a failure) is never marked, the after hook finds the
    request finished. The teardown hook (errors not propagating) saw no
    exception in that thread and left the request to the after hook.
    Expected ``page:unavailable`` / ``page:gone``, got ``page:failed``
    (middleware.py ``_close_as_500``: ``close_as_500`` does not check that
    the request is ending)."""
    app = make_rules_app(PROPAGATE_EXCEPTIONS=False)
    FlaskBitmapist(app)
    reported: list[str] = []

    def report(exc: Exception) -> None:
        @copy_current_request_context
        def send() -> None:
            reported.append(request.full_path)

        worker = threading.Thread(target=send)
        worker.start()
        worker.join()

    @app.errorhandler(500)
    def server_error(exc: Exception) -> Any:
        report(exc)
        return "sorry", 503

    @app.errorhandler(410)
    def gone(exc: Exception) -> Any:
        report(exc)
        return "gone", 410

    web = app.test_client()
    if error == "view error":
        assert web.get("/page?uid=1&explode=1").status_code == 503
        assert marked() == {"page:unavailable": {1}}
    else:
        assert web.get("/page?uid=1&gone=1").status_code == 410
        assert marked() == {"page:gone": {1}}
    assert len(reported) == 1
    assert queued(app) == 1


def test_a_second_url_for_a_view_can_be_added_after_init_app(
    make_rules_app: Callable[..., Flask], marked: Marked
) -> None:
    """DEFECT: Flask lets ``add_url_rule`` give an endpoint another URL with
    the same view function; it refuses a *different* function. After
    ``init_app`` the endpoint maps to the extension's wrapper, so adding
    ``/page/`` for ``page`` raises "View function mapping is overwriting an
    existing endpoint function" (``_watch_views`` replaces
    ``app.view_functions[endpoint]``)."""
    app = make_rules_app()
    page = app.view_functions["page"]
    FlaskBitmapist(app)
    app.add_url_rule("/pages/legacy", "page", page)
    web = app.test_client()
    assert web.get("/pages/legacy?uid=1").status_code == 200
    assert marked() == {"page:ok": {1}}


def test_a_g_value_dropped_by_an_earlier_teardown_function_still_names_the_user(
    redis_url: str, tmp_path: Path, client: redis.Redis
) -> None:
    """DEFECT (ordering): an app's teardown function, registered before the
    extension, releases what the request kept on ``g``. The teardown hook,
    registered later, ran first (Flask calls them in reverse) and marked
    the failed request for ``g.account_id``; the replaced ``close`` runs
    after every teardown function, when ``g`` has lost it, so the request is
    not marked (the module docstring: ``g`` keeps its values for the whole
    request)."""
    rules = """
rules:
  - event: "page:failed"
    endpoint: page
    user: g:account_id
    status: [500]
"""
    app = page_app(redis_url, tmp_path, rules, "gsource")

    @app.before_request
    def load_account() -> None:
        g.account_id = int(request.args["uid"])

    @app.teardown_request
    def release(error: BaseException | None) -> None:
        g.pop("account_id", None)

    FlaskBitmapist(app)
    with pytest.raises(RuntimeError, match="the view failed"):
        app.test_client().get("/page?uid=4&explode=1")
    assert users_by_event(client, ["page:failed"]) == {"page:failed": {4}}


def test_got_request_exception_sent_outside_a_request_is_ignored(
    make_rules_app: Callable[..., Flask], marked: Marked
) -> None:
    """DEFECT: code that reports a background failure through Flask's
    ``got_request_exception`` (error trackers listen to it) sends it in an
    app context, with no request. There is no request to mark, but
    ``request_failed`` reads ``request`` and, with
    ``BITMAPIST_RAISE_ERRORS``, raises "Working outside of request
    context" into the sender (middleware.py ``request_failed``: no
    ``has_request_context()`` check)."""
    app = make_rules_app(BITMAPIST_RAISE_ERRORS=True)
    FlaskBitmapist(app)
    with app.app_context():
        got_request_exception.send(app, exception=ValueError("a job failed"))
    assert marked() == {}


def test_a_tool_finds_the_endpoint_of_a_view_function_by_comparing_it(
    make_rules_app: Callable[..., Flask],
) -> None:
    """DEFECT: tools find a view's endpoint by comparing the function they
    are given with ``app.view_functions`` (apispec-webframeworks'
    ``FlaskPlugin._rule_for_view``: ``if view_func == view``, else
    "Could not find endpoint for view"; ``spec.path(view=page)``). After
    ``init_app`` the endpoint holds the extension's wrapper, which is not
    equal to the app's function: the lookup finds nothing
    (``_watch_views``)."""
    app = make_rules_app()
    page = app.view_functions["page"]
    FlaskBitmapist(app)
    found = [ept for ept, view in app.view_functions.items() if view == page]
    assert found == ["page"]


def test_a_base_exception_of_a_late_view_counts_as_500_from_the_first_request(
    make_rules_app: Callable[..., Flask], marked: Marked
) -> None:
    """A view registered after ``init_app`` that raises a ``BaseException``
    in every request (a worker timeout while a dependency hangs): each
    request counts as 500, the first too. The change reviewed missed all of
    them with after rules only, until some request ran its hooks."""
    app = make_rules_app(PROPAGATE_EXCEPTIONS=False)
    FlaskBitmapist(app)

    @app.get("/late/page")
    def late_page() -> str:
        raise _Stop()

    web = app.test_client()
    for uid in (1, 2):
        with pytest.raises(_Stop):
            web.get(f"/late/page?uid={uid}")
    assert marked() == {"page:failed": {1, 2}}


# --- Edges that hold ------------------------------------------------------------


def test_the_original_close_still_runs_on_a_failed_upload(
    make_rules_app: Callable[..., Flask], marked: Marked
) -> None:
    """A view that raises after reading an upload: the replaced ``close``
    marks the request as 500 and then closes the uploaded file, as the
    original ``close`` does; the view's exception propagates as the same
    object."""
    app = make_rules_app()
    seen: dict[str, Any] = {}
    raised = RuntimeError("upload rejected")

    @app.post("/upload/page")
    def upload_page() -> str:
        seen["file"] = request.files["doc"]
        raise raised

    FlaskBitmapist(app)
    web = app.test_client()
    with pytest.raises(RuntimeError) as caught:
        web.post(
            "/upload/page?uid=3",
            data={"doc": (io.BytesIO(b"x" * 10), "doc.txt")},
        )
    assert caught.value is raised
    assert seen["file"].stream.closed
    assert marked() == {"page:failed": {3}}
    assert queued(app) == 1


def test_a_failing_mark_in_close_neither_masks_the_error_nor_leaves_files_open(
    make_rules_app: Callable[..., Flask],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis is down when the replaced ``close`` marks a failed request:
    the failure is logged, the view's exception propagates unchanged and
    the upload is still closed."""
    app = make_rules_app(BITMAPIST_SOCKET_TIMEOUT=0.5)
    app.config["BITMAPIST_REDIS_URL"] = "redis://127.0.0.1:1/3"
    seen: dict[str, Any] = {}

    @app.post("/upload/page")
    def upload_page() -> str:
        seen["file"] = request.files["doc"]
        raise KeyError("boom")

    FlaskBitmapist(app)
    with (
        caplog.at_level(logging.WARNING, logger="flask_bitmapist"),
        pytest.raises(KeyError, match="boom"),
    ):
        app.test_client().post(
            "/upload/page?uid=3", data={"doc": (io.BytesIO(b"x"), "d.txt")}
        )
    assert seen["file"].stream.closed
    assert any(
        "Could not write mark 'page:failed'" in record.getMessage()
        for record in caplog.records
    )


def test_a_view_called_outside_a_request_raises_as_before(
    make_rules_app: Callable[..., Flask], marked: Marked
) -> None:
    """The app's view, called with no request (a unit test), raises the
    view's own exception and marks nothing."""
    app = make_rules_app()
    FlaskBitmapist(app)
    view = app.view_functions["page"]
    with pytest.raises(RuntimeError, match="Working outside of request context"):
        view()
    assert marked() == {}


@pytest.mark.parametrize("kind", ["CancelledError", "RuntimeError"])
def test_an_async_view_that_raises_counts_as_500(
    make_rules_app: Callable[..., Flask], marked: Marked, kind: str
) -> None:
    """An ``async def`` view gets an ``async def`` wrapper (Flask runs it
    through asgiref, with the request context copied): what it raises,
    ``asyncio.CancelledError`` (a ``BaseException``) too, propagates as the
    same object and counts as 500."""
    app = make_rules_app(PROPAGATE_EXCEPTIONS=False)
    raised: BaseException = (
        asyncio.CancelledError() if kind == "CancelledError" else RuntimeError("x")
    )

    @app.get("/async/page")
    async def async_page() -> str:
        await asyncio.sleep(0)
        if request.args.get("fail"):
            raise raised
        return "async"

    FlaskBitmapist(app)
    web = app.test_client()
    assert web.get("/async/page?uid=1").text == "async"
    if kind == "CancelledError":
        with pytest.raises(asyncio.CancelledError) as caught:
            web.get("/async/page?uid=2&fail=1")
        assert caught.value is raised
    else:
        assert web.get("/async/page?uid=2&fail=1").status_code == 500
    assert marked() == {"page:ok": {1}, "page:failed": {2}}


def test_a_method_view_keeps_its_attributes_and_counts_a_base_exception(
    make_rules_app: Callable[..., Flask], marked: Marked
) -> None:
    """A ``MethodView``'s view is the app's own (``view_class``,
    ``methods``); a ``BaseException`` from its ``get`` counts as 500."""
    app = make_rules_app(PROPAGATE_EXCEPTIONS=False)

    class ItemPage(MethodView):
        def get(self) -> str:
            if request.args.get("stop"):
                raise _Stop()
            return "item"

    original = ItemPage.as_view("itempage")
    app.add_url_rule("/item", view_func=original)
    FlaskBitmapist(app)
    assert app.view_functions["itempage"] is original
    web = app.test_client()
    assert web.get("/item?uid=1").text == "item"
    with pytest.raises(_Stop):
        web.get("/item?uid=2&stop=1")
    assert marked() == {"page:ok": {1}, "page:failed": {2}}


def test_blueprint_views_count_a_base_exception(
    make_rules_app: Callable[..., Flask], marked: Marked
) -> None:
    """A blueprint's view (endpoint ``shop.page``): a ``BaseException``
    counts as 500."""
    app = make_rules_app(PROPAGATE_EXCEPTIONS=False)
    shop = Blueprint("shop", __name__, url_prefix="/shop")

    @shop.get("/page")
    def page() -> str:
        raise _Stop()

    app.register_blueprint(shop)
    FlaskBitmapist(app)
    with pytest.raises(_Stop):
        app.test_client().get("/shop/page?uid=5")
    assert marked() == {"page:failed": {5}}


def test_two_apps_sharing_one_view_function_mark_each_in_its_own_store(
    redis_url: str, other_redis_url: str, tmp_path: Path
) -> None:
    """One view function registered on two apps, each with the extension
    and its own Redis db: each app's failed request is marked once, in its
    own db, and the shared function itself is left as it was."""

    def page() -> str:
        if request.args.get("stop"):
            raise _Stop()
        raise RuntimeError("the view failed")

    apps = []
    for name, url in (("one", redis_url), ("two", other_redis_url)):
        app = page_app(url, tmp_path, RULES, name)
        app.add_url_rule("/shared/page", "sharedpage", page)
        FlaskBitmapist(app)
        apps.append(app)
    assert page.__name__ == "page" and not hasattr(page, "__wrapped__")
    with pytest.raises(_Stop):
        apps[0].test_client().get("/shared/page?uid=1&stop=1")
    with pytest.raises(RuntimeError):
        apps[1].test_client().get("/shared/page?uid=2")
    one, two = redis.Redis.from_url(redis_url), redis.Redis.from_url(other_redis_url)
    try:
        assert users_by_event(one, EVENTS) == {"page:failed": {1}}
        assert users_by_event(two, EVENTS) == {"page:failed": {2}}
    finally:
        one.close()
        two.close()


def test_views_registered_after_init_app_count_their_failures_as_500(
    make_rules_app: Callable[..., Flask], marked: Marked
) -> None:
    """A view registered after ``init_app``: a ``BaseException`` it raises
    in the app's first request, an ``Exception`` next, and a
    ``BaseException`` again each count as 500."""
    app = make_rules_app(PROPAGATE_EXCEPTIONS=False)
    FlaskBitmapist(app)

    @app.get("/late/page")
    def late_page() -> str:
        if request.args.get("stop"):
            raise _Stop()
        raise RuntimeError("late")

    web = app.test_client()
    with pytest.raises(_Stop):
        web.get("/late/page?uid=1&stop=1")
    assert web.get("/late/page?uid=2").status_code == 500
    with pytest.raises(_Stop):
        web.get("/late/page?uid=3&stop=1")
    assert marked() == {"page:failed": {1, 2, 3}}


def test_a_streamed_response_is_marked_once_with_its_status(
    make_rules_app: Callable[..., Flask], marked: Marked
) -> None:
    """``stream_with_context``: the after hook marks the 200 before the body
    is sent; a generator that raises while streaming changes nothing, and
    the original ``close`` runs when the stream ends."""
    app = make_rules_app()

    @app.get("/stream/page")
    def stream_page() -> Response:
        def body() -> Any:
            yield "a"
            if request.args.get("fail"):
                raise RuntimeError("stream broke")
            yield "b"

        return Response(stream_with_context(body()))

    FlaskBitmapist(app)
    web = app.test_client()
    assert web.get("/stream/page?uid=1").text == "ab"
    with pytest.raises(RuntimeError, match="stream broke"):
        web.get("/stream/page?uid=2&fail=1").get_data()
    assert marked() == {"page:ok": {1, 2}}
    assert queued(app) == 2


def test_copied_request_contexts_after_a_finished_request_mark_nothing_more(
    make_rules_app: Callable[..., Flask], marked: Marked
) -> None:
    """A view hands work to a thread in a copy of its request context and
    then fails, or succeeds; the copy is popped after the request ended:
    each request is marked once, with its status."""
    app = make_rules_app(PROPAGATE_EXCEPTIONS=False)
    workers: list[threading.Thread] = []
    go = threading.Event()

    @app.get("/work/page")
    def work_page() -> str:
        @copy_current_request_context
        def later() -> None:
            go.wait(5)

        worker = threading.Thread(target=later)
        worker.start()
        workers.append(worker)
        if request.args.get("explode"):
            raise RuntimeError("failed after handing work off")
        return "handed off"

    FlaskBitmapist(app)
    web = app.test_client()
    assert web.get("/work/page?uid=1").status_code == 200
    assert web.get("/work/page?uid=2&explode=1").status_code == 500
    go.set()
    for worker in workers:
        worker.join()
    assert marked() == {"page:ok": {1}, "page:failed": {2}}
    assert queued(app) == 2


def test_a_preserved_context_marks_a_failed_request_once(
    make_rules_app: Callable[..., Flask], marked: Marked
) -> None:
    """``with client:`` keeps the context of the last request and pops it
    again later (``close`` runs twice): the propagated error counts as 500
    once, and the next requests too."""
    app = make_rules_app()
    FlaskBitmapist(app)
    web = app.test_client()
    with web:
        with pytest.raises(RuntimeError):
            web.get("/page?uid=1&explode=1")
        assert web.get("/page?uid=2").status_code == 200
        assert request.args["uid"] == "2"
    assert web.get("/page?uid=3").status_code == 200
    assert marked() == {"page:failed": {1}, "page:ok": {2, 3}}
    assert queued(app) == 3


def test_should_ignore_error_keeps_a_propagated_error_counted_as_500(
    make_rules_app: Callable[..., Flask], marked: Marked
) -> None:
    """An app whose ``should_ignore_error`` hides every error from the
    teardown functions: a propagated error still counts as 500."""

    class Quiet(Flask):
        def should_ignore_error(self, error: BaseException | None) -> bool:
            return True

    app = make_rules_app()
    app.__class__ = Quiet
    FlaskBitmapist(app)
    with pytest.raises(RuntimeError):
        app.test_client().get("/page?uid=1&explode=1")
    assert marked() == {"page:failed": {1}}


class _User(UserMixin):
    def __init__(self, user_id: str) -> None:
        self.id = user_id


def test_current_user_of_a_failed_request_is_its_user_or_the_one_logged_out(
    redis_url: str, tmp_path: Path, client: redis.Redis
) -> None:
    """A ``current_user`` rule on a request that fails in testing: the
    request's user, read in the replaced ``close``; after ``logout_user``
    in the view that then fails, the user just logged out."""
    rules = """
rules:
  - event: "page:failed"
    endpoint: page
    user: current_user
    status: [500]
"""
    app = page_app(redis_url, tmp_path, rules, "login", SECRET_KEY="s")
    login = LoginManager(app)

    @login.request_loader
    def from_header(req: Any) -> _User | None:
        user_id = req.headers.get("X-Login")
        return _User(user_id) if user_id else None

    @app.before_request
    def maybe_logout() -> None:
        if request.args.get("logout"):
            logout_user()

    FlaskBitmapist(app)
    web = app.test_client()
    with pytest.raises(RuntimeError):
        web.get("/page?explode=1", headers={"X-Login": "7"})
    with pytest.raises(RuntimeError):
        web.get("/page?explode=1&logout=1", headers={"X-Login": "8"})
    with pytest.raises(RuntimeError):
        web.get("/page?explode=1")
    assert users_by_event(client, ["page:failed"]) == {"page:failed": {7, 8}}


def test_concurrent_failing_and_succeeding_requests_are_marked_each_once(
    make_rules_app: Callable[..., Flask], marked: Marked, fast_switching: None
) -> None:
    """Threads whose requests raise (propagated, handled, ``BaseException``)
    or succeed at once: each request is marked once, for its own user,
    with its own status."""
    app = make_rules_app()

    @app.get("/stop/page")
    def stop_page() -> str:
        raise _Stop()

    FlaskBitmapist(app)
    barrier = threading.Barrier(12)
    errors: list[str] = []

    def run(uid: int) -> None:
        web = app.test_client()
        barrier.wait()
        kind = uid % 3
        try:
            if kind == 0:
                assert web.get(f"/page?uid={uid}").status_code == 200
            elif kind == 1:
                with pytest.raises(RuntimeError):
                    web.get(f"/page?uid={uid}&explode=1")
            else:
                with pytest.raises(_Stop):
                    web.get(f"/stop/page?uid={uid}")
        except BaseException as error:
            errors.append(repr(error))

    threads = [threading.Thread(target=run, args=(uid,)) for uid in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert marked() == {
        "page:ok": {0, 3, 6, 9},
        "page:failed": {1, 2, 4, 5, 7, 8, 10, 11},
    }
    assert queued(app) == 12


def test_an_abort_handled_by_the_app_counts_with_its_status(
    make_rules_app: Callable[..., Flask], marked: Marked
) -> None:
    """``abort(410)`` passes through the view wrapper (an HTTPException is
    an exception) and Flask answers it: the after hook marks 410, the
    replaced ``close`` marks nothing more."""
    app = make_rules_app()
    FlaskBitmapist(app)
    assert app.test_client().get("/page?uid=6&gone=1").status_code == 410
    assert marked() == {"page:gone": {6}}
    assert queued(app) == 1


def test_a_view_calling_another_wrapped_view_that_raises_keeps_its_status(
    make_rules_app: Callable[..., Flask], marked: Marked
) -> None:
    """A view that calls another endpoint's view through
    ``app.view_functions`` and handles its error answers 200: marked 200
    once, not 500."""
    app = make_rules_app()

    @app.get("/proxy/page")
    def proxy_page() -> str:
        try:
            return str(app.view_functions["page"]())
        except RuntimeError:
            return "fallback"

    FlaskBitmapist(app)
    web = app.test_client()
    assert web.get("/proxy/page?uid=1&explode=1").text == "fallback"
    assert marked() == {"page:ok": {1}}
    assert queued(app) == 1


def test_an_after_rule_app_collected_leaves_no_receiver_for_a_new_app(
    redis_url: str, other_redis_url: str, tmp_path: Path, marked: Marked
) -> None:
    """The ``got_request_exception`` receiver is dropped with its app: a
    later app without rules, whose failed request the old app's hooks must
    not mark, leaves the old app's db untouched."""
    import gc

    old = page_app(redis_url, tmp_path, RULES, "old")
    FlaskBitmapist(old)
    del old
    gc.collect()
    new = page_app(other_redis_url, tmp_path, "rules: []\n", "new")
    new.config["BITMAPIST_RULES"] = None
    FlaskBitmapist(new)
    with pytest.raises(RuntimeError):
        new.test_client().get("/page?uid=1&explode=1")
    assert marked() == {}
