"""The Flask extension: reads config, builds the client and writer per app."""

from __future__ import annotations

import importlib.util
import weakref
from collections.abc import Callable
from types import MappingProxyType
from typing import TypeVar

import redis
from flask import Flask, current_app

from .cli import bitmapist_cli
from .config import Settings
from .dashboard import blueprint as dashboard_blueprint
from .state import EXTENSION_NAME, AppState
from .store.backend import Client, Store
from .store.client import create_client
from .store.idmap import id_map_of
from .store.layout import layout_of
from .store.systems import register_system
from .store.writer import WriterStats, create_writer
from .track.idsources import IdSource
from .track.middleware import install_rule_hooks
from .track.receivers import connect_login_receivers, connect_model_receivers
from .track.rules import RuleSet, load_rules

SourceT = TypeVar("SourceT", bound=IdSource)


class FlaskBitmapist:
    """Real-time user analytics on Redis bitmaps for a Flask app.

    Enable it in three lines::

        from flask_bitmapist import FlaskBitmapist

        bitmapist = FlaskBitmapist()
        bitmapist.init_app(app)

    or ``FlaskBitmapist(app)`` for a single app. One instance serves any number
    of apps (app factories); each app has its own settings, Redis client and
    writer, found through the current app context.

    :param app: call :meth:`init_app` on this app right away.
    """

    def __init__(self, app: Flask | None = None) -> None:
        self._states: weakref.WeakKeyDictionary[Flask, AppState] = (
            weakref.WeakKeyDictionary()
        )
        # The app last looked up and its state: every mark asks for its app's
        # state, and a WeakKeyDictionary lookup is two Python calls, about
        # 1 us of a request (README, performance).
        self._last_found: tuple[weakref.ref[Flask], AppState] | None = None
        self._id_sources: dict[str, IdSource] = {}
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read the app's ``BITMAPIST_*`` config and register the extension.

        The app's connection is registered as bitmapist system
        ``BITMAPIST_REDIS_SYSTEM``, so bitmapist's own classes read the same
        data. The rules files of ``BITMAPIST_RULES`` are loaded and their
        request hooks installed; Flask-Login's login and logout signals (with
        ``BITMAPIST_TRACK_LOGIN``) and the model signals of
        :class:`~flask_bitmapist.track.mixins.Bitmapistable` are connected for this
        app only; ``flask bitmapist`` joins the app's CLI; and the dashboard
        is mounted at ``BITMAPIST_URL_PREFIX`` unless
        ``BITMAPIST_DISABLE_BLUEPRINT`` is set.

        :raises RuntimeError: when the app already has the extension.
        :raises flask_bitmapist.ConfigError: for a config value of the wrong
            type or range.
        :raises flask_bitmapist.RulesError: for a rules file that cannot be
            used, naming the file, the line and the reason.
        """
        if EXTENSION_NAME in app.extensions:
            raise RuntimeError(
                "flask-bitmapist is already initialized on this app; "
                "call init_app once per app."
            )
        settings = Settings.from_mapping(app.config, testing=app.testing)
        client = create_client(
            settings.redis_url,
            instance_path=app.instance_path,
            socket_timeout=settings.socket_timeout,
            options=settings.redis_options,
        )
        layout = layout_of(settings)
        store = Store(
            client, layout, id_map_of(settings, layout), settings.query_engine
        )
        if isinstance(client, redis.Redis):
            # bitmapist's systems are clients of one node; on a cluster,
            # system names other than the app's own do not reach its store.
            register_system(settings.redis_system, client)
        id_sources = MappingProxyType({**self._id_sources, **settings.id_sources})
        state = AppState(
            settings=settings,
            store=store,
            writer=create_writer(store, settings),
            ruleset=RuleSet(load_rules(settings.rules, app.root_path, id_sources)),
            id_sources=id_sources,
        )
        if state.ruleset.rules:
            install_rule_hooks(app, state)
        if settings.track_login and _installed("flask_login"):
            connect_login_receivers(app, state)
        if _installed("sqlalchemy"):
            connect_model_receivers(app, state)
        self._states[app] = state
        app.extensions[EXTENSION_NAME] = self
        app.cli.add_command(bitmapist_cli)
        if not settings.disable_blueprint:
            app.register_blueprint(dashboard_blueprint, url_prefix=settings.url_prefix)

    def id_source(self, name: str) -> Callable[[SourceT], SourceT]:
        """Register a named id source for YAML rules (``user: NAME``) and
        model actors. Register it before ``init_app``, which loads the rules;
        with ``FlaskBitmapist(app)``, use ``BITMAPIST_ID_SOURCES`` instead.

        ::

            @bitmapist.id_source("account_owner")
            def account_owner():
                return g.account.owner_id

        :param name: an identifier, as rules files name it.
        :raises ValueError: when ``name`` is not an identifier.
        """
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"An id source name must be an identifier, got {name!r}.")

        def register(source: SourceT) -> SourceT:
            self._id_sources[name] = source
            return source

        return register

    def state(self, app: Flask | None = None) -> AppState:
        """The settings, client and writer of ``app`` (default: the current app).

        :raises RuntimeError: when the app was not initialized with this instance.
        """
        app = app or current_app._get_current_object()  # type: ignore[attr-defined]
        last_found = self._last_found
        if last_found is not None and last_found[0]() is app:
            return last_found[1]
        try:
            state = self._states[app]
        except KeyError:
            raise RuntimeError(
                f"App {app.name!r} was not initialized with this FlaskBitmapist; "
                "call init_app(app) first."
            ) from None
        self._last_found = (weakref.ref(app), state)
        return state

    @property
    def settings(self) -> Settings:
        """The current app's settings."""
        return self.state().settings

    @property
    def redis(self) -> Client:
        """The current app's Redis client (of one node, or of a cluster)."""
        return self.state().client

    def stats(self) -> WriterStats:
        """The current app's writer counters: queued, written, retried, dropped,
        pending, and the last error with its time."""
        return self.state().writer.stats()

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every mark the current app queued so far is written.

        :param timeout: the most seconds to wait; ``None`` waits as long as it
            takes.
        :returns: whether everything got through: all it waited for was
            written before ``timeout``, and no mark was dropped (by a full
            queue, a failed sync write, or a refused batch) since the previous
            flush of this app's writer. Each drop makes one flush return
            ``False``.
        """
        return self.state().writer.flush(timeout)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
