"""Validation of the two things every mark names: the event and the user id."""

from __future__ import annotations

import functools
from typing import Any

from .config import DEFAULT_MAX_USER_ID, MAX_USER_ID

__all__ = [
    "DEFAULT_MAX_USER_ID",
    "MAX_USER_ID",
    "to_user_id",
    "validate_event_name",
]

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


def to_user_id(
    event_name: str, value: Any, *, max_user_id: int = DEFAULT_MAX_USER_ID
) -> int | None:
    """Turn what a source gives as a user id into a bit offset.

    An id is a bit offset in every key of the event, so Redis allocates a key
    up to it: id 2**24 - 1 (the default maximum) costs 2 MiB per key, id
    2**32 - 1 costs 512 MiB. Ids above ``max_user_id`` are refused.

    :param event_name: the event being marked, named in the error message.
    :param value: an int, or a str of decimal digits (Flask-Login's ``get_id()``
        returns str); ``None`` means an anonymous user.
    :param max_user_id: the largest id accepted: the app's
        ``BITMAPIST_MAX_USER_ID`` (default ``2**24 - 1``, at most ``2**32 - 1``).
    :returns: the id as an int from 0 to ``max_user_id``, or ``None`` for
        anonymous.
    :raises ValueError: for negative or too large ids, bools, floats and any
        other value.
    """
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdecimal():
        user_id = int(value) if len(value) <= 10 else MAX_USER_ID + 1
    elif isinstance(value, int) and not isinstance(value, bool):
        user_id = value
    else:
        raise ValueError(
            f"User id for event {event_name!r} must be an int or a string of "
            f"decimal digits, got {value!r}."
        )
    if not 0 <= user_id <= max_user_id:
        raise ValueError(
            f"User id for event {event_name!r} must be from 0 to {max_user_id} "
            f"(BITMAPIST_MAX_USER_ID), got {value!r}."
        )
    return user_id
