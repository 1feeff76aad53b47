"""Realistic fake analytics: users who sign up, come back less and less, make
projects, some upgrade and a few leave. For demos, trying the dashboard, and
load tests; never for a production store.

The same ``seed`` number gives the same data for the same ``now``. The events
are those of the demo app (``examples/demo.py``): ``user:created``,
``user:logged_in``, ``user:logged_out``, ``home:viewed``, ``project:created``,
``project:viewed``, ``project:updated``, ``checkout:started``,
``plan:upgraded`` and ``user:deleted``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..store.backend import Client, Store, as_store
from ..store.layout import FIRST_MARK_TIME, to_mark_time
from ..store.writer import Mark
from .importer import import_marks

MAX_SEED_USERS = 1_000_000
MAX_SEED_DAYS = 3660


@dataclass(frozen=True)
class _Persona:
    """How a kind of user behaves: the chance of coming back the day after
    signing up, how fast that fades per day, and what they do on a visit."""

    weight: float
    first_return: float
    daily_fade: float
    creates: float
    upgrades: float


_PERSONAS = (
    _Persona(
        weight=0.55, first_return=0.35, daily_fade=0.90, creates=0.10, upgrades=0.002
    ),
    _Persona(
        weight=0.35, first_return=0.60, daily_fade=0.985, creates=0.30, upgrades=0.01
    ),
    _Persona(
        weight=0.10, first_return=0.90, daily_fade=0.998, creates=0.60, upgrades=0.03
    ),
)
# Fewer people sign up and come back at the weekend (Monday is 0).
_WEEKDAY_FACTOR = (1.0, 1.05, 1.05, 1.0, 0.9, 0.6, 0.55)


def _check_range(name: str, value: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise ValueError(f"{name} must be an int from 1 to {high}, got {value!r}.")
    return value


def generate_marks(
    users: int = 2000,
    days: int = 90,
    seed: int = 0,
    now: datetime | None = None,
) -> Iterator[list[Mark]]:
    """Yield each user's marks, one list per user, none later than ``now``.

    :param users: how many users sign up, from 1 to 1,000,000 (ids 1..users).
    :param days: over how many days up to ``now``, from 1 to 3660.
    :param seed: the random seed.
    :param now: the end of the period, before 2100; naive datetimes are UTC.
        Default: now.
    :raises ValueError: for an out-of-range argument, or days that start
        before 1970.
    """
    _check_range("users", users, MAX_SEED_USERS)
    _check_range("days", days, MAX_SEED_DAYS)
    end = to_mark_time(now)
    first_day = (end - timedelta(days=days - 1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    if first_day < FIRST_MARK_TIME:
        raise ValueError(
            f"days of {days} up to {end.date().isoformat()} start before "
            f"{FIRST_MARK_TIME.date().isoformat()}, the first day a mark may have."
        )
    chance = random.Random(seed)
    signup_days = _signup_days(chance, users, days, first_day)
    for user_id, signup_day in enumerate(signup_days, start=1):
        persona = chance.choices(_PERSONAS, [p.weight for p in _PERSONAS])[0]
        yield list(_story(chance, persona, user_id, first_day, signup_day, end))


def _signup_days(
    chance: random.Random, users: int, days: int, first_day: datetime
) -> list[int]:
    # Sign-ups grow a little over the period, with the weekday pattern.
    weights = [
        (1 + day / days) * _WEEKDAY_FACTOR[(first_day + timedelta(days=day)).weekday()]
        for day in range(days)
    ]
    return sorted(chance.choices(range(days), weights, k=users))


def _story(
    chance: random.Random,
    persona: _Persona,
    user_id: int,
    first_day: datetime,
    signup_day: int,
    end: datetime,
) -> Iterator[Mark]:
    def at(day: int) -> datetime | None:
        when = first_day + timedelta(
            days=day, hours=chance.randint(7, 22), minutes=chance.randint(0, 59)
        )
        return when if when <= end else None

    def mark(event: str, when: datetime) -> Mark:
        return Mark(event, user_id, when, False, False)

    signed_up = at(signup_day)
    if signed_up is None:
        return
    for event in ("user:created", "user:logged_in", "home:viewed"):
        yield mark(event, signed_up)
    paid = False
    return_chance = persona.first_return
    last_day = (end - first_day).days
    for day in range(signup_day + 1, last_day + 1):
        when = at(day)
        if when is None:
            break
        weekday = _WEEKDAY_FACTOR[when.weekday()]
        if chance.random() < return_chance * weekday:
            yield from _visit(chance, persona, mark, when, paid)
            paid = paid or chance.random() < persona.upgrades * 30
        return_chance *= persona.daily_fade
        if chance.random() < 0.0005:
            yield mark("user:deleted", when)
            break


def _visit(
    chance: random.Random,
    persona: _Persona,
    mark: Callable[[str, datetime], Mark],
    when: datetime,
    paid: bool,
) -> Iterator[Mark]:
    yield mark("user:logged_in", when)
    yield mark("home:viewed", when)
    if chance.random() < 0.7:
        yield mark("project:viewed", when)
    if chance.random() < persona.creates:
        yield mark("project:created", when)
    if chance.random() < persona.creates / 2:
        yield mark("project:updated", when)
    if not paid and chance.random() < persona.upgrades * 4:
        yield mark("checkout:started", when)
        if chance.random() < 0.5:
            yield mark("plan:upgraded", when)
    if chance.random() < 0.4:
        yield mark("user:logged_out", when + timedelta(minutes=chance.randint(1, 50)))


def seed_events(
    store: Store | Client,
    users: int = 2000,
    days: int = 90,
    seed: int = 0,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the marks of :func:`generate_marks` to ``store`` in bulk, with
    the keys ``mark_event`` writes (SETBIT is idempotent: seeding twice with
    the same arguments changes nothing).

    With the store's id map, the users are the ids ``"1"``, ``"2"``, ...,
    written through the map, so that a store in either mode shows the same
    users.

    :param progress: called with the number of users done since the last call.
    :returns: how many marks were written.
    :raises ValueError: for an out-of-range argument.
    :raises redis.RedisError: when Redis cannot be reached.
    """
    mapped = as_store(store).id_map is not None

    def numbered() -> Iterator[tuple[int, Mark]]:
        number = 0
        for user_marks in generate_marks(users, days, seed, now):
            for item in user_marks:
                number += 1
                if mapped:
                    item = item._replace(user_id=str(item.user_id))
                yield number, item
            if progress is not None:
                progress(1)

    return import_marks(store, numbered()).imported
