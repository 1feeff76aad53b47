"""What the rules middleware marks on a realistic app: every schema key,
multiple matches, before and after, statuses, raised exceptions, id sources."""

from __future__ import annotations

import dataclasses
import logging
import textwrap
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Blueprint, Flask, g, request
from flask.testing import FlaskClient
from flask_login import LoginManager
from keys import day_key, hour_key, unique_key
from keys import users as key_users
from rules_app import User, create_app

from flask_bitmapist import FlaskBitmapist
from flask_bitmapist.testing import free_port
from flask_bitmapist.track.middleware import install_rule_hooks
from flask_bitmapist.track.rules import RuleSet, load_rules

HERE = Path(__file__).parent
APP_RULES = [
    str(HERE / "rules" / "valid" / "app"),
    str(HERE / "rules" / "valid" / "app" / "more"),
]
LOGIN = {"X-Login": "5"}


@pytest.fixture
def app(redis_url: str, tmp_path: Path) -> Flask:
    return create_app(redis_url, str(tmp_path / "instance"), APP_RULES)


@pytest.fixture
def web(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def marked(client: redis.Redis) -> Callable[[str], set[int]]:
    """The users marked today for an event."""

    def users(event: str) -> set[int]:
        return set(key_users(client, day_key(event)))

    return users


def queued(app: Flask) -> int:
    return int(app.extensions["bitmapist"].state(app).writer.stats().queued)


def test_after_rule_marks_the_logged_in_user(web: FlaskClient, marked: Any) -> None:
    assert web.get("/", headers=LOGIN).text == "home"
    assert marked("home:viewed") == {5}
    assert marked("anything:served") == {5}


def test_anonymous_users_mark_nothing(web: FlaskClient, client: redis.Redis) -> None:
    assert web.get("/").text == "home"
    assert client.keys("*") == []


def test_status_filters_on_a_json_api(
    app: Flask, web: FlaskClient, marked: Any
) -> None:
    created = web.post("/projects/", json={"name": "x"}, headers=LOGIN)
    assert created.status_code == 201
    assert (marked("project:created"), marked("project:rejected")) == ({5}, set())
    rejected = web.post("/projects/", json={}, headers={"X-Login": "6"})
    assert rejected.status_code == 400
    assert (marked("project:created"), marked("project:rejected")) == ({5}, {6})
    assert marked("project:touched") == {5, 6}


def test_after_rules_see_the_status_every_hook_agreed_on(
    web: FlaskClient, marked: Any
) -> None:
    headers = {**LOGIN, "X-Force-Status": "403"}
    assert (
        web.post("/projects/", json={"name": "x"}, headers=headers).status_code == 403
    )
    assert (marked("project:created"), marked("project:rejected")) == (set(), {5})


def test_a_view_that_raises_counts_as_500(make_app_with: Any, marked: Any) -> None:
    app = make_app_with(PROPAGATE_EXCEPTIONS=False)
    response = app.test_client().post(
        "/projects/", json={"explode": True}, headers=LOGIN
    )
    assert response.status_code == 500
    assert (marked("project:created"), marked("project:rejected")) == (set(), {5})


def test_a_propagated_exception_still_counts_as_500(
    web: FlaskClient, marked: Any
) -> None:
    with pytest.raises(RuntimeError, match="the view failed"):
        web.post("/projects/", json={"explode": True}, headers=LOGIN)
    assert (marked("project:created"), marked("project:rejected")) == (set(), {5})


def test_one_event_is_marked_once_however_many_rules_match(
    app: Flask, web: FlaskClient, marked: Any
) -> None:
    web.get("/projects/9/launch", headers=LOGIN)
    assert marked("project:touched") == {5}
    assert marked("project:viewed") == {9}
    assert marked("anything:served") == {5}
    assert queued(app) == 3


def test_methods_default_to_get_and_star_means_any(
    web: FlaskClient, marked: Any
) -> None:
    assert web.delete("/projects/9/launch", headers=LOGIN).status_code == 200
    assert marked("project:touched") == {5}
    assert marked("project:viewed") == set()


def test_4xx_from_abort(web: FlaskClient, marked: Any) -> None:
    assert web.get("/projects/9/missing", headers=LOGIN).status_code == 404
    assert marked("project:touched") == {5}
    assert marked("project:viewed") == set()
    assert marked("anything:served") == set()


def test_before_rules_mark_whatever_the_outcome(
    web: FlaskClient, marked: Any, client: redis.Redis
) -> None:
    assert web.post("/shop/checkout?declined=1", headers=LOGIN).status_code == 402
    assert (marked("checkout:started"), marked("checkout:paid")) == ({5}, set())
    assert web.post("/shop/checkout", headers={"X-Login": "7"}).status_code == 200
    assert (marked("checkout:started"), marked("checkout:paid")) == ({5, 7}, {7})
    assert key_users(client, hour_key("checkout:started")) == [5, 7]
    assert client.exists(hour_key("checkout:paid")) == 0
    assert key_users(client, unique_key("checkout:paid")) == [7]
    assert client.exists(unique_key("checkout:started")) == 0


def test_path_glob_with_a_header_id(web: FlaskClient, marked: Any) -> None:
    for method in ("get", "put", "delete"):
        assert (
            getattr(web, method)(
                "/api/items/3", headers={"X-User-Id": "42"}
            ).status_code
            == 200
        )
    assert marked("api:called") == {42}


def test_missing_and_bad_ids_mark_nothing_and_change_nothing(
    web: FlaskClient, marked: Any, caplog: pytest.LogCaptureFixture
) -> None:
    assert web.get("/api/items/3").json == {"id": 3, "method": "GET"}
    with caplog.at_level(logging.WARNING, logger="flask_bitmapist"):
        response = web.get("/api/items/3", headers={"X-User-Id": "abc"})
    assert response.json == {"id": 3, "method": "GET"}
    assert marked("api:called") == set()
    assert (
        "more/api.yml, line 2 marked nothing: User id for event 'api:called' must be an int"
        in caplog.text
    )


@pytest.mark.parametrize(
    ("url", "event", "user"),
    [
        ("/api/search?uid=8", "api:searched", 8),
        ("/teams/3?owner=21", "team:viewed", 21),
        ("/reports/q3?reader=31", "report:read", 31),
        ("/projects/12/launch", "project:viewed", 12),
    ],
)
def test_query_named_g_and_view_arg_sources(
    web: FlaskClient, marked: Any, url: str, event: str, user: int
) -> None:
    assert web.get(url).status_code == 200
    assert marked(event) == {user}
    missing = url.split("?")[0]
    if missing != url:
        web.get(missing)
        assert marked(event) == {user}


@pytest.mark.parametrize(
    ("url", "event"),
    [
        ("/api/search?uid=-1", "api:searched"),
        ("/api/search?uid=4294967296", "api:searched"),
        ("/teams/3?owner=abc", "team:viewed"),
        ("/reports/q3?reader=1.5", "report:read"),
    ],
)
def test_bad_values_from_each_source_are_logged_and_mark_nothing(
    web: FlaskClient,
    client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    url: str,
    event: str,
) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_bitmapist"):
        assert web.get(url).status_code == 200
    assert f"User id for event {event!r} must be" in caplog.text
    assert client.keys(f"trackist_{event}_*") == []


def test_a_bad_session_value_marks_nothing(
    web: FlaskClient, client: redis.Redis
) -> None:
    with web.session_transaction() as session:
        session["cart_owner"] = "eleven"
    assert web.get("/shop/cart").text == "cart"
    assert client.keys("trackist_cart:viewed_*") == []


def test_session_source(web: FlaskClient, marked: Any) -> None:
    web.get("/shop/cart")
    assert marked("cart:viewed") == set()
    with web.session_transaction() as session:
        session["cart_owner"] = "11"
    web.get("/shop/cart")
    assert marked("cart:viewed") == {11}


def test_current_user_after_login_in_the_same_request(
    web: FlaskClient, marked: Any, make_app_with: Any
) -> None:
    rules_file = HERE / "rules" / "valid" / "login.yaml"
    app = make_app_with(BITMAPIST_RULES=str(rules_file))
    app.test_client().post("/login/15")
    assert marked("user:logged_in") == {15}


def test_globs_skip_static_which_an_exact_rule_names(
    web: FlaskClient, marked: Any
) -> None:
    response = web.get("/static/robots.txt?uid=4")
    assert response.status_code == 200
    response.close()
    assert marked("static:fetched") == {4}
    assert marked("anything:served") == set()


def test_redis_down_changes_no_response(make_app_with: Any) -> None:
    app = make_app_with(BITMAPIST_REDIS_URL=f"redis://127.0.0.1:{free_port()}")
    web = app.test_client()
    assert web.get("/", headers=LOGIN).text == "home"
    assert web.post("/projects/", json={"name": "x"}, headers=LOGIN).status_code == 201
    assert app.extensions["bitmapist"].state(app).writer.stats().dropped == 4


@pytest.fixture
def make_app_with(redis_url: str, tmp_path: Path) -> Callable[..., Flask]:
    def factory(**config: Any) -> Flask:
        rules = config.pop("BITMAPIST_RULES", APP_RULES)
        return create_app(
            config.pop("BITMAPIST_REDIS_URL", redis_url),
            str(tmp_path / "i"),
            rules,
            **config,
        )

    return factory


@pytest.fixture
def unmatched_rules(tmp_path: Path) -> Path:
    path = tmp_path / "unmatched.yaml"
    lines = ["rules:"]
    for number in range(50):
        lines += [f'  - event: "never:{number}"', f"    endpoint: nowhere.n{number}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_request_no_rule_matches_costs_no_redis_call(
    make_app_with: Any, unmatched_rules: Path, round_trips: Any, client: redis.Redis
) -> None:
    app = make_app_with(BITMAPIST_RULES=str(unmatched_rules))
    web = app.test_client()
    round_trips.count = 0
    for _ in range(3):
        assert web.get("/", headers=LOGIN).text == "home"
    assert round_trips.count == 0
    assert app.extensions["bitmapist"].state(app).ruleset.for_endpoint("index") == (
        (),
        (),
    )
    assert client.keys("*") == []


def test_rules_matching_no_route_are_logged_once_at_the_first_request(
    make_app_with: Any, unmatched_rules: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app_with(BITMAPIST_RULES=str(unmatched_rules))
    with caplog.at_level(logging.WARNING, logger="flask_bitmapist"):
        app.test_client().get("/")
        app.test_client().get("/")
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 50
    assert (
        warnings[0]
        == f"{unmatched_rules}, line 2: rule 'never:0' (endpoint 'nowhere.n0') matches no route."
    )


def test_rules_check_exits_1_and_lists_rules_that_match_no_route(
    make_app_with: Any, unmatched_rules: Path
) -> None:
    app = make_app_with(BITMAPIST_RULES=str(unmatched_rules))
    result = app.test_cli_runner().invoke(args=["bitmapist", "rules", "check"])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 50
    assert (
        lines[0]
        == f"{unmatched_rules}, line 2: rule 'never:0' (endpoint 'nowhere.n0') matches no route."
    )


def test_rules_check_exits_0_when_every_rule_matches(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["bitmapist", "rules", "check"])
    assert (result.exit_code, result.stdout) == (
        0,
        "All 15 rules can fire on the app's routes.\n",
    )


def test_rules_check_judges_path_globs_against_routes(
    make_app_with: Any, tmp_path: Path
) -> None:
    path = tmp_path / "paths.yaml"
    path.write_text(
        'rules:\n  - event: "a"\n    path: "/api/items/*"\n  - event: "b"\n    path: "/nope/*"\n'
    )
    result = (
        make_app_with(BITMAPIST_RULES=str(path))
        .test_cli_runner()
        .invoke(args=["bitmapist", "rules", "check"])
    )
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"{path}, line 4: rule 'b' (path '/nope/*') matches no route.\n"
    )


# --- who the user of a request is: whoever it ends with, or else whoever it
# started with


@pytest.fixture
def write_rules(tmp_path: Path) -> Callable[[str], str]:
    """Write a rules file (dedented) and return its path."""

    def write(text: str) -> str:
        path = tmp_path / "rules.yaml"
        path.write_text(textwrap.dedent(text).lstrip())
        return str(path)

    return write


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "flask_bitmapist"
    ]


@pytest.mark.parametrize(
    ("source", "user"),
    [
        ("current_user", 15),
        ("current_user.account.id", 1015),
        ("session:_user_id", 15),
    ],
)
def test_a_logout_rule_marks_the_user_the_request_started_with(
    make_app_with: Any,
    write_rules: Callable[[str], str],
    marked: Any,
    source: str,
    user: int,
) -> None:
    path = write_rules(f"""
        rules:
          - event: "user:signed_out"
            endpoint: logout_view
            methods: [POST]
            user: {source}
        """)
    web = make_app_with(BITMAPIST_RULES=path).test_client()
    assert web.post("/logout").text == "out"
    assert marked("user:signed_out") == set()
    assert web.post("/login/15").text == "in"
    assert web.post("/logout").text == "out"
    assert marked("user:signed_out") == {user}
    with web.session_transaction() as session:
        assert dict(session) == {}


def test_a_login_rule_marks_the_user_the_request_ends_with(
    make_app_with: Any, marked: Any
) -> None:
    app = make_app_with(BITMAPIST_RULES=str(HERE / "rules" / "valid" / "login.yaml"))
    web = app.test_client()
    assert web.post("/login/15").text == "in"
    assert marked("user:logged_in") == {15}
    # Logged in as 5 when it starts, as 16 when it ends: 16 is the user.
    assert web.post("/login/16", headers=LOGIN).text == "in"
    assert marked("user:logged_in") == {15, 16}


def test_named_sources_are_read_only_as_the_request_ends(
    make_app_with: Any, write_rules: Callable[[str], str], marked: Any
) -> None:
    calls: list[str | None] = []

    def counted() -> None:
        calls.append(request.endpoint)

    path = write_rules("""
        rules:
          - event: "home:viewed"
            endpoint: index
            user: counted
          - event: "home:counted"
            endpoint: index
            user: counted
        """)
    web = make_app_with(
        BITMAPIST_RULES=path, BITMAPIST_ID_SOURCES={"counted": counted}
    ).test_client()
    assert web.get("/shop/cart").text == "cart"
    assert calls == []
    assert web.get("/").text == "home"
    # Once for each rule as it ends, never early: a named source may have
    # side effects, or need what the app's own hooks set up.
    assert calls == ["index", "index"]
    assert marked("home:viewed") == set()


ECHO_RULE = """
    rules:
      - event: "echo:posted"
        endpoint: echo
        methods: [POST]
        user: {source}
    """


@pytest.mark.parametrize(
    ("source", "body", "echoed"),
    [
        ("form:uid", {"data": {"uid": "12"}}, b"uid=12"),
        ("json:uid", {"json": {"uid": 12}}, b'{"uid": 12}'),
    ],
)
def test_sources_the_client_sends_are_not_read_before_the_view(
    make_app_with: Any,
    write_rules: Callable[[str], str],
    marked: Any,
    source: str,
    body: dict[str, Any],
    echoed: bytes,
) -> None:
    path = write_rules(ECHO_RULE.format(source=source))
    web = make_app_with(BITMAPIST_RULES=path).test_client()
    assert web.post("/echo", **body).data == echoed
    assert marked("echo:posted") == {12}


def test_a_named_source_that_needs_the_view_finds_what_it_set(
    make_app_with: Any,
    write_rules: Callable[[str], str],
    marked: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = write_rules("""
        rules:
          - event: "user:signed_up"
            endpoint: signup
            methods: [POST]
            user: new_account
        """)
    app = make_app_with(
        BITMAPIST_RULES=path,
        # g.new_user does not exist until the view runs.
        BITMAPIST_ID_SOURCES={"new_account": lambda: g.new_user.id},
    )
    with caplog.at_level(logging.WARNING, logger="flask_bitmapist"):
        response = app.test_client().post("/signup")
    assert (response.status_code, response.text) == (201, "welcome")
    assert marked("user:signed_up") == {101}
    assert warnings_of(caplog) == []


# --- form, json and dotted paths


SIGN_UP = """
    rules:
      - event: "user:signed_up"
        endpoint: signup
        methods: [POST]
        status: [201]
        user: {source}
    """


@pytest.mark.parametrize(
    ("source", "body", "user"),
    [
        ("form:uid", {"data": {"uid": "12"}}, 12),
        ("json:uid", {"json": {"uid": 12}}, 12),
        ("json:user.id", {"json": {"user": {"id": 7}}}, 7),
        ("json:user.id", {"json": {"user": {"id": "8"}}}, 8),
        ("g:new_user.id", {}, 101),
    ],
)
def test_a_sign_up_rule_finds_the_new_user(
    make_app_with: Any,
    write_rules: Callable[[str], str],
    marked: Any,
    source: str,
    body: dict[str, Any],
    user: int,
) -> None:
    path = write_rules(SIGN_UP.format(source=source))
    response = make_app_with(BITMAPIST_RULES=path).test_client().post("/signup", **body)
    assert (response.status_code, response.text) == (201, "welcome")
    assert marked("user:signed_up") == {user}


@pytest.mark.parametrize(
    ("source", "body"),
    [
        ("json:user.id", {"json": {"user": 7}}),
        ("json:user.id", {"json": {"account": {"id": 7}}}),
        ("json:user.id", {"json": [{"user": {"id": 7}}]}),
        ("json:user.id", {"data": "{not json", "content_type": "application/json"}),
        ("json:uid", {"data": {"uid": "12"}}),
        ("form:uid", {"json": {"uid": 12}}),
        ("g:new_user.profile.id", {}),
        ("g:nobody.id", {}),
    ],
)
def test_a_value_missing_along_the_path_marks_nothing_quietly(
    make_app_with: Any,
    write_rules: Callable[[str], str],
    client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    source: str,
    body: dict[str, Any],
) -> None:
    path = write_rules(SIGN_UP.format(source=source))
    web = make_app_with(BITMAPIST_RULES=path).test_client()
    with caplog.at_level(logging.WARNING, logger="flask_bitmapist"):
        response = web.post("/signup", **body)
    assert (response.status_code, response.text) == (201, "welcome")
    assert client.keys("*") == []
    assert warnings_of(caplog) == []


def test_current_user_with_a_path_reads_its_attributes(
    make_app_with: Any, write_rules: Callable[[str], str], marked: Any
) -> None:
    path = write_rules("""
        user: current_user.account.id
        rules:
          - event: "home:viewed"
            endpoint: index
        """)
    web = make_app_with(BITMAPIST_RULES=path).test_client()
    assert web.get("/").text == "home"
    assert marked("home:viewed") == set()
    assert web.get("/", headers=LOGIN).text == "home"
    assert marked("home:viewed") == {1005}


@pytest.mark.parametrize(
    ("source", "body", "hint"),
    [
        (
            "g:new_user",
            {},
            "got <Account 101>. It is an object: name its id attribute, "
            'as in "g:new_user.id".',
        ),
        (
            "json:user",
            {"json": {"user": {"id": 7}}},
            "got {'id': 7}. It is not an id: name its id key, as in \"json:user.id\".",
        ),
    ],
)
def test_an_object_where_an_id_belongs_hints_at_its_id(
    make_app_with: Any,
    write_rules: Callable[[str], str],
    client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    source: str,
    body: dict[str, Any],
    hint: str,
) -> None:
    path = write_rules(SIGN_UP.format(source=source))
    web = make_app_with(BITMAPIST_RULES=path).test_client()
    with caplog.at_level(logging.WARNING, logger="flask_bitmapist"):
        assert web.post("/signup", **body).status_code == 201
    assert warnings_of(caplog) == [
        f"Rule at {path}, line 2 marked nothing: User id for event "
        "'user:signed_up' must be an int or a string of decimal digits (set "
        f"BITMAPIST_ID_MAP = True to use UUIDs, other strings or any int), {hint}"
    ]
    assert client.keys("*") == []


# --- "marked nothing" warnings: the first, then at most one a minute per rule


class Clock:
    """A clock the test sets by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def app_with_clock(
    redis_url: str, instance_path: str, rules: str, clock: Clock
) -> Flask:
    """A rules app whose hooks space their warnings by ``clock``."""
    app = create_app(redis_url, instance_path, [])
    state = app.extensions["bitmapist"].state(app)
    ruleset = RuleSet(load_rules([rules], app.root_path, state.id_sources))
    install_rule_hooks(app, dataclasses.replace(state, ruleset=ruleset), clock=clock)
    return app


def test_marked_nothing_warnings_are_rate_limited_per_rule_and_per_app(
    redis_url: str,
    tmp_path: Path,
    write_rules: Callable[[str], str],
    client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = write_rules("""
        rules:
          - event: "api:called"
            path: "/api/*"
            user: header:X-User-Id
          - event: "game:played"
            endpoint: play
            user: view_arg:user_id
        """)
    clock = Clock()
    web = app_with_clock(redis_url, str(tmp_path / "a"), path, clock).test_client()
    bad = {"X-User-Id": "abc"}
    api = (
        f"Rule at {path}, line 2 marked nothing: User id for event 'api:called' "
        "must be an int or a string of decimal digits (set BITMAPIST_ID_MAP = True to use UUIDs, other strings or any int), got 'abc'."
    )
    with caplog.at_level(logging.WARNING, logger="flask_bitmapist"):
        for _ in range(3):
            assert web.get("/api/items/3", headers=bad).json == {
                "id": 3,
                "method": "GET",
            }
        clock.now = 59.9
        web.get("/api/items/3", headers=bad)
        # Another rule: its first warning is logged.
        assert web.get("/play/99999999").text == "played 99999999"
        clock.now = 60.0
        web.get("/api/items/3", headers=bad)
        web.get("/api/items/3", headers=bad)
        # Another app, with the same rules file: its own first warning.
        other = app_with_clock(redis_url, str(tmp_path / "b"), path, Clock())
        other.test_client().get("/api/items/3", headers=bad)
    assert warnings_of(caplog) == [
        api,
        f"Rule at {path}, line 5 marked nothing: User id for event 'game:played' "
        "must be from 0 to 16777215 (BITMAPIST_MAX_USER_ID; set "
        "BITMAPIST_ID_MAP = True to use any int), got 99999999.",
        f"Rule at {path}, line 2 marked nothing (3 warnings suppressed since the "
        "last one): User id for event 'api:called' must be an int or a string "
        "of decimal digits (set BITMAPIST_ID_MAP = True to use UUIDs, other "
        "strings or any int), got 'abc'.",
        api,
    ]
    assert client.keys("*") == []


# --- current_user without Flask-Login set up on the app


def test_current_user_without_a_login_manager_is_reported_once(
    make_app: Any,
    write_rules: Callable[[str], str],
    client: redis.Redis,
    marked: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = write_rules("""
        rules:
          - event: "home:viewed"
            endpoint: index
          - event: "home:searched"
            endpoint: index
            user: query:uid
        """)
    app = make_app(rules=path)
    app.add_url_rule("/", "index", lambda: "home")
    web = app.test_client()
    with caplog.at_level(logging.WARNING, logger="flask_bitmapist"):
        assert web.get("/?uid=3").text == "home"
        assert web.get("/?uid=4").text == "home"
    assert warnings_of(caplog) == [
        "Rules use the id source current_user, but Flask-Login is not set up on "
        "this app: create LoginManager(app), or name another source with user:. "
        "Until then, the rules that use it mark nothing."
    ]
    assert marked("home:searched") == {3, 4}
    assert client.keys("trackist_home:viewed_*") == []


def test_a_login_manager_set_up_after_the_extension_is_found(
    make_app: Any,
    write_rules: Callable[[str], str],
    marked: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = write_rules("""
        rules:
          - event: "home:viewed"
            endpoint: index
        """)
    app = make_app(rules=path)
    login = LoginManager(app)

    @login.request_loader
    def from_header(request: Any) -> User | None:
        user_id = request.headers.get("X-Login")
        return User(user_id) if user_id else None

    app.add_url_rule("/", "index", lambda: "home")
    with caplog.at_level(logging.WARNING, logger="flask_bitmapist"):
        assert app.test_client().get("/", headers=LOGIN).text == "home"
    assert warnings_of(caplog) == []
    assert marked("home:viewed") == {5}


# --- BITMAPIST_MAX_USER_ID


PLAY = """
    rules:
      - event: "game:played"
        endpoint: play
        user: view_arg:user_id
    """


def test_an_id_above_the_maximum_marks_nothing_and_writes_no_key(
    make_app_with: Any,
    write_rules: Callable[[str], str],
    client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = write_rules(PLAY)
    web = make_app_with(BITMAPIST_RULES=path).test_client()
    with caplog.at_level(logging.WARNING, logger="flask_bitmapist"):
        response = web.get("/play/4294967295")
    assert (response.status_code, response.text) == (200, "played 4294967295")
    assert warnings_of(caplog) == [
        f"Rule at {path}, line 2 marked nothing: User id for event 'game:played' "
        "must be from 0 to 16777215 (BITMAPIST_MAX_USER_ID; set BITMAPIST_ID_MAP = True to use any int), got 4294967295."
    ]
    assert client.keys() == []
    assert client.dbsize() == 0


def test_rules_use_the_apps_max_user_id(
    make_app_with: Any,
    write_rules: Callable[[str], str],
    client: redis.Redis,
    marked: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = write_rules(PLAY)
    web = make_app_with(BITMAPIST_RULES=path, BITMAPIST_MAX_USER_ID=1000).test_client()
    with caplog.at_level(logging.WARNING, logger="flask_bitmapist"):
        assert web.get("/play/1001").text == "played 1001"
    assert warnings_of(caplog) == [
        f"Rule at {path}, line 2 marked nothing: User id for event 'game:played' "
        "must be from 0 to 1000 (BITMAPIST_MAX_USER_ID; set BITMAPIST_ID_MAP = True to use any int), got 1001."
    ]
    assert client.keys() == []
    assert web.get("/play/1000").text == "played 1000"
    assert marked("game:played") == {1000}


# --- what after rules must not do: load the user early, read large bodies


def test_an_after_rule_does_not_load_the_user_before_the_apps_hooks(
    redis_url: str, tmp_path: Path, write_rules: Callable[[str], str], marked: Any
) -> None:
    # The app's user loader needs what a blueprint's before_request sets
    # (a tenant); those hooks run after the extension's. Loading current_user
    # in the extension's hook would cache an anonymous user for the request.
    from flask_login import current_user, login_user

    path = write_rules("""
        rules:
          - event: "report:viewed"
            endpoint: reports.show
        """)
    app = Flask("tenants", instance_path=str(tmp_path / "tenants"))
    app.config.update(
        TESTING=True, SECRET_KEY="s", BITMAPIST_REDIS_URL=redis_url,
        BITMAPIST_RULES=path,
    )  # fmt: skip
    login = LoginManager(app)

    @login.user_loader
    def load(user_id: str) -> Any:
        return User(user_id) if g.get("tenant") == "acme" else None

    @app.post("/login/<user_id>")
    def log_in(user_id: str) -> str:
        g.tenant = "acme"
        login_user(User(user_id))
        return "in"

    reports = Blueprint("reports", __name__)

    @reports.before_request
    def set_tenant() -> None:
        g.tenant = "acme"

    @reports.route("/reports")
    def show() -> str:
        return "yes" if current_user.is_authenticated else "anonymous"

    app.register_blueprint(reports)
    FlaskBitmapist(app)
    web = app.test_client()
    assert web.post("/login/7").text == "in"
    assert web.get("/reports").text == "yes"
    assert marked("report:viewed") == {7}


@pytest.mark.parametrize(
    ("source", "big", "small", "content_type"),
    [
        (
            "form:uid",
            {"data": {"uid": "12", "pad": "x" * 64 * 1024}},
            b"uid=12",
            "application/x-www-form-urlencoded",
        ),
        (
            "json:uid",
            {"json": {"uid": 12, "pad": "x" * 64 * 1024}},
            b'{"uid": 12}',
            "application/json",
        ),
    ],
)
def test_a_body_larger_than_64_kib_or_without_a_length_is_not_read(
    make_app_with: Any,
    write_rules: Callable[[str], str],
    marked: Any,
    source: str,
    big: dict[str, Any],
    small: bytes,
    content_type: str,
) -> None:
    path = write_rules(ECHO_RULE.format(source=source))
    web = make_app_with(BITMAPIST_RULES=path).test_client()
    assert len(web.post("/echo", **big).data) > 64 * 1024
    assert marked("echo:posted") == set()
    # A chunked body declares no length: it is not read either.
    chunked = web.post(
        "/echo",
        input_stream=BytesIO(small),
        headers={"Content-Type": content_type, "Transfer-Encoding": "chunked"},
    )
    assert chunked.status_code == 200
    assert marked("echo:posted") == set()
    assert web.post("/echo", data=small, content_type=content_type).data == small
    assert marked("echo:posted") == {12}
