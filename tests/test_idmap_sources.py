"""Bad ids of every kind, in both modes (ints, and BITMAPIST_ID_MAP),
through mark_event, @mark, YAML rules and the model mixin: the documented
error or log line, nothing marked (no event key, and no id allocated in the
map), the response unchanged. And good ids of the map through each source
land as their canonical ids."""

from __future__ import annotations

import json
import logging
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import AppFactory
from flask import Flask, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from flask_bitmapist import get_event_data, mark, mark_event, unmark_event
from flask_bitmapist.track.mixins import Bitmapistable

EVENT = "song:played"
SOME_UUID = uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")
NOT_DECIMAL = (
    "must be an int or a string of decimal digits (set BITMAPIST_ID_MAP = True "
    "to use UUIDs, other strings or any int)"
)
OUT_OF_RANGE = (
    "must be from 0 to 16777215 (BITMAPIST_MAX_USER_ID; set BITMAPIST_ID_MAP = "
    "True to use any int)"
)
NOT_AN_ID = "must be an int, a uuid.UUID or a str"

# (mode, bad id, what follows "User id for event '<event>' " in the error)
BAD_IDS = [
    ("int", "abc", f"{NOT_DECIMAL}, got 'abc'."),
    ("int", SOME_UUID, f"{NOT_DECIMAL}, got UUID('1b4e28ba-2fa1-11d2-883f-0016d3cca427')."),
    ("int", str(SOME_UUID), f"{NOT_DECIMAL}, got '1b4e28ba-2fa1-11d2-883f-0016d3cca427'."),
    ("int", -1, f"{OUT_OF_RANGE}, got -1."),
    ("int", 2**40, f"{OUT_OF_RANGE}, got 1099511627776."),
    ("int", 1.5, f"{NOT_DECIMAL}, got 1.5."),
    ("int", True, f"{NOT_DECIMAL}, got True."),
    ("map", "", "is an empty string, got ''."),
    ("map", "a\x00b", "holds a control character, got 'a\\x00b'."),
    ("map", "x" * 257, "has over 256 characters, got '" + "x" * 59 + "... (257 characters)."),
    ("map", 1.5, f"{NOT_AN_ID}, got 1.5."),
    ("map", True, f"{NOT_AN_ID}, got True."),
    ("map", b"12", f"{NOT_AN_ID}, got b'12'."),
    ("map", 10**300, "has over 256 characters in decimal, got 1" + "0" * 59 + "...."),
]  # fmt: skip
# The ids a JSON body can carry, for the rules that read one.
JSON_IDS = [case for case in BAD_IDS if type(case[1]) in (str, int, float, bool)]


def error_of(event: str, tail: str) -> str:
    return f"User id for event {event!r} {tail}"


def case_id(case: tuple[str, Any, str]) -> str:
    return f"{case[0]}-{case[1]!r}"[:40]


@pytest.fixture(params=BAD_IDS, ids=[case_id(case) for case in BAD_IDS])
def bad(request: pytest.FixtureRequest) -> tuple[str, Any, str]:
    """(mode, bad id, error message tail)."""
    return request.param  # type: ignore[no-any-return]


def logged(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [
        (record.levelno, record.getMessage())
        for record in caplog.records
        if record.name == "flask_bitmapist"
    ]


def assert_nothing_written(client: redis.Redis) -> None:
    """No event key, and no id map: nothing was allocated for the bad id."""
    assert client.keys("*") == []


# --- mark_event and unmark_event raise


def test_mark_event_raises_and_marks_nothing(
    make_app: AppFactory, client: redis.Redis, bad: tuple[str, Any, str]
) -> None:
    mode, value, tail = bad
    app = make_app(id_map=mode == "map")
    with app.app_context():
        for function in (mark_event, unmark_event):
            with pytest.raises(ValueError) as error:
                function(EVENT, value)
            assert str(error.value) == error_of(EVENT, tail)
    assert_nothing_written(client)


# --- @mark logs, or raises with BITMAPIST_RAISE_ERRORS


def app_with_marked_view(
    make_app: AppFactory, mode: str, value: Any, **config: Any
) -> Flask:
    app = make_app(id_map=mode == "map", **config)

    @app.get("/play")
    @mark(EVENT, lambda: value)
    def play() -> tuple[str, int]:
        return "playing", 202

    return app


def test_mark_decorator_logs_and_the_response_is_unchanged(
    make_app: AppFactory,
    client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    bad: tuple[str, Any, str],
) -> None:
    mode, value, tail = bad
    web = app_with_marked_view(make_app, mode, value).test_client()
    with caplog.at_level(logging.WARNING, logger="flask_bitmapist"):
        response = web.get("/play")
    assert (response.status_code, response.text) == (202, "playing")
    assert logged(caplog) == [(logging.ERROR, f"@mark({EVENT!r}) marked nothing")]
    (record,) = [one for one in caplog.records if one.name == "flask_bitmapist"]
    assert record.exc_info is not None
    assert (type(record.exc_info[1]), str(record.exc_info[1])) == (
        ValueError,
        error_of(EVENT, tail),
    )
    assert_nothing_written(client)


def test_mark_decorator_raises_with_raise_errors(
    make_app: AppFactory, client: redis.Redis, bad: tuple[str, Any, str]
) -> None:
    mode, value, tail = bad
    app = app_with_marked_view(make_app, mode, value, raise_errors=True)
    with pytest.raises(ValueError) as error:
        app.test_client().get("/play")
    assert str(error.value) == error_of(EVENT, tail)
    assert_nothing_written(client)


# --- YAML rules log "marked nothing"


@pytest.fixture
def write_rules(tmp_path: Path) -> Callable[[str], str]:
    """Write a rules file (dedented) and return its path."""

    def write(text: str) -> str:
        path = tmp_path / "rules.yaml"
        path.write_text(textwrap.dedent(text).lstrip())
        return str(path)

    return write


def rules_app(make_app: AppFactory, mode: str, rules: str, **config: Any) -> Flask:
    app = make_app(id_map=mode == "map", rules=rules, **config)

    @app.route("/play", methods=["GET", "POST"])
    def play() -> tuple[str, int]:
        return f"playing {request.get_data(as_text=True)}", 202

    return app


def test_a_rule_with_a_named_source_logs_and_the_response_is_unchanged(
    make_app: AppFactory,
    write_rules: Callable[[str], str],
    client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    bad: tuple[str, Any, str],
) -> None:
    mode, value, tail = bad
    path = write_rules(f"""
        rules:
          - event: "{EVENT}"
            endpoint: play
            user: player
        """)
    for raise_errors in (False, True):
        app = rules_app(
            make_app, mode, path, id_sources={"player": lambda: value},
            raise_errors=raise_errors,
        )  # fmt: skip
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="flask_bitmapist"):
            response = app.test_client().get("/play")
        assert (response.status_code, response.text) == (202, "playing ")
        assert logged(caplog) == [
            (
                logging.WARNING,
                f"Rule at {path}, line 2 marked nothing: {error_of(EVENT, tail)}",
            )
        ]
        assert_nothing_written(client)


@pytest.mark.parametrize(
    ("mode", "value", "tail"), JSON_IDS, ids=[case_id(case) for case in JSON_IDS]
)
def test_a_rule_reading_a_json_body_logs_and_the_response_is_unchanged(
    make_app: AppFactory,
    write_rules: Callable[[str], str],
    client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    mode: str,
    value: Any,
    tail: str,
) -> None:
    path = write_rules(f"""
        rules:
          - event: "{EVENT}"
            endpoint: play
            methods: [POST]
            user: json:player.id
        """)
    web = rules_app(make_app, mode, path).test_client()
    body = json.dumps({"player": {"id": value}})
    with caplog.at_level(logging.WARNING, logger="flask_bitmapist"):
        response = web.post("/play", data=body, content_type="application/json")
    assert (response.status_code, response.text) == (202, f"playing {body}")
    assert logged(caplog) == [
        (
            logging.WARNING,
            f"Rule at {path}, line 2 marked nothing: {error_of(EVENT, tail)}",
        )
    ]
    assert_nothing_written(client)


# --- the model mixin logs a warning


@pytest.fixture
def make_shop(
    make_app: AppFactory, tmp_path: Path
) -> Iterator[Callable[..., tuple[Flask, SQLAlchemy, Any]]]:
    """Make an app with Flask-SQLAlchemy on SQLite and a Bitmapistable model
    ``Post``, marked for its ``__bitmapist_actor__`` when given, else for
    its own primary key (an int, or a UUID with ``uuid_key``)."""
    made: list[tuple[Flask, SQLAlchemy]] = []

    def make(
        mode: str, *, actor: str | None = None, uuid_key: bool = False, **config: Any
    ) -> tuple[Flask, SQLAlchemy, Any]:
        db = SQLAlchemy()

        class Post(db.Model, Bitmapistable):  # type: ignore[name-defined,misc]
            __tablename__ = "fb_post"
            __bitmapist_actor__ = actor
            if uuid_key:
                id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
            else:
                id: Mapped[int] = mapped_column(primary_key=True)  # type: ignore[no-redef]
            title: Mapped[str] = mapped_column(String(50))

        app = make_app(id_map=mode == "map", name=f"shop{len(made)}", **config)
        app.config["SQLALCHEMY_DATABASE_URI"] = (
            f"sqlite:///{tmp_path / f'shop{len(made)}.db'}"
        )
        db.init_app(app)
        with app.app_context():
            db.create_all()
        made.append((app, db))
        return app, db, Post

    yield make
    for app, db in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_the_mixin_logs_a_warning_and_marks_nothing(
    make_shop: Callable[..., tuple[Flask, SQLAlchemy, Any]],
    client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    bad: tuple[str, Any, str],
) -> None:
    mode, value, tail = bad
    app, db, post_model = make_shop(
        mode, actor="author", id_sources={"author": lambda: value}
    )
    with app.app_context(), caplog.at_level(logging.WARNING, "flask_bitmapist"):
        post = post_model(id=1, title="first")
        db.session.add(post)
        db.session.commit()
        post.title = "second"
        db.session.commit()
    assert logged(caplog) == [
        (
            logging.WARNING,
            f"post:{action} marked nothing: {error_of(f'post:{action}', tail)}",
        )
        for action in ("created", "updated")
    ]
    assert_nothing_written(client)


@pytest.mark.parametrize(("key", "shown"), [(-1, "-1"), (2**40, "1099511627776")])
def test_an_integer_primary_key_out_of_range_is_refused_only_in_int_mode(
    make_shop: Callable[..., tuple[Flask, SQLAlchemy, Any]],
    client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    key: int,
    shown: str,
) -> None:
    app, db, post_model = make_shop("int")
    with app.app_context(), caplog.at_level(logging.WARNING, "flask_bitmapist"):
        db.session.add(post_model(id=key, title="far"))
        db.session.commit()
    assert logged(caplog) == [
        (
            logging.WARNING,
            "post:created marked nothing: "
            + error_of("post:created", f"{OUT_OF_RANGE}, got {shown}."),
        )
    ]
    assert_nothing_written(client)
    # With the map, the same key is a user like any other.
    app, db, post_model = make_shop("map")
    with app.app_context():
        db.session.add(post_model(id=key, title="far"))
        db.session.commit()
        assert list(get_event_data("post:created")) == [shown]


# --- good ids through each source, in map mode


def test_a_uuid_through_mark_lands_as_its_canonical_id(make_app: AppFactory) -> None:
    app = make_app(id_map=True)
    spellings = iter(
        [SOME_UUID, "{1B4E28BA-2FA1-11D2-883F-0016D3CCA427}", SOME_UUID.hex]
    )

    @app.get("/play")
    @mark(EVENT, lambda: next(spellings))
    def play() -> str:
        return "playing"

    web = app.test_client()
    for _ in range(3):
        assert web.get("/play").text == "playing"
    with app.app_context():
        users = get_event_data(EVENT)
        assert list(users) == [str(SOME_UUID)]
        assert SOME_UUID in users
        assert str(SOME_UUID).upper() in users


def test_usernames_through_a_rule_land_as_themselves(
    make_app: AppFactory, write_rules: Callable[[str], str]
) -> None:
    path = write_rules(f"""
        rules:
          - event: "{EVENT}"
            endpoint: play
            user: header:X-User
        """)
    app = rules_app(make_app, "map", path)
    web = app.test_client()
    for name in ("Alice", "alice", "Élodie Martin", "42", "042", "Alice"):
        assert web.get("/play", headers={"X-User": name}).text == "playing "
    with app.app_context():
        assert list(get_event_data(EVENT)) == ["Alice", "alice", "Élodie Martin", "42"]


def test_a_model_with_a_uuid_primary_key_lands_as_its_canonical_id(
    make_shop: Callable[..., tuple[Flask, SQLAlchemy, Any]],
) -> None:
    app, db, post_model = make_shop("map", uuid_key=True)
    with app.app_context():
        post = post_model(id=SOME_UUID, title="first")
        db.session.add(post)
        db.session.commit()
        post.title = "second"
        db.session.commit()
        db.session.delete(post)
        db.session.commit()
        for action in ("created", "updated", "deleted"):
            assert list(get_event_data(f"post:{action}")) == [str(SOME_UUID)]


def test_a_uuid_primary_key_without_the_map_logs_a_warning_and_marks_nothing(
    make_shop: Callable[..., tuple[Flask, SQLAlchemy, Any]],
    client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, db, post_model = make_shop("int", uuid_key=True)
    with app.app_context(), caplog.at_level(logging.WARNING, "flask_bitmapist"):
        db.session.add(post_model(id=SOME_UUID, title="first"))
        db.session.commit()
    assert logged(caplog) == [
        (
            logging.WARNING,
            "post:created marked nothing: User id for event 'post:created' must "
            "be an int or a string of decimal digits (set BITMAPIST_ID_MAP = True "
            f"to use UUIDs, other strings or any int), got {SOME_UUID!r}.",
        )
    ]
    assert_nothing_written(client)
