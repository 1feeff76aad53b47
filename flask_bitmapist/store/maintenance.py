"""Keeping the store: which key holds which event and period, what the keys
weigh, and deleting the periods that have ended. Everything walks the keys
with SCAN, never KEYS, so Redis keeps serving while it runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone

import redis

_KEY_PREFIX = "trackist_"
_TEMPORARY_PREFIX = "trackist_bitop_"
_CHUNK = 1000
_PERIOD = re.compile(
    r"(?:(?P<year>\d{4})-(?P<month>\d{1,2})"
    r"(?:-(?P<day>\d{1,2})(?:-(?P<hour>\d{1,2}))?)?"
    r"|W(?P<week_year>\d{4})-(?P<week>\d{1,2}))"
)


def split_key(key: str) -> tuple[str, str] | None:
    """``(event name, period)`` of a bitmapist key such as
    ``trackist_signup_2026-11-22``, or ``None`` for a query's temporary key or
    a key that is not bitmapist's."""
    if not key.startswith(_KEY_PREFIX) or key.startswith(_TEMPORARY_PREFIX):
        return None
    name, separator, period = key[len(_KEY_PREFIX) :].rpartition("_")
    if not separator or not name:
        return None
    return name, period


def period_end(period: str) -> datetime | None:
    """When the period of a key suffix ends (UTC, exclusive): ``2026-11`` ends
    on 2026-12-01, ``W2026-47`` on Monday 2026-11-23, ``2026-11-22`` on
    2026-11-23 and ``2026-11-22-13`` at 14:00. ``None`` for the unique key
    (``u``), which never ends, and for anything else."""
    match = _PERIOD.fullmatch(period)
    if match is None:
        return None
    try:
        if match["week"] is not None:
            monday = date.fromisocalendar(
                int(match["week_year"]), int(match["week"]), 1
            )
            return _midnight(monday + timedelta(days=7))
        year, month = int(match["year"]), int(match["month"])
        if match["day"] is None:
            return _midnight(date(year + month // 12, month % 12 + 1, 1))
        day = date(year, month, int(match["day"]))
        if match["hour"] is None:
            return _midnight(day + timedelta(days=1))
        return _midnight(day) + timedelta(hours=int(match["hour"]) + 1)
    except ValueError:
        return None


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def event_keys(client: redis.Redis, prefix: str = "") -> Iterator[tuple[str, str, str]]:
    """Yield ``(key, event name, period)`` for each bitmapist event key whose
    event name starts with ``prefix``."""
    pattern = f"{_KEY_PREFIX}{_escape_glob(prefix)}*"
    for raw_key in client.scan_iter(match=pattern, count=10_000):
        key = raw_key.decode("utf-8", "replace")
        parts = split_key(key)
        if parts is not None:
            yield key, *parts


def _escape_glob(text: str) -> str:
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)


def expired_keys(client: redis.Redis, before: datetime) -> list[str]:
    """The keys of periods that end on or before ``before`` (aware)."""
    return [
        key
        for key, _, period in event_keys(client)
        if (end := period_end(period)) is not None and end <= before
    ]


def memory_by_key(client: redis.Redis, keys: list[str]) -> dict[str, int]:
    """Each key's ``MEMORY USAGE`` in bytes (0 for a key gone meanwhile), in
    one round trip per 1000 keys."""
    sizes: dict[str, int] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        pipeline = client.pipeline(transaction=False)
        for key in chunk:
            pipeline.memory_usage(key)
        sizes.update(
            (key, int(size or 0))
            for key, size in zip(chunk, pipeline.execute(), strict=True)
        )
    return sizes


def memory_by_event(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """``{event name: (number of keys, bytes)}``, sorted by name."""
    keys_of: dict[str, list[str]] = {}
    for key, name, _ in event_keys(client):
        keys_of.setdefault(name, []).append(key)
    sizes = memory_by_key(client, [key for keys in keys_of.values() for key in keys])
    return {
        name: (len(keys), sum(sizes[key] for key in keys))
        for name, keys in sorted(keys_of.items())
    }


def delete_keys(client: redis.Redis, keys: list[str]) -> int:
    """UNLINK ``keys`` (Redis frees their memory in the background), 1000 per
    round trip; return how many existed."""
    deleted = 0
    for start in range(0, len(keys), _CHUNK):
        removed: int = client.unlink(*keys[start : start + _CHUNK])  # type: ignore[assignment]
        deleted += removed
    return deleted
