"""Per-app state, and finding it from anywhere: the current app's settings,
Redis client, writer and rules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
from flask import Flask, current_app
from redis.cluster import RedisCluster

from .config import Settings
from .store.backend import Client, Store, as_store
from .store.layout import BITMAPIST
from .store.systems import system_client

if TYPE_CHECKING:
    from .extension import FlaskBitmapist
    from .store.writer import Writer
    from .track.idsources import IdSource
    from .track.rules import RuleSet

EXTENSION_NAME = "bitmapist"


@dataclass(frozen=True)
class AppState:
    """What the extension keeps for one app.

    :ivar store: the app's Redis client and key layout.
    :ivar id_sources: the named id sources: those registered on the extension
        and those of ``BITMAPIST_ID_SOURCES``.
    """

    settings: Settings
    store: Store
    writer: Writer
    ruleset: RuleSet
    id_sources: Mapping[str, IdSource]

    @property
    def client(self) -> Client:
        """The app's Redis client."""
        return self.store.client


def current_app_and_state() -> tuple[Flask, AppState] | None:
    """The current app and its state, or ``None`` outside an app with the
    extension."""
    # Every mark asks this, so it resolves the current_app proxy only once.
    try:
        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    except RuntimeError:
        return None
    extension: FlaskBitmapist | None = app.extensions.get(EXTENSION_NAME)
    if extension is None:
        return None
    # FlaskBitmapist.state's cache of the app last found, read here: a call
    # less per mark, about 0.5 us of a request (README, performance).
    last_found = extension._last_found
    if last_found is not None and last_found[0]() is app:
        return app, last_found[1]
    return app, extension.state(app)


def current_state() -> AppState | None:
    """The current app's state, or ``None`` outside an app with the extension."""
    found = current_app_and_state()
    return found[1] if found else None


def resolve_store(system: str | Client | Store | None) -> Store:
    """The store that ``system`` names.

    ``None`` means the current app's store, or the ``"default"`` system
    outside an app. A name equal to the current app's
    ``BITMAPIST_REDIS_SYSTEM`` means its store too; another name is looked up
    in bitmapist's systems (see :mod:`flask_bitmapist.store.systems`), whose
    keys are in bitmapist's layout. The current app's client means its store;
    another client is read in bitmapist's layout on one node, and in the
    default sharded layout on a cluster.

    :raises ValueError: for a name that is not a known system.
    """
    if isinstance(system, Store):
        return system
    state = current_state()
    if state is not None and (
        system is state.client or system in (None, state.settings.redis_system)
    ):
        return state.store
    if isinstance(system, (redis.Redis, RedisCluster)):
        return as_store(system)
    return Store(system_client(system or "default"), BITMAPIST)  # type: ignore[arg-type,unused-ignore]


def resolve_client(system: str | Client | Store | None) -> Client:
    """The Redis client of :func:`resolve_store`'s store."""
    return resolve_store(system).client
