"""What the rules middleware marks on a realistic app: every schema key,
multiple matches, before and after, statuses, raised exceptions, id sources."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from rules_app import create_app

from flask_bitmapist import DayEvents, HourEvents, UniqueEvents
from flask_bitmapist.testing import free_port

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
        return set(DayEvents.from_date(event, system=client))  # type: ignore[arg-type]

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
    assert set(HourEvents.from_date("checkout:started", system=client)) == {5, 7}  # type: ignore[arg-type]
    assert client.exists(HourEvents.from_date("checkout:paid").redis_key) == 0
    assert set(UniqueEvents("checkout:paid", system=client)) == {7}  # type: ignore[arg-type]
    assert client.exists(UniqueEvents("checkout:started").redis_key) == 0


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
        == f"Rule for 'never:0' at {unmatched_rules}, line 2 matches no route of the app."
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
        == f"{unmatched_rules}, line 2: 'never:0' (endpoint 'nowhere.n0') matches no route."
    )


def test_rules_check_exits_0_when_every_rule_matches(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["bitmapist", "rules", "check"])
    assert (result.exit_code, result.stdout) == (0, "All 15 rules match a route.\n")


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
    assert result.stderr == f"{path}, line 4: 'b' (path '/nope/*') matches no route.\n"
