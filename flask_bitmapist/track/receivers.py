"""The receivers that mark Flask-Login's logins and logouts and the changes of
``Bitmapistable`` models, connected by ``init_app`` for one app."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from flask import Flask

from ..store.writer import Mark
from .ids import to_user_id
from .idsources import resolve_id_source
from .marking import submit_marks
from .signals import model_created, model_deleted, model_updated

if TYPE_CHECKING:
    from ..state import AppState

logger = logging.getLogger("flask_bitmapist")

LOGIN_EVENT = "user:logged_in"
LOGOUT_EVENT = "user:logged_out"

# The marks of one commit's model signals, written together when it is set.
_commit_batch: ContextVar[list[Mark] | None] = ContextVar("_commit_batch", default=None)


@contextlib.contextmanager
def batched_marks(app: Flask, state: AppState) -> Iterator[None]:
    """Collect the marks that model receivers make inside the block, and submit
    them in one write at its end."""
    token = _commit_batch.set([])
    try:
        yield
    finally:
        marks = _commit_batch.get() or []
        _commit_batch.reset(token)
    if marks:
        submit_marks(app, state, marks)


def _make_mark(state: AppState, event_name: str, raw_id: Any) -> Mark | None:
    """A mark of ``event_name`` now, or ``None`` (anonymous, or a bad id, logged)."""
    try:
        user_id = to_user_id(
            event_name,
            raw_id,
            max_user_id=state.settings.max_user_id,
            id_map=state.settings.id_map,
        )
    except ValueError as error:
        logger.warning("%s marked nothing: %s", event_name, error)
        return None
    if user_id is None:
        return None
    settings = state.settings
    return Mark(
        event_name,
        user_id,
        datetime.now(timezone.utc),
        settings.track_hourly,
        settings.track_unique,
    )


def connect_login_receivers(app: Flask, state: AppState) -> None:
    """Mark Flask-Login's logins and logouts of ``app`` only.

    The receivers filter on the sender, so with two apps in one process a
    login marks once, in its own app's Redis. They hold no reference to the
    app, and blinker drops them with it.
    """
    from flask_login import user_logged_in, user_logged_out

    def receiver(event_name: str) -> Any:
        def mark_user(sender: Flask, user: Any = None, **extra: Any) -> None:
            try:
                raw_id = user.get_id() if user is not None else None
                mark = _make_mark(state, event_name, raw_id)
                if mark is not None:
                    submit_marks(sender, state, [mark])
            except Exception:
                if state.settings.raise_errors:
                    raise
                logger.exception("%s marked nothing", event_name)

        return mark_user

    user_logged_in.connect(receiver(LOGIN_EVENT), app, weak=False)
    user_logged_out.connect(receiver(LOGOUT_EVENT), app, weak=False)


def connect_model_receivers(app: Flask, state: AppState) -> None:
    """Mark ``created``, ``updated`` and ``deleted`` events of ``app``'s models.

    The user is the object's own integer primary key, or what the model's
    ``__bitmapist_actor__`` id source gives.
    """
    from sqlalchemy import inspect

    def receiver(action: str) -> Any:
        def mark_model(sender: Flask, instance: Any = None, **extra: Any) -> None:
            try:
                model = type(instance)
                event_name = f"{model.bitmapist_event_prefix()}:{action}"
                actor = model.__bitmapist_actor__
                if actor is None:
                    raw_id = inspect(instance).identity[0]
                else:
                    raw_id = resolve_id_source(actor, state.id_sources)()
                mark = _make_mark(state, event_name, raw_id)
                if mark is None:
                    return
                batch = _commit_batch.get()
                if batch is None:
                    submit_marks(sender, state, [mark])
                else:
                    batch.append(mark)
            except Exception:
                if state.settings.raise_errors:
                    raise
                logger.exception("%r %s marked nothing", instance, action)

        return mark_model

    model_created.connect(receiver("created"), app, weak=False)
    model_updated.connect(receiver("updated"), app, weak=False)
    model_deleted.connect(receiver("deleted"), app, weak=False)
