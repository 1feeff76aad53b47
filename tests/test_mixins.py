"""Bitmapistable on SQLite and PostgreSQL, with Flask-SQLAlchemy and plain
SQLAlchemy: only what was committed is marked, in one write per commit."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask_login import LoginManager, UserMixin, login_user
from flask_sqlalchemy import SQLAlchemy
from keys import day_key
from keys import users as key_users
from sqlalchemy import ForeignKey, String, create_engine, event, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from flask_bitmapist import FlaskBitmapist
from flask_bitmapist.track.mixins import Bitmapistable
from flask_bitmapist.track.signals import event_marked, model_created, model_deleted

POSTGRES_URL = os.environ.get(
    "BITMAPIST_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    engine = create_engine(POSTGRES_URL)
    try:
        engine.connect().close()
    except OperationalError as error:
        reason = f"PostgreSQL does not answer at {POSTGRES_URL}: {error.orig}"
        if os.environ.get("BITMAPIST_REQUIRE_POSTGRES"):
            pytest.fail(f"{reason} (BITMAPIST_REQUIRE_POSTGRES is set)")
        pytest.skip(reason)
    finally:
        engine.dispose()
    return POSTGRES_URL


def sqlite_savepoints(engine: Any) -> None:
    """pysqlite needs this to run SAVEPOINTs as written (SQLAlchemy's recipe)."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def no_implicit_transactions(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")


class LoggedIn(UserMixin):
    def __init__(self, user_id: str) -> None:
        self.id = user_id


@dataclass
class Shop:
    """A Flask-SQLAlchemy app with three Bitmapistable models."""

    app: Flask
    db: SQLAlchemy
    User: Any
    Post: Any
    Tag: Any


@pytest.fixture
def shop(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Shop]:
    db = SQLAlchemy()

    class User(db.Model, Bitmapistable):  # type: ignore[name-defined,misc]
        __tablename__ = "fb_user"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(50))

    class Post(db.Model, Bitmapistable):  # type: ignore[name-defined,misc]
        __tablename__ = "fb_post"
        __bitmapist_actor__ = "current_user"
        id: Mapped[int] = mapped_column(primary_key=True)
        author_id: Mapped[int] = mapped_column(ForeignKey("fb_user.id"))

    class Tag(db.Model, Bitmapistable):  # type: ignore[name-defined,misc]
        __tablename__ = "fb_tag"
        __bitmapist_name__ = "label"
        id: Mapped[int] = mapped_column(primary_key=True)

    app = Flask("shop", instance_path=str(tmp_path / "instance"))
    app.config.update(
        TESTING=True,
        SECRET_KEY="s",
        SQLALCHEMY_DATABASE_URI=database_url,
        BITMAPIST_REDIS_URL=redis_url,
    )
    db.init_app(app)
    LoginManager(app).user_loader(LoggedIn)

    @app.post("/posts/<int:author_id>")
    def write_post(author_id: int) -> str:
        login_user(LoggedIn(str(author_id)))
        db.session.add(Post(author_id=author_id))
        db.session.commit()
        return "posted"

    FlaskBitmapist(app)
    with app.app_context():
        sqlite_savepoints(db.engine)
        db.drop_all()
        db.create_all()
    yield Shop(app, db, User, Post, Tag)
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


def users(client: redis.Redis, event_name: str) -> set[int]:
    return set(key_users(client, day_key(event_name)))


def test_commit_marks_created_with_the_primary_key(
    shop: Shop, client: redis.Redis
) -> None:
    with shop.app.app_context():
        user = shop.User(name="ada")
        shop.db.session.add(user)
        shop.db.session.commit()
        assert users(client, "user:created") == {user.id}
    assert client.keys("trackist_user:updated*") == []


def test_a_primary_key_above_the_maximum_is_logged_and_marks_nothing(
    shop: Shop, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    with shop.app.app_context(), caplog.at_level(logging.WARNING, "flask_bitmapist"):
        shop.db.session.add(shop.User(id=2**24, name="far"))
        shop.db.session.commit()
    assert (
        "user:created marked nothing: User id for event 'user:created' must be "
        "from 0 to 16777215 (BITMAPIST_MAX_USER_ID; set BITMAPIST_ID_MAP = True to use any int), got 16777216."
        in caplog.text
    )
    assert client.keys("trackist_user:created*") == []


def test_rollback_marks_nothing(shop: Shop, client: redis.Redis) -> None:
    with shop.app.app_context():
        shop.db.session.add(shop.User(name="ada"))
        shop.db.session.flush()
        shop.db.session.rollback()
        user = shop.User(name="bob")
        shop.db.session.add(user)
        shop.db.session.commit()
        user_id = user.id
        user.name = "bobby"
        shop.db.session.flush()
        shop.db.session.delete(user)
        shop.db.session.flush()
        shop.db.session.rollback()
    assert users(client, "user:created") == {user_id}
    assert client.keys("trackist_user:updated*") == []
    assert client.keys("trackist_user:deleted*") == []


def test_a_rolled_back_savepoint_marks_nothing_of_its_own(
    shop: Shop, client: redis.Redis
) -> None:
    with shop.app.app_context():
        session = shop.db.session
        kept = shop.User(name="kept")
        session.add(kept)
        savepoint = session.begin_nested()
        session.add(shop.User(name="dropped"))
        session.flush()
        savepoint.rollback()
        released = session.begin_nested()
        inner = shop.User(name="released")
        session.add(inner)
        released.commit()
        session.commit()
        ids = {row.name: row.id for row in session.query(shop.User)}
    assert set(ids) == {"kept", "released"}
    assert users(client, "user:created") == {ids["kept"], ids["released"]}


def test_a_released_savepoint_of_a_rolled_back_transaction_marks_nothing(
    shop: Shop, client: redis.Redis
) -> None:
    with shop.app.app_context():
        session = shop.db.session
        with session.begin_nested():
            session.add(shop.User(name="inner"))
        session.rollback()
    assert client.keys("*") == []


def test_updated_only_when_a_column_changed(shop: Shop, client: redis.Redis) -> None:
    with shop.app.app_context():
        user = shop.User(name="ada")
        shop.db.session.add(user)
        shop.db.session.commit()
        user.name = "ada"
        shop.db.session.commit()
        assert client.keys("trackist_user:updated*") == []
        user.name = "ada lovelace"
        shop.db.session.commit()
        assert users(client, "user:updated") == {user.id}


def test_delete_marks_deleted(shop: Shop, client: redis.Redis) -> None:
    with shop.app.app_context():
        user = shop.User(name="ada")
        shop.db.session.add(user)
        shop.db.session.commit()
        user_id = user.id
        shop.db.session.delete(user)
        shop.db.session.commit()
    assert users(client, "user:deleted") == {user_id}


def test_several_objects_of_one_commit_are_one_write(
    shop: Shop, client: redis.Redis, round_trips: Any
) -> None:
    with shop.app.app_context():
        shop.app.extensions["bitmapist"].redis.ping()
        batch = [shop.User(name=f"u{n}") for n in range(5)] + [shop.Tag(), shop.Tag()]
        shop.db.session.add_all(batch)
        round_trips.count = 0
        shop.db.session.commit()
        assert round_trips.count == 1
        assert users(client, "user:created") == {user.id for user in batch[:5]}
        assert users(client, "label:created") == {tag.id for tag in batch[5:]}


def test_an_actor_model_marks_the_logged_in_user(
    shop: Shop, client: redis.Redis
) -> None:
    with shop.app.app_context():
        author = shop.User(id=41, name="author")
        shop.db.session.add(author)
        shop.db.session.commit()
    assert shop.app.test_client().post("/posts/41").text == "posted"
    with shop.app.app_context():
        post_id = shop.db.session.query(shop.Post).one().id
    assert post_id == 1
    assert users(client, "post:created") == {41}


def test_signals_carry_the_app_and_the_instance(shop: Shop) -> None:
    received: list[tuple[str, Any, Any]] = []

    @model_created.connect_via(shop.app)
    def created(sender: Flask, instance: Any, **extra: Any) -> None:
        received.append(("created", sender, instance))

    @model_deleted.connect_via(shop.app)
    def deleted(sender: Flask, instance: Any, **extra: Any) -> None:
        received.append(("deleted", sender, instance))

    @event_marked.connect_via(shop.app)
    def marked(
        sender: Flask, event_name: str, user_id: int, when: Any, **extra: Any
    ) -> None:
        received.append(("marked", event_name, user_id))

    with shop.app.app_context():
        user = shop.User(name="ada")
        shop.db.session.add(user)
        shop.db.session.commit()
        user_id = user.id
        shop.db.session.delete(user)
        shop.db.session.commit()
    assert received == [
        ("created", shop.app, user),
        ("marked", "user:created", user_id),
        ("deleted", shop.app, user),
        ("marked", "user:deleted", user_id),
    ]


def test_bulk_statements_bypass_the_orm_and_mark_nothing(
    shop: Shop, client: redis.Redis
) -> None:
    with shop.app.app_context():
        user = shop.User(name="ada")
        shop.db.session.add(user)
        shop.db.session.commit()
        shop.db.session.execute(update(shop.User).values(name="bulk"))
        shop.db.session.commit()
    assert client.keys("trackist_user:updated*") == []


class Base(DeclarativeBase):
    pass


class Account(Base, Bitmapistable):
    __tablename__ = "fb_account"
    id: Mapped[int] = mapped_column(primary_key=True)


def plain_app(name: str, redis_url: str, tmp_path: Path) -> Flask:
    app = Flask(name, instance_path=str(tmp_path / name))
    app.config.update(TESTING=True, BITMAPIST_REDIS_URL=redis_url)
    FlaskBitmapist(app)
    return app


def test_plain_sqlalchemy_sessions_and_two_apps(
    database_url: str,
    redis_url: str,
    other_redis_url: str,
    tmp_path: Path,
    client: redis.Redis,
) -> None:
    engine = create_engine(database_url)
    sqlite_savepoints(engine)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    first, second = (
        plain_app("first", redis_url, tmp_path),
        plain_app("second", other_redis_url, tmp_path),
    )
    try:
        with first.app_context(), Session(engine) as session:
            session.add(Account(id=1))
            session.commit()
        with second.app_context(), Session(engine) as session:
            session.add(Account(id=2))
            with session.begin_nested():
                session.add(Account(id=3))
            session.commit()
        with second.app_context(), Session(engine) as session:
            session.add(Account(id=4))
            session.flush()
        assert users(client, "account:created") == {1}
        assert users(redis.Redis.from_url(other_redis_url), "account:created") == {2, 3}
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


def test_a_commit_outside_an_app_marks_nothing_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, client: redis.Redis
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'outside.db'}")
    Base.metadata.create_all(engine)
    with (
        caplog.at_level(logging.WARNING, logger="flask_bitmapist"),
        Session(engine) as session,
    ):
        session.add(Account(id=5))
        session.commit()
    assert "1 committed changes of Bitmapistable models were not marked" in caplog.text
    assert client.keys("*") == []


def test_keys_that_cannot_be_user_ids_need_an_actor() -> None:
    class Local(DeclarativeBase):
        pass

    with pytest.raises(TypeError, match="Composite has a composite primary key"):

        class Composite(Local, Bitmapistable):
            __tablename__ = "composite"
            a: Mapped[int] = mapped_column(primary_key=True)
            b: Mapped[int] = mapped_column(primary_key=True)

    class Acted(Local, Bitmapistable):
        __tablename__ = "acted"
        __bitmapist_actor__ = "session:user_id"
        slug: Mapped[str] = mapped_column(String(20), primary_key=True)

    with pytest.raises(
        TypeError,
        match=r"Bad.__bitmapist_actor__ must be an id source .* got 'cookie:x'",
    ):

        class Bad(Local, Bitmapistable):
            __tablename__ = "bad"
            __bitmapist_actor__ = "cookie:x"
            id: Mapped[int] = mapped_column(primary_key=True)

    with pytest.raises(
        TypeError,
        match=r"Dunder.__bitmapist_actor__ must be an id source .* got "
        r"'g:user.__class__': id source 'g:user.__class__': path segment "
        r"'__class__' must not start with __\.",
    ):

        class Dunder(Local, Bitmapistable):
            __tablename__ = "dunder"
            __bitmapist_actor__ = "g:user.__class__"
            id: Mapped[int] = mapped_column(primary_key=True)

    class Owned(Local, Bitmapistable):
        __tablename__ = "owned"
        __bitmapist_actor__ = "current_user.account.id"
        id: Mapped[int] = mapped_column(primary_key=True)

    assert Acted.bitmapist_event_prefix() == "acted"
    assert Owned.bitmapist_event_prefix() == "owned"
