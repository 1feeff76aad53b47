"""Explicit marking: ``mark_event``, ``unmark_event`` and the ``@mark`` decorator."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

from flask import Flask, current_app

from ..config import DEFAULT_MAX_USER_ID
from ..state import AppState, current_app_and_state, current_state, resolve_store
from ..store.layout import to_mark_time, validate_event_name
from ..store.systems import track_defaults
from ..store.writer import (
    Mark,
    PartialWrite,
    flush_all,
    new_mark,
    utc_now,
    write_marks,
)
from .ids import to_user_id
from .signals import event_marked

logger = logging.getLogger("flask_bitmapist")

F = TypeVar("F", bound=Callable[..., Any])
UserIdSource = Any | Callable[[], Any]


def submit_marks(app: Flask | None, state: AppState, marks: Sequence[Mark]) -> None:
    """Hand ``marks`` to the app's writer (one round trip in sync mode) and send
    :data:`~flask_bitmapist.track.signals.event_marked` for each one that went
    through: written in sync mode (none when the write failed), queued in
    background mode (not those a full queue dropped). Every source of marks
    goes through here, or does the same inline where a request waits for it
    (``@mark``, the YAML rules: a Python call less).

    :param app: the signal's sender; ``None`` for the current app, looked up
        only when the signal has receivers.
    """
    accepted = state.writer.submit_many(marks)
    if event_marked.receivers:
        announce_marks(app, accepted)


def announce_marks(app: Flask | None, marks: Sequence[Mark]) -> None:
    """Send :data:`~flask_bitmapist.track.signals.event_marked` for each of
    ``marks`` (``app``: the sender; ``None`` for the current app)."""
    if app is None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
    for mark in marks:
        event_marked.send(
            app, event_name=mark.event_name, user_id=mark.user_id, when=mark.when
        )


def mark_event(
    event_name: str,
    uuid: Any,
    *,
    now: datetime | None = None,
    track_hourly: bool | None = None,
    track_unique: bool | None = None,
    system: str | None = None,
) -> None:
    """Mark that user ``uuid`` did ``event_name``.

    Writes the keys ``bitmapist.mark_event`` writes: month, ISO week and day,
    plus hour and unique when enabled. Inside an app context the mark goes
    through that app's writer (in one round trip, now or in the background);
    outside one it is written at once to bitmapist's ``"default"`` system, and a
    Redis error is raised.

    :param event_name: a non-empty str of at most 200 characters, without
        whitespace or control characters.
    :param uuid: the user id: an int or a str of decimal digits from 0 to
        ``BITMAPIST_MAX_USER_ID`` (default 2**24 - 1, also outside an app).
        ``None`` means an anonymous user: nothing is marked.
    :param now: when it happened, from 1970 to 2099 (UTC); naive datetimes
        are taken as UTC. Default: now.
    :param track_hourly: also mark the hour. Default: ``BITMAPIST_TRACK_HOURLY``
        (``bitmapist.TRACK_HOURLY`` outside an app).
    :param track_unique: also mark the time-independent unique key. Default:
        ``BITMAPIST_TRACK_UNIQUE`` (``bitmapist.TRACK_UNIQUE`` outside an app).
    :param system: a bitmapist system name to write to instead of the app's;
        marks to another system are checked against the default maximum id,
        as outside an app.
    :raises ValueError: for an invalid event name, user id or time; nothing is
        marked.
    """
    validate_event_name(event_name)
    _submit(event_name, uuid, now, track_hourly, track_unique, system, value=1)


def unmark_event(
    event_name: str,
    uuid: Any,
    *,
    now: datetime | None = None,
    track_hourly: bool | None = None,
    track_unique: bool | None = None,
    system: str | None = None,
) -> None:
    """Clear the bits that :func:`mark_event` with the same arguments sets.

    Takes the same arguments and raises the same errors as :func:`mark_event`.
    """
    validate_event_name(event_name)
    _submit(event_name, uuid, now, track_hourly, track_unique, system, value=0)


def _submit(
    event_name: str,
    uuid: Any,
    now: datetime | None,
    track_hourly: bool | None,
    track_unique: bool | None,
    system: str | None,
    value: int,
) -> None:
    # The callers check the event name: mark_event per call, @mark once.
    # A mark in an app takes few Python calls: inside a request, where
    # Flask's work leaves the caches cold, each costs about 0.5 us (README,
    # performance), so an id that is a plain int in range skips to_user_id.
    found = current_app_and_state()
    if found is not None and system not in (None, found[1].settings.redis_system):
        found = None
    if found is None:
        max_user_id, id_map = DEFAULT_MAX_USER_ID, False
        hourly, unique = track_defaults()
    else:
        settings = found[1].settings
        max_user_id, id_map = settings.max_user_id, settings.id_map
        hourly, unique = settings.track_hourly, settings.track_unique
    if uuid.__class__ is int and 0 <= uuid <= max_user_id and not id_map:
        user_id: int | str | None = uuid
    else:
        user_id = to_user_id(event_name, uuid, max_user_id=max_user_id, id_map=id_map)
    # The clock's own time needs no check against the years marks may have.
    when = utc_now() if now is None else to_mark_time(now)
    if user_id is None:
        return
    mark = new_mark(
        (
            event_name,
            user_id,
            when,
            hourly if track_hourly is None else track_hourly,
            unique if track_unique is None else track_unique,
            value,
        )
    )
    if found is None:
        try:
            write_marks(resolve_store(system), (mark,))
        except PartialWrite as partial:
            raise partial.error from None
        return
    # submit_marks for one mark, inline: a call less.
    app, state = found
    if state.writer.submit_many((mark,)) and value and event_marked.receivers:
        event_marked.send(app, event_name=event_name, user_id=user_id, when=when)


def mark(
    event_name: str,
    uuid: UserIdSource,
    *,
    track_hourly: bool | None = None,
    track_unique: bool | None = None,
    system: str | None = None,
) -> Callable[[F], F]:
    """Decorate a function so that each call that returns marks ``event_name``.

    ``uuid`` is a value, or a zero-argument callable evaluated after each call,
    so ``@mark("report:downloaded", lambda: current_user.id)`` marks the user
    of the current request. Nothing is marked when the function raises. It
    keeps the function's name and docstring, works on ``async def`` views, and
    stacks under ``@app.route``.

    A failure to find or validate the id after the call is logged and marks
    nothing, so it never turns a finished view into an error; with
    ``BITMAPIST_RAISE_ERRORS`` it is raised.

    :param event_name: validated now, so a bad name fails at import time.
    :param uuid: the user id, or a callable returning it.
    :raises ValueError: for an invalid event name.
    """
    validate_event_name(event_name)

    uuid_is_callable = callable(uuid)

    def decorator(function: F) -> F:
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                result = await function(*args, **kwargs)
                try:
                    user_id = uuid() if uuid_is_callable else uuid
                    _submit(
                        event_name, user_id, None, track_hourly, track_unique, system, 1
                    )
                except Exception:
                    _marking_failed(event_name)
                return result

            return cast(F, async_wrapper)

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = function(*args, **kwargs)
            # mark_event without checking the name again, inline (as in
            # async_wrapper): a function of its own would be a Python call
            # more on every marked request.
            try:
                user_id = uuid() if uuid_is_callable else uuid
                _submit(
                    event_name, user_id, None, track_hourly, track_unique, system, 1
                )
            except Exception:
                _marking_failed(event_name)
            return result

        return cast(F, wrapper)

    return decorator


def _marking_failed(event_name: str) -> None:
    """In ``@mark``'s ``except`` block: log the failure to mark, or raise it
    again outside an app or with ``BITMAPIST_RAISE_ERRORS``."""
    state = current_state()
    if state is None or state.settings.raise_errors:
        raise  # the failure being handled, in the caller's except block
    logger.exception("@mark(%r) marked nothing", event_name)


def flush(timeout: float | None = None) -> bool:
    """Block until every mark queued so far is written to Redis.

    In an app context it flushes that app's writer; outside one, every
    background writer in the process (a sync writer has nothing to wait for:
    call it in that app's context to learn of its failed writes). Tests and
    command-line tools call it before they read what they marked.

    :param timeout: the most seconds to wait; ``None`` waits as long as it takes.
    :returns: whether everything got through: all it waited for was written
        before the timeout, and no mark was dropped (by a full queue, a failed
        sync write, or a batch Redis refused) since the previous flush of the
        same writer. Each drop makes one flush return ``False``.
    """
    state = current_state()
    if state is not None:
        return state.writer.flush(timeout)
    return flush_all(timeout)
