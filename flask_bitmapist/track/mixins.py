"""``Bitmapistable``: SQLAlchemy models that mark their own creation, changes
and deletion, once the transaction that made them commits.

::

    class User(db.Model, Bitmapistable):       # user:created, user:updated, ...
        id: Mapped[int] = mapped_column(primary_key=True)

    class Post(db.Model, Bitmapistable):
        __bitmapist_actor__ = "current_user"   # marked for the author, not the post
        id: Mapped[int] = mapped_column(primary_key=True)

Changes are collected at each flush and sent as
:mod:`~flask_bitmapist.track.signals` after the outermost commit, so a rolled-back
transaction or savepoint marks nothing, and ``updated`` fires only when a
mapped column's value changed. To tell, the mixin turns on SQLAlchemy's
``active_history`` for the model's columns: assigning to an attribute that a
commit expired loads the row's old values first. All the objects of one
commit are marked in one write. Bulk statements
(``session.execute(update(User)...)``) bypass the ORM's unit of work and mark
nothing.

Commit inside an app context (as Flask-SQLAlchemy requires): the marks and
signals go to that app. Outside one, nothing is marked.
"""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar

from blinker import Signal
from sqlalchemy import event, inspect
from sqlalchemy.orm import Mapper, Session, SessionTransaction, UOWTransaction

from ..state import current_app_and_state
from .idsources import resolve_id_source
from .receivers import batched_marks
from .signals import model_created, model_deleted, model_updated

logger = logging.getLogger("flask_bitmapist")

_PENDING = "flask_bitmapist.pending_changes"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Bitmapistable:
    """Mix into a declarative model to mark ``NAME:created``, ``NAME:updated``
    and ``NAME:deleted`` after each commit.

    :cvar __bitmapist_name__: the event prefix; default the class name in
        lower case.
    :cvar __bitmapist_actor__: an id source of the YAML rules schema (such as
        ``"current_user"``) whose user the events are marked for; default the
        object's own primary key: an int, or with the id map
        (``BITMAPIST_ID_MAP``) also a UUID or a string. A model with a
        composite primary key must set it, or defining the class raises
        ``TypeError``.
    """

    __bitmapist_name__: ClassVar[str | None] = None
    __bitmapist_actor__: ClassVar[str | None] = None

    @classmethod
    def bitmapist_event_prefix(cls) -> str:
        """The part of the event names before ``:created`` and the others."""
        return cls.__bitmapist_name__ or cls.__name__.lower()


@event.listens_for(Bitmapistable, "after_mapper_constructed", propagate=True)
def _prepare_model(mapper: Mapper[Any], model: type[Bitmapistable]) -> None:
    # Setting an attribute that a commit expired would otherwise record a
    # change without the old value, and "updated" would fire for "ada" ->
    # "ada". Active history loads the old value first (one SELECT per object,
    # which reading any attribute after the commit costs anyway).
    for column in mapper.column_attrs:
        event.listen(
            getattr(model, column.key),
            "set",
            _keep_value,
            active_history=True,
            retval=True,
        )
    _check_user_id(mapper, model)


def _keep_value(target: Any, value: Any, old: Any, initiator: Any) -> Any:
    return value


def _check_user_id(mapper: Mapper[Any], model: type[Bitmapistable]) -> None:
    actor = model.__bitmapist_actor__
    if actor is not None:
        if actor != "current_user" and _IDENTIFIER.match(actor) is not None:
            # A named source: the app that commits registers it.
            return
        try:
            resolve_id_source(actor, {})
        except ValueError as error:
            raise TypeError(
                f"{model.__name__}.__bitmapist_actor__ must be an id source such as "
                f"'current_user', 'g:user.id' or a registered name, got {actor!r}: "
                f"{error}."
            ) from None
        return
    # Any single column will do: a UUID or string key is an id with the id
    # map, which only the app that commits knows of; without it, to_user_id
    # refuses such a value there, with a warning that names the map.
    if len(mapper.primary_key) != 1:
        raise TypeError(
            f"{model.__name__} has a composite primary key, so Bitmapistable "
            "cannot use it as the user id: set __bitmapist_actor__ to an id "
            "source such as 'current_user'."
        )


def _columns_changed(instance: Any) -> bool:
    state = inspect(instance)
    return any(
        state.attrs[column.key].history.has_changes()
        for column in state.mapper.column_attrs
    )


@event.listens_for(Session, "after_flush")
def _collect_changes(session: Session, flush_context: UOWTransaction) -> None:
    transaction = session.get_nested_transaction() or session.get_transaction()
    changes: list[tuple[SessionTransaction | None, Signal, Any]] = []
    for signal, objects in (
        (model_created, session.new),
        (model_updated, session.dirty),
        (model_deleted, session.deleted),
    ):
        changes.extend(
            (transaction, signal, obj)
            for obj in objects
            if isinstance(obj, Bitmapistable)
            and (signal is not model_updated or _columns_changed(obj))
        )
    if changes:
        session.info.setdefault(_PENDING, []).extend(changes)


def _within(
    transaction: SessionTransaction | None, ancestor: SessionTransaction
) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous: SessionTransaction) -> None:
    pending = session.info.get(_PENDING)
    if pending:
        pending[:] = [change for change in pending if not _within(change[0], previous)]


@event.listens_for(Session, "after_transaction_end")
def _forget_uncommitted(session: Session, transaction: SessionTransaction) -> None:
    # A session closed without commit or rollback ends its transaction here.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


@event.listens_for(Session, "after_commit")
def _send_committed(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint released: its changes wait for the outer commit
    pending: list[tuple[SessionTransaction, Signal, Any]] = session.info.pop(
        _PENDING, []
    )
    if not pending:
        return
    found = current_app_and_state()
    if found is None:
        logger.warning(
            "%d committed changes of Bitmapistable models were not marked: "
            "commit inside an app context.",
            len(pending),
        )
        return
    app, state = found
    with batched_marks(app, state):
        for _, signal, instance in pending:
            signal.send(app, instance=instance)
