"""Flask-Login's login and logout mark user:logged_in and user:logged_out,
per app, through real requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis
from flask import Flask
from flask_login import LoginManager, UserMixin, login_user, logout_user
from keys import day_key
from keys import users as key_users

from flask_bitmapist import FlaskBitmapist


class User(UserMixin):
    def __init__(self, user_id: str) -> None:
        self.id = user_id


def login_app(name: str, redis_url: str, tmp_path: Path, **config: Any) -> Flask:
    app = Flask(name, instance_path=str(tmp_path / name))
    app.config.update(
        TESTING=True, SECRET_KEY="s", BITMAPIST_REDIS_URL=redis_url, **config
    )
    LoginManager(app).user_loader(User)

    @app.post("/login/<user_id>")
    def login(user_id: str) -> str:
        login_user(User(user_id))
        return "in"

    @app.post("/logout")
    def logout() -> str:
        logout_user()
        return "out"

    FlaskBitmapist(app)
    return app


def users(client: redis.Redis, event: str) -> set[int]:
    return set(key_users(client, day_key(event)))


def test_login_and_logout_are_marked(
    redis_url: str, tmp_path: Path, client: redis.Redis
) -> None:
    web = login_app("a", redis_url, tmp_path).test_client()
    assert web.post("/login/12").text == "in"
    assert users(client, "user:logged_in") == {12}
    assert users(client, "user:logged_out") == set()
    assert web.post("/logout").text == "out"
    assert users(client, "user:logged_out") == {12}


def test_logout_without_a_user_marks_nothing(
    redis_url: str, tmp_path: Path, client: redis.Redis
) -> None:
    web = login_app("a", redis_url, tmp_path).test_client()
    assert web.post("/logout").text == "out"
    assert client.keys("*") == []


def test_two_apps_mark_each_login_once_in_their_own_redis(
    redis_url: str, other_redis_url: str, tmp_path: Path, client: redis.Redis
) -> None:
    first = login_app("first", redis_url, tmp_path)
    second = login_app("second", other_redis_url, tmp_path)
    first.test_client().post("/login/3")
    second.test_client().post("/login/4")
    other = redis.Redis.from_url(other_redis_url)
    assert users(client, "user:logged_in") == {3}
    assert users(other, "user:logged_in") == {4}
    assert first.extensions["bitmapist"].state(first).writer.stats().queued == 1
    assert second.extensions["bitmapist"].state(second).writer.stats().queued == 1


def test_track_login_can_be_turned_off(
    redis_url: str, tmp_path: Path, client: redis.Redis
) -> None:
    web = login_app("a", redis_url, tmp_path, BITMAPIST_TRACK_LOGIN=False).test_client()
    web.post("/login/12")
    web.post("/logout")
    assert client.keys("*") == []
