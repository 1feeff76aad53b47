"""bitmapist's key names and bitmaps, spelled out independently of the package:
what the tests expect to find in Redis, with or without bitmapist installed.

bitmapist names one key per event and period, with no zero padding, and
sets the bit whose offset is the user id (bit 0 is the high bit of the
first byte)::

    trackist_<event>_<year>-<month>               month
    trackist_<event>_W<iso year>-<iso week>       ISO week
    trackist_<event>_<year>-<month>-<day>         day
    trackist_<event>_<year>-<month>-<day>-<hour>  hour
    trackist_<event>_u                            unique

Times are UTC: an aware time is converted, a naive one is taken as UTC, and
``None`` is the current time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timezone

import redis

__all__ = [
    "bitmap",
    "day_key",
    "hour_key",
    "ids_of",
    "month_key",
    "period_keys",
    "unique_key",
    "users",
    "users_by_event",
    "week_key",
]


def _utc(when: date | datetime | None) -> date | datetime:
    if when is None:
        return datetime.now(timezone.utc)
    if isinstance(when, datetime) and when.tzinfo is not None:
        return when.astimezone(timezone.utc)
    return when


def month_key(event: str, when: date | datetime | None = None) -> str:
    """``trackist_<event>_<year>-<month>``."""
    moment = _utc(when)
    return f"trackist_{event}_{moment.year}-{moment.month}"


def week_key(event: str, when: date | datetime | None = None) -> str:
    """``trackist_<event>_W<iso year>-<iso week>``."""
    iso_year, iso_week, _ = _utc(when).isocalendar()
    return f"trackist_{event}_W{iso_year}-{iso_week}"


def day_key(event: str, when: date | datetime | None = None) -> str:
    """``trackist_<event>_<year>-<month>-<day>``."""
    moment = _utc(when)
    return f"trackist_{event}_{moment.year}-{moment.month}-{moment.day}"


def hour_key(event: str, when: datetime | None = None) -> str:
    """``trackist_<event>_<year>-<month>-<day>-<hour>``."""
    moment = _utc(when)
    assert isinstance(moment, datetime)
    return f"trackist_{event}_{moment.year}-{moment.month}-{moment.day}-{moment.hour}"


def unique_key(event: str) -> str:
    """``trackist_<event>_u``."""
    return f"trackist_{event}_u"


def period_keys(
    event: str, when: datetime, *, hourly: bool = False, unique: bool = False
) -> list[str]:
    """The keys that one mark of ``event`` at ``when`` sets: month, ISO week
    and day, then the hour and the unique key when asked."""
    keys = [month_key(event, when), week_key(event, when), day_key(event, when)]
    if hourly:
        keys.append(hour_key(event, when))
    if unique:
        keys.append(unique_key(event))
    return keys


def bitmap(ids: Iterable[int]) -> bytes:
    """The value of a key that holds exactly ``ids``, as SETBIT leaves it:
    as many bytes as the largest id needs, bit 0 the high bit of byte 0."""
    offsets = sorted(set(ids))
    value = bytearray(offsets[-1] // 8 + 1 if offsets else 0)
    for offset in offsets:
        value[offset // 8] |= 0x80 >> (offset % 8)
    return bytes(value)


def ids_of(value: bytes | None) -> list[int]:
    """The offsets of the set bits of a key's value, ascending."""
    return [
        index * 8 + bit
        for index, byte in enumerate(value or b"")
        for bit in range(8)
        if byte & (0x80 >> bit)
    ]


def users(client: redis.Redis, key: str) -> list[int]:
    """The user ids in ``key`` (GET, then its set bits), ascending; ``[]``
    when the key does not exist."""
    value = client.get(key)
    assert value is None or isinstance(value, bytes), value
    return ids_of(value)


def users_by_event(
    client: redis.Redis, events: Iterable[str], when: date | datetime | None = None
) -> dict[str, set[int]]:
    """The users marked on the day of ``when`` for each of ``events`` that
    has any."""
    return {
        event: found
        for event in events
        if (found := set(users(client, day_key(event, when))))
    }
