"""Validation of user ids: what a source gives, turned into a bit offset, or
into the canonical id that the id map turns into one."""

from __future__ import annotations

from typing import Any

from ..config import DEFAULT_MAX_USER_ID, MAX_USER_ID
from ..store.idmap import canonical_id, shown

__all__ = [
    "DEFAULT_MAX_USER_ID",
    "MAX_USER_ID",
    "to_user_id",
]


def to_user_id(
    event_name: str,
    value: Any,
    *,
    max_user_id: int = DEFAULT_MAX_USER_ID,
    id_map: bool = False,
) -> int | str | None:
    """Turn what a source gives as a user id into a bit offset, or with the
    id map into its canonical id.

    Without the map, an id is a bit offset in every key of the event, so
    Redis allocates a key up to it: id 2**24 - 1 (the default maximum) costs
    2 MiB per key, id 2**32 - 1 costs 512 MiB. Ids above ``max_user_id`` are
    refused. With the map (``BITMAPIST_ID_MAP``), any int, UUID or string is
    an id, and the map gives it a dense bit offset when it is written.

    :param event_name: the event being marked, named in the error message.
    :param value: without the map, an int, or a str of decimal digits
        (Flask-Login's ``get_id()`` returns str); with it, any id
        :func:`~flask_bitmapist.store.idmap.canonical_id` takes. ``None``
        means an anonymous user.
    :param max_user_id: the largest id accepted without the map: the app's
        ``BITMAPIST_MAX_USER_ID`` (default ``2**24 - 1``, at most
        ``2**32 - 1``).
    :param id_map: whether the app maps ids (``BITMAPIST_ID_MAP``).
    :returns: ``None`` for anonymous; without the map the id as an int from
        0 to ``max_user_id``; with it the canonical id, a str.
    :raises ValueError: in one sentence that names the event and the value:
        without the map, for negative or too large ids, bools, floats and any
        other value, saying that ``BITMAPIST_ID_MAP`` takes them; with it,
        for what :func:`~flask_bitmapist.store.idmap.canonical_id` refuses.
    """
    if value is None:
        return None
    if id_map:
        try:
            return canonical_id(value)
        except ValueError as problem:
            raise ValueError(
                f"User id for event {event_name!r} {problem}, got {shown(value)}."
            ) from None
    if isinstance(value, str) and value.isascii() and value.isdecimal():
        user_id = int(value) if len(value) <= 10 else MAX_USER_ID + 1
    elif isinstance(value, int) and not isinstance(value, bool):
        # int(): an IntEnum member would print its name on Python 3.10.
        user_id = int(value)
    else:
        raise ValueError(
            f"User id for event {event_name!r} must be an int or a string of "
            "decimal digits (set BITMAPIST_ID_MAP = True to use UUIDs, other "
            f"strings or any int), got {shown(value)}."
        )
    if not 0 <= user_id <= max_user_id:
        raise ValueError(
            f"User id for event {event_name!r} must be from 0 to {max_user_id} "
            "(BITMAPIST_MAX_USER_ID; set BITMAPIST_ID_MAP = True to use any "
            f"int), got {shown(value)}."
        )
    return user_id
