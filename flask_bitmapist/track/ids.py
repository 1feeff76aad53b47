"""Validation of user ids: what a source gives, turned into a bit offset."""

from __future__ import annotations

from typing import Any

from ..config import DEFAULT_MAX_USER_ID, MAX_USER_ID

__all__ = [
    "DEFAULT_MAX_USER_ID",
    "MAX_USER_ID",
    "to_user_id",
]


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
