"""The Flask extension: reads config, builds the client and writer per app."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import bitmapist
import redis
from flask import Flask, current_app

from .cli import bitmapist_cli
from .config import Settings
from .idsources import IdSource
from .middleware import install_rule_hooks
from .rules import RuleSet, load_rules
from .store import create_client, register_system
from .writer import Writer, WriterStats, create_writer

SourceT = TypeVar("SourceT", bound=IdSource)

EXTENSION_NAME = "bitmapist"


@dataclass(frozen=True)
class AppState:
    """What the extension keeps for one app."""

    settings: Settings
    client: redis.Redis
    writer: Writer
    ruleset: RuleSet


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
        self._id_sources: dict[str, IdSource] = {}
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read the app's ``BITMAPIST_*`` config and register the extension.

        The app's connection is registered as bitmapist system
        ``BITMAPIST_REDIS_SYSTEM``, so bitmapist's own classes read the same
        data. The rules files of ``BITMAPIST_RULES`` are loaded and their
        request hooks installed, and ``flask bitmapist`` joins the app's CLI.

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
        )
        register_system(settings.redis_system, client)
        writer = create_writer(client, settings)
        ruleset = RuleSet(
            load_rules(
                settings.rules,
                app.root_path,
                {**self._id_sources, **settings.id_sources},
            )
        )
        if ruleset.rules:
            install_rule_hooks(app, settings, writer, ruleset)
        self._states[app] = AppState(
            settings=settings, client=client, writer=writer, ruleset=ruleset
        )
        app.extensions[EXTENSION_NAME] = self
        app.cli.add_command(bitmapist_cli)

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
        try:
            return self._states[app]
        except KeyError:
            raise RuntimeError(
                f"App {app.name!r} was not initialized with this FlaskBitmapist; "
                "call init_app(app) first."
            ) from None

    @property
    def settings(self) -> Settings:
        """The current app's settings."""
        return self.state().settings

    @property
    def redis(self) -> redis.Redis:
        """The current app's Redis client."""
        return self.state().client

    def stats(self) -> WriterStats:
        """The current app's writer counters: queued, written, retried, dropped,
        pending, and the last error with its time."""
        return self.state().writer.stats()

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every mark the current app queued so far is written.

        :returns: whether it all got through before ``timeout`` seconds.
        """
        return self.state().writer.flush(timeout)


def current_state() -> AppState | None:
    """The current app's state, or ``None`` outside an app with the extension."""
    # Every mark asks this, so it resolves the current_app proxy only once.
    try:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
    except RuntimeError:
        return None
    extension: FlaskBitmapist | None = app.extensions.get(EXTENSION_NAME)
    if extension is None:
        return None
    return extension.state(app)


def resolve_client(system: str | redis.Redis | None) -> redis.Redis:
    """The Redis client that ``system`` names.

    ``None`` means the current app's client, or bitmapist's ``"default"``
    system outside an app. A name equal to the current app's
    ``BITMAPIST_REDIS_SYSTEM`` means its client too; another name is looked up
    in bitmapist's systems.

    :raises ValueError: for a name that is not a bitmapist system.
    """
    if isinstance(system, redis.Redis):
        return system
    state = current_state()
    if state is not None and system in (None, state.settings.redis_system):
        return state.client
    name = system or "default"
    try:
        client: redis.Redis = bitmapist.get_redis(name)
    except KeyError:
        raise ValueError(
            f"Unknown bitmapist system {name!r}; known systems: "
            f"{', '.join(sorted(bitmapist.SYSTEMS))}."
        ) from None
    return client
