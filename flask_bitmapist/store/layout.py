"""The key format and the time it is cut by: what an event may be called, and
the UTC time every period is computed in."""

from __future__ import annotations

import functools
from datetime import datetime, timezone
from typing import Any

__all__ = ["MAX_EVENT_NAME_LENGTH", "to_utc", "validate_event_name"]

MAX_EVENT_NAME_LENGTH = 200
_RESERVED_PREFIX = "bitop_"


def validate_event_name(event_name: Any) -> str:
    """Return ``event_name`` if it can name a bitmapist event.

    :raises ValueError: unless it is a non-empty str of at most 200 printable
        characters without whitespace, not starting with ``bitop_`` (the prefix
        of bitmapist's temporary keys).
    """
    if not isinstance(event_name, str):
        raise ValueError(f"Event name must be a str, got {event_name!r}.")
    return _validate_str_event_name(event_name)


# Apps mark a handful of names over and over; checking each name once keeps
# the per-mark cost off the request path. Only valid names are cached.
@functools.lru_cache(maxsize=4096)
def _validate_str_event_name(event_name: str) -> str:
    if not event_name:
        raise ValueError("Event name must not be empty.")
    if len(event_name) > MAX_EVENT_NAME_LENGTH:
        raise ValueError(
            f"Event name must be at most {MAX_EVENT_NAME_LENGTH} characters, "
            f"got {len(event_name)}: {event_name[:40]!r}..."
        )
    if not event_name.isprintable() or any(char.isspace() for char in event_name):
        raise ValueError(
            f"Event name must not contain whitespace or control characters, "
            f"got {event_name!r}."
        )
    if event_name.startswith(_RESERVED_PREFIX):
        raise ValueError(
            f"Event name must not start with {_RESERVED_PREFIX!r}, which bitmapist "
            f"reserves for temporary keys, got {event_name!r}."
        )
    return event_name


def to_utc(now: datetime | None) -> datetime:
    """``now`` in UTC: naive datetimes are taken as UTC; ``None`` is the current time.

    :raises ValueError: when ``now`` is not a datetime.
    """
    if now is None:
        return datetime.now(timezone.utc)
    if not isinstance(now, datetime):
        raise ValueError(f"now must be a datetime, got {now!r}.")
    if now.tzinfo is None:
        return now.replace(tzinfo=timezone.utc)
    return now.astimezone(timezone.utc)
