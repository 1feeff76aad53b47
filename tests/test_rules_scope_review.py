"""Review of the scoped teardown hook (``RuleSet.after_rule_blueprints``):
the rules' teardown hook is put under the blueprint names after rules may
fire for, so Flask calls it only for requests whose ``request.blueprints``
(read off the endpoint string, ``flask.helpers._split_blueprint_path``)
include one of them.

The claim held everywhere it was probed: Flask derives a request's
blueprint names from its endpoint alone, every prefix of it ending before
a dot, and an after rule's scope is such a prefix of each endpoint it
matches (exact names or globs). Exhaustive checks over short names and
globs, and real requests (nested blueprints, ``name=``, a blueprint
registered twice, app endpoints with dots, leading or trailing dots,
``[``, ``?``, ``*`` in names, case, routing errors, url value
preprocessors, failing after functions and error handlers, BaseException,
several rule files), count a failed request as 500 once. Two tests
failed on the change: ``init_app`` after the app's first request no
longer tripped Flask's setup check (the hook is now registered through
``app.teardown_request`` before it moves); with ``BITMAPIST_RAISE_ERRORS``,
a hook that raises skips app teardown functions that used to run before it
(accepted: the test pins it).
"""

from __future__ import annotations

import itertools
import random
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType, SimpleNamespace
from typing import Any

import pytest
import redis
from flask import Blueprint, Flask, g, request
from flask.wrappers import Request
from keys import users_by_event
from rules_app import page_app

from flask_bitmapist import FlaskBitmapist
from flask_bitmapist.track.rules import (
    Rule,
    RuleSet,
    _compile,
    _glob_problem,
)

EVENTS = ("ok", "failed")


def rules_for(*endpoints: str, when: str = "after") -> str:
    """Two after rules per endpoint glob: ``ok`` on 200, ``failed`` on 500,
    the user from ``?uid=`` (before rules: one, ``ok``)."""
    text = "rules:\n"
    if when == "before":
        return text + "".join(
            f'  - event: "ok"\n    endpoint: "{endpoint}"\n'
            "    user: query:uid\n    when: before\n"
            for endpoint in endpoints
        )
    for endpoint in endpoints:
        for event, status in (("ok", 200), ("failed", 500)):
            text += (
                f'  - event: "{event}"\n    endpoint: "{endpoint}"\n'
                f"    user: query:uid\n    status: [{status}]\n"
            )
    return text


def view() -> str:
    if request.args.get("explode"):
        raise RuntimeError("the view failed")
    return "fine"


def teardown_calls(app: Flask, path: str) -> int:
    """How many times one request to ``path`` calls the rules' teardown
    hook (an exception the request raises is swallowed)."""
    web = app.test_client()
    count = 0

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal count
        if (
            event == "call"
            and frame.f_code.co_name == "teardown_request"
            and "flask_bitmapist" in frame.f_code.co_filename
        ):
            count += 1

    sys.setprofile(profile)
    try:
        web.get(path)
    except BaseException:
        pass
    finally:
        sys.setprofile(None)
    return count


def queued(app: Flask) -> int:
    return int(app.extensions["bitmapist"].state(app).writer.stats().queued)


def scopes_of(app: Flask) -> dict[str | None, int]:
    """The names the rules' teardown hook is kept under, with how many
    times it is there."""
    found: dict[str | None, int] = {}
    for name, functions in app.teardown_request_funcs.items():
        hooks = [f for f in functions if "RuleHooks" in repr(f)]
        if hooks:
            found[name] = len(hooks)
    return found


def flask_blueprints(endpoint: str) -> list[str]:
    """``request.blueprints`` for a request of ``endpoint``, by Flask's own
    properties."""
    fake = SimpleNamespace(endpoint=endpoint)
    fake.blueprint = Request.blueprint.fget(fake)  # type: ignore[attr-defined]
    return list(Request.blueprints.fget(fake))  # type: ignore[attr-defined]


# --- The scope against Flask's blueprint names, exhaustively --------------

ALPHABET = "a.[]*?!"


def _rule(glob: str) -> Rule:
    return _compile({"event": "x", "endpoint": glob}, "query:uid", None, "o")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def small_world() -> tuple[list[str], dict[str, frozenset[int]]]:
    """Every endpoint of 1 to 4 characters of :data:`ALPHABET`, and for
    every glob of 1 to 4 that the rules accept, the endpoints it matches."""
    endpoints = [
        "".join(p) for n in range(1, 5) for p in itertools.product(ALPHABET, repeat=n)
    ]
    globs = [
        glob
        for glob in (
            "".join(p)
            for n in range(1, 5)
            for p in itertools.product(ALPHABET, repeat=n)
        )
        if _glob_problem(glob) is None
    ]
    matches = {}
    for glob in globs:
        rule = _rule(glob)
        matches[glob] = frozenset(
            index
            for index, endpoint in enumerate(endpoints)
            if rule.matches_endpoint(endpoint)
        )
    return endpoints, matches


def _hits(endpoint: str, scopes: frozenset[str | None]) -> int:
    return sum(name in scopes for name in [*flask_blueprints(endpoint), None])


def test_every_endpoint_a_glob_matches_gets_the_hook_exactly_once(
    small_world: tuple[list[str], dict[str, frozenset[int]]],
) -> None:
    """For every short glob (dots, ``[``, ``]``, ``!``, ``*``, ``?``) and
    every short endpoint it matches (exactly or by fnmatch), Flask calls the
    hook under exactly one of the scope's names: never skipped, never
    twice."""
    endpoints, matches = small_world
    wrong = [
        (glob, endpoints[index])
        for glob, matched in matches.items()
        for index in matched
        if _hits(endpoints[index], RuleSet([_rule(glob)]).after_rule_blueprints()) != 1
    ]
    assert wrong == []


def test_two_rules_together_still_call_the_hook_once(
    small_world: tuple[list[str], dict[str, frozenset[int]]],
) -> None:
    """Random pairs of globs (the nested names dropped, or ``None``
    absorbing the rest): every endpoint either matches is called once."""
    endpoints, matches = small_world
    globs = sorted(matches)
    pick = random.Random(20260314)
    wrong = []
    for _ in range(4000):
        first, second = pick.choice(globs), pick.choice(globs)
        scopes = RuleSet([_rule(first), _rule(second)]).after_rule_blueprints()
        for index in matches[first] | matches[second]:
            if _hits(endpoints[index], scopes) != 1:
                wrong.append((first, second, endpoints[index]))
    assert wrong == []


@pytest.mark.parametrize(
    ("endpoint", "names"),
    [
        (".page", [""]),
        ("admin.", ["admin"]),
        ("admin..x", ["admin.", "admin"]),
        ("shop.cart.view", ["shop.cart", "shop"]),
        ("page", []),
    ],
)
def test_flask_reads_blueprint_names_off_the_endpoint(
    endpoint: str, names: list[str]
) -> None:
    """What the scope relies on, in the installed Flask: every prefix of
    the endpoint that ends before a dot, the empty one too."""
    assert flask_blueprints(endpoint) == names


# --- Real requests: a failed request in scope counts as 500, once ----------

Setup = Callable[[Flask], None]


def _app_endpoints(*names: str) -> Setup:
    """App routes ``/t0``, ``/t1`` ... with the given endpoint names, no
    blueprint."""

    def setup(app: Flask) -> None:
        for number, name in enumerate(names):
            app.add_url_rule(f"/t{number}", endpoint=name, view_func=view)

    return setup


def _nested(app: Flask) -> None:
    admin = Blueprint("admin", __name__, url_prefix="/admin")
    deep = Blueprint("deep", __name__, url_prefix="/deep")
    deep.add_url_rule("/page", "page", view)
    admin.add_url_rule("/page", "page", view)
    admin.register_blueprint(deep)
    admin.register_blueprint(deep, name="again", url_prefix="/again")
    app.register_blueprint(admin)


def _renamed(app: Flask) -> None:
    admin = Blueprint("admin", __name__)
    admin.add_url_rule("/page", "page", view)
    app.register_blueprint(admin, url_prefix="/admin")
    app.register_blueprint(admin, name="staff", url_prefix="/staff")


CASES = [
    # (setup, rule endpoints, path that fails, path out of scope or None)
    pytest.param(_app_endpoints("admin.x"), ["admin.x"], "/t0", None, id="app-dot"),
    pytest.param(
        _app_endpoints("admin.x", "admin.x"), ["admin.*"], "/t1", None, id="same-ep"
    ),
    pytest.param(_app_endpoints("admin."), ["admin.*"], "/t0", None, id="trail"),
    pytest.param(_app_endpoints("admin."), ["admin."], "/t0", None, id="trail-x"),
    pytest.param(_app_endpoints(".page"), [".page"], "/t0", None, id="lead"),
    pytest.param(_app_endpoints(".page"), [".*"], "/t0", None, id="lead-glob"),
    pytest.param(
        _app_endpoints("admin..x", "admin.y"), ["admin..x"], "/t0", "/t1", id="dots"
    ),
    pytest.param(
        _app_endpoints("adm.in.x"), ["adm[.]in.x"], "/t0", None, id="class-dot"
    ),
    pytest.param(
        _app_endpoints("adm[.]in.x"), ["adm[.]in.x"], "/t0", None, id="class-lit"
    ),
    pytest.param(
        _app_endpoints("admin.a1", "bdmin.a1"),
        ["admin.[ab]*"],
        "/t0",
        "/t1",
        id="class",
    ),
    pytest.param(
        _app_endpoints("admin.[ab]*"), ["admin.[ab]*"], "/t0", None, id="glob-lit"
    ),
    pytest.param(_app_endpoints("a?b.x"), ["a?b.x"], "/t0", None, id="q-lit"),
    pytest.param(_app_endpoints("a*.b.x"), ["a*.b.x"], "/t0", None, id="star-lit"),
    pytest.param(
        _app_endpoints("x.page", "y.pages"), ["*.page"], "/t0", "/t1", id="any"
    ),
    pytest.param(
        _app_endpoints("Admin.x", "admin.x"), ["Admin.*"], "/t0", "/t1", id="case"
    ),
    pytest.param(
        _app_endpoints("shop.cart.view", "shop.other"),
        ["shop.cart.view"],
        "/t0",
        "/t1",
        id="deep-name",
    ),
    pytest.param(_nested, ["admin.deep.*"], "/admin/deep/page", "/admin/page", id="n"),
    pytest.param(
        _nested, ["admin.again.page"], "/admin/again/page", "/admin/deep/page", id="n2"
    ),
    pytest.param(_nested, ["admin.*", "admin.deep.page"], "/admin/deep/page", None),
    pytest.param(_renamed, ["staff.*"], "/staff/page", "/admin/page", id="name="),
    pytest.param(_renamed, ["admin.page"], "/admin/page", "/staff/page", id="twice"),
]


@pytest.mark.parametrize(("setup", "endpoints", "failing", "outside"), CASES)
def test_a_failed_request_an_after_rule_fires_for_counts_as_500_once(
    redis_url: str,
    tmp_path: Path,
    client: redis.Redis,
    setup: Setup,
    endpoints: list[str],
    failing: str,
    outside: str | None,
) -> None:
    """The view raises and, in testing, the error propagates: the after
    hook never runs, and the teardown hook, kept under the rules' blueprint
    names, is called once and marks 500. A request of an endpoint the rules
    do not match (when given) marks nothing and runs no teardown hook
    unless the scope is every request."""
    app = page_app(redis_url, tmp_path, rules_for(*endpoints), "scope")
    FlaskBitmapist(app)
    setup(app)
    web = app.test_client()
    with pytest.raises(RuntimeError, match="the view failed"):
        web.get(f"{failing}?uid=1&explode=1")
    assert web.get(f"{failing}?uid=2").status_code == 200
    assert teardown_calls(app, f"{failing}?uid=3&explode=1") == 1
    if outside is not None:
        with pytest.raises(RuntimeError):
            web.get(f"{outside}?uid=4&explode=1")
        assert web.get(f"{outside}?uid=5").status_code == 200
        expected = 1 if None in scopes_of(app) else 0
        assert teardown_calls(app, f"{outside}?uid=6&explode=1") == expected
    assert users_by_event(client, EVENTS) == {"failed": {1, 3}, "ok": {2}}
    assert queued(app) == 3


def test_rules_on_an_outer_and_inner_blueprint_keep_one_hook(
    redis_url: str, tmp_path: Path
) -> None:
    """``admin.*`` covers ``admin.deep.*``: the hook is kept once, under
    ``admin``, so a request of ``admin.deep`` is not torn down twice."""
    app = page_app(redis_url, tmp_path, rules_for("admin.deep.*", "admin.*"), "nest")
    FlaskBitmapist(app)
    _nested(app)
    assert scopes_of(app) == {"admin": 1}
    assert teardown_calls(app, "/admin/deep/page?uid=1&explode=1") == 1


def test_case_differs_so_no_hook_and_no_mark(
    redis_url: str, tmp_path: Path, client: redis.Redis
) -> None:
    """``Admin.*`` is matched case-sensitively (fnmatchcase), as Flask keys
    hooks: the ``admin`` blueprint's failed request matches no rule and
    calls no teardown hook; the ``Admin`` one does."""
    app = page_app(redis_url, tmp_path, rules_for("Admin.*"), "case")
    FlaskBitmapist(app)
    _app_endpoints("admin.x", "Admin.x")(app)
    assert scopes_of(app) == {"Admin": 1}
    assert teardown_calls(app, "/t0?uid=1&explode=1") == 0
    assert teardown_calls(app, "/t1?uid=2&explode=1") == 1
    assert users_by_event(client, EVENTS) == {"failed": {2}}


def test_routing_errors_have_no_endpoint_so_no_hook(
    redis_url: str, tmp_path: Path, client: redis.Redis
) -> None:
    """A 404 or 405 under the blueprint's URL prefix has no endpoint, so no
    blueprint: endpoint rules cannot match it, and the hook is skipped. A
    path rule widens the scope to every request."""
    app = page_app(redis_url, tmp_path, rules_for("admin.*"), "routing")
    FlaskBitmapist(app)
    _nested(app)
    web = app.test_client()
    assert web.get("/admin/nowhere?uid=1").status_code == 404
    assert web.post("/admin/page?uid=2").status_code == 405
    assert teardown_calls(app, "/admin/nowhere?uid=3") == 0
    assert users_by_event(client, EVENTS) == {}
    path_rule = '  - event: "failed"\n    path: "/admin/*"\n    user: query:uid\n'
    wide = page_app(redis_url, tmp_path, rules_for("admin.*") + path_rule, "wide")
    FlaskBitmapist(wide)
    assert scopes_of(wide) == {None: 1}


@pytest.mark.parametrize("level", ["blueprint", "app"])
def test_a_url_value_preprocessor_that_fails_counts_as_500(
    redis_url: str, tmp_path: Path, client: redis.Redis, level: str
) -> None:
    """A url value preprocessor (the blueprint's or the app's) raises
    before the view: the request is of the blueprint by its endpoint, so
    the hook runs and marks it 500, once."""
    app = page_app(redis_url, tmp_path, rules_for("admin.*"), "preprocess")
    FlaskBitmapist(app)
    admin = Blueprint("admin", __name__, url_prefix="/admin")
    admin.add_url_rule("/<slug>", "page", lambda slug: slug)

    def refuse(endpoint: str | None, values: dict[str, Any] | None) -> None:
        if request.args.get("explode"):
            raise LookupError("no such slug")

    scaffold: Any = admin if level == "blueprint" else app
    scaffold.url_value_preprocessor(refuse)
    app.register_blueprint(admin)
    web = app.test_client()
    with pytest.raises(LookupError):
        web.get("/admin/x?uid=1&explode=1")
    assert web.get("/admin/x?uid=2").status_code == 200
    assert users_by_event(client, EVENTS) == {"failed": {1}, "ok": {2}}


class _Stop(BaseException):
    """Not an Exception, as gevent's Timeout."""


@pytest.mark.parametrize("failure", ["after function", "error handler", "base"])
def test_requests_whose_after_hook_never_ran_count_as_500_in_scope(
    redis_url: str, tmp_path: Path, client: redis.Redis, failure: str
) -> None:
    """Where exceptions do not propagate: an after function that fails, a
    500 handler that raises, a BaseException from the view. Each leaves the
    after hook unrun; the blueprint's teardown hook marks 500, once."""
    app = page_app(redis_url, tmp_path, rules_for("admin.*"), "unrun")
    app.config.update(TESTING=False, PROPAGATE_EXCEPTIONS=False)
    FlaskBitmapist(app)
    admin = Blueprint("admin", __name__, url_prefix="/admin")

    @admin.get("/page")
    def page() -> str:
        if request.args.get("explode"):
            if failure == "base":
                raise _Stop()
            raise RuntimeError("the view failed")
        return "fine"

    if failure == "after function":

        @app.after_request
        def audit(response: Any) -> Any:
            if request.args.get("explode"):
                raise LookupError("the audit failed")
            return response

    elif failure == "error handler":

        def broken(error: Exception) -> Any:
            raise LookupError("the error page failed")

        app.register_error_handler(500, broken)
    app.register_blueprint(admin)
    web = app.test_client()
    assert web.get("/admin/page?uid=2").status_code == 200
    try:
        status = web.get("/admin/page?uid=1&explode=1").status_code
    except (LookupError, _Stop):
        status = 500
    assert status == 500
    assert users_by_event(client, EVENTS) == {"failed": {1}, "ok": {2}}
    assert queued(app) == 2


def test_before_rules_only_install_no_teardown_hook(
    redis_url: str, tmp_path: Path, client: redis.Redis
) -> None:
    """Rules files with only before rules: no teardown hook anywhere (the
    old one marked nothing either), and before rules still mark."""
    app = page_app(redis_url, tmp_path, rules_for("admin.*", when="before"), "b")
    FlaskBitmapist(app)
    _app_endpoints("admin.x")(app)
    assert scopes_of(app) == {}
    with pytest.raises(RuntimeError):
        app.test_client().get("/t0?uid=1&explode=1")
    assert users_by_event(client, EVENTS) == {"ok": {1}}


def test_several_rule_files_join_their_scopes(
    redis_url: str, tmp_path: Path, client: redis.Redis
) -> None:
    """Two rules files (``admin.*``, ``shop.cart.view``) and one of before
    rules on app endpoints: the hook is under ``admin`` and ``shop.cart``,
    and a failed request of each counts as 500."""
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "a.yaml").write_text(rules_for("admin.*"))
    (folder / "b.yaml").write_text(rules_for("shop.cart.view"))
    (folder / "c.yaml").write_text(rules_for("page", when="before"))
    app = page_app(redis_url, tmp_path, "rules: []\n", "files")
    app.config["BITMAPIST_RULES"] = [str(folder)]
    FlaskBitmapist(app)
    _app_endpoints("admin.x", "shop.cart.view", "shop.other")(app)
    assert scopes_of(app) == {"admin": 1, "shop.cart": 1}
    web = app.test_client()
    for number, uid in ((0, 1), (1, 2), (2, 3)):
        with pytest.raises(RuntimeError):
            web.get(f"/t{number}?uid={uid}&explode=1")
    assert users_by_event(client, EVENTS) == {"failed": {1, 2}}


def test_the_hook_runs_before_the_apps_teardown_functions(
    redis_url: str, tmp_path: Path, client: redis.Redis
) -> None:
    """The documented order change: on the blueprint's requests the hook
    runs before every app teardown function, so a ``g`` value that one
    registered after the extension drops is still read (the old hook, in
    the app's list, ran after it and marked nothing)."""
    rules = rules_for("admin.*").replace("query:uid", "g:uid")
    app = page_app(redis_url, tmp_path, rules, "order")
    FlaskBitmapist(app)

    @app.teardown_request
    def drop(error: BaseException | None) -> None:
        g.pop("uid", None)

    admin = Blueprint("admin", __name__, url_prefix="/admin")

    @admin.before_request
    def load() -> None:
        g.uid = int(request.args["uid"])

    admin.add_url_rule("/page", "page", view)
    app.register_blueprint(admin)
    with pytest.raises(RuntimeError):
        app.test_client().get("/admin/page?uid=1&explode=1")
    assert users_by_event(client, EVENTS) == {"failed": {1}}


# --- Defects ----------------------------------------------------------------


def test_init_app_after_the_first_request_still_fails_flasks_setup_check(
    redis_url: str, tmp_path: Path
) -> None:
    """DEFECT: the hooks used to go in with ``app.teardown_request``, a
    Flask setup method, so ``FlaskBitmapist(app)`` after the app's first
    request failed with Flask's AssertionError ("can no longer be called on
    the application"). It now writes ``app.teardown_request_funcs`` itself
    (middleware.py, ``RuleHooks.install``): with after rules only and the
    dashboard off, a late init succeeds silently and installs hooks on a
    running app."""
    app = page_app(
        redis_url,
        tmp_path,
        rules_for("admin.*"),
        "late",
        BITMAPIST_DISABLE_BLUEPRINT=True,
    )
    assert app.test_client().get("/page").status_code == 200
    with pytest.raises(AssertionError, match="can no longer be called"):
        FlaskBitmapist(app)


def test_with_raise_errors_a_failing_teardown_hook_skips_the_app_teardowns(
    redis_url: str, tmp_path: Path
) -> None:
    """``BITMAPIST_RAISE_ERRORS`` only, and accepted (docs/changes.md): an
    app teardown function registered after ``init_app`` (a
    ``db.session.remove``) ran before the extension's teardown hook, in the
    app's list. Under the blueprint the hook runs before every app teardown,
    so when it raises (here an ``event_marked`` receiver fails, and
    raise_errors lets it through) Flask skips that function, as Flask skips
    the teardown functions after any that raises. Without raise_errors the
    hook logs and never raises."""
    from flask_bitmapist.track.signals import event_marked

    app = page_app(
        redis_url, tmp_path, rules_for("admin.*"), "raise", BITMAPIST_RAISE_ERRORS=True
    )
    FlaskBitmapist(app)
    ran: list[str] = []

    @app.teardown_request
    def cleanup(error: BaseException | None) -> None:
        ran.append("cleanup")

    _app_endpoints("admin.x")(app)

    def broken(sender: Flask, **extra: Any) -> None:
        raise KeyError("the receiver failed")

    event_marked.connect(broken, app)
    try:
        with pytest.raises(KeyError, match="the receiver failed"):
            app.test_client().get("/t0?uid=1&explode=1")
    finally:
        event_marked.disconnect(broken, app)
    assert ran == []
