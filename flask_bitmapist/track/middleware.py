"""The request hooks that apply YAML rules: before rules as a request arrives,
after rules once its status is known (a view that raised counts as 500).

A request pays for what the rules need. After rules run in an
``after_request`` function that runs after every function registered with
``app.after_request``, so they see the status the response has; a teardown
hook marks, as 500, a request whose after hook never ran (an exception that
propagates, in testing or with ``PROPAGATE_EXCEPTIONS``, an
``after_request`` function that keeps failing, an error handler that
raises, a ``BaseException`` from the view). The teardown hook returns at
once when Flask passes it no exception and answers exceptions itself (not
testing, not debugging, no ``PROPAGATE_EXCEPTIONS``): there, a request
without one ran its after hooks. The one it then misses: an
``after_request`` function that fails again on the 500 of an exception that
the app's ``should_ignore_error`` ignores. It stays installed: only it sees
every request whose after hook never ran (taking it out lost failed
requests twice: tests/test_request_calls_review.py,
tests/test_rules_close_review.py). But only for the requests after rules
may fire for: when every after rule names endpoints of some blueprints
(``admin.*``, ``shop.cart.view``), it is those blueprints' teardown hook
(:meth:`~flask_bitmapist.track.rules.RuleSet.after_rule_blueprints`), and
Flask does not call it for the app's other requests. A
``before_request`` hook is installed only when some rule is a before rule
or reads a ``session:`` source. A request to an endpoint no rule names costs
the after hook's call, the teardown hook's unless the rules are of
blueprints, and a dict lookup (the README's performance section).
What the hooks keep about a request lives on the request object itself, so a
test that pushes one app context for many requests marks each of them.

Flask saves the session after the last ``after_request`` function: a request
whose session fails to save stays marked with the status its response had.

The user of a request is whoever it ends with, or else whoever it started
with: an after rule reads its id source when the request ends and, when that
gives ``None``, falls back to what the user was before the view changed it:
for ``current_user`` sources, the user Flask-Login logged out during the
request; for ``session:`` sources, the value as the request arrived. So a
login rule marks the user just logged in, and a logout rule the user just
logged out. Other sources have no fallback: ``g`` keeps its values for the
whole request, what the client sends cannot change, and a named source is
called only when the request ends, so it runs once.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple

from flask import Flask, Request, Response, current_app, has_request_context, request

from ..state import AppState
from ..store.writer import new_mark, utc_now
from .ids import to_user_id
from .idsources import object_hint, user_id_of, uses_current_user
from .marking import announce_marks
from .rules import Rule
from .signals import event_marked

logger = logging.getLogger("flask_bitmapist")

# Attributes the hooks set on the request object: what its before hook
# learned, that its after rules ran, and the user Flask-Login logged out
# during it.
_ARRIVAL = "_bitmapist_arrival"
_FINISHED = "_bitmapist_finished"
_LOGGED_OUT = "_bitmapist_logged_out_user"
_NOTHING: frozenset[str] = frozenset()
_NONE: Mapping[str, Any] = MappingProxyType({})
#: A rule that keeps marking nothing logs why at most once per this many seconds.
WARNING_INTERVAL = 60.0


class WarningLimiter:
    """Lets the first warning about each key through, then at most one per
    ``interval`` seconds, counting the ones it holds back.

    A rule whose source gives a bad id usually does so on every request; one
    line a minute says so without flooding the log.

    :param clock: seconds from any fixed point, such as :func:`time.monotonic`.
    :param interval: the least time between two warnings about one key.
    """

    def __init__(
        self, clock: Callable[[], float], interval: float = WARNING_INTERVAL
    ) -> None:
        self._clock = clock
        self._interval = interval
        self._lock = threading.Lock()
        self._next_at: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        """Whether to log a warning about ``key`` now.

        :returns: ``None`` to hold it back (it is counted), or how many
            warnings about ``key`` were held back since the last one logged.
        """
        now = self._clock()
        with self._lock:
            next_at = self._next_at.get(key)
            if next_at is not None and now < next_at:
                self._held[key] = self._held.get(key, 0) + 1
                return None
            self._next_at[key] = now + self._interval
            return self._held.pop(key, 0)


class _Arrival(NamedTuple):
    """What a request's before hook keeps for its after rules: the events its
    before rules marked, and the values its ``session:`` sources had as it
    arrived."""

    marked: frozenset[str]
    session_values: Mapping[str, Any]


class RuleHooks:
    """The hooks that apply one app's rules, and what they learn on the
    app's first request.

    They hold the app's state, never the app, which blinker's receivers must
    not keep alive.

    :param clock: the clock that spaces the warnings of a rule that marks
        nothing (see :class:`WarningLimiter`).
    """

    def __init__(
        self, state: AppState, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._state = state
        self._settings = state.settings
        self._ruleset = state.ruleset
        # Per app, so one app's noisy rule never silences another app's.
        self._limiter = WarningLimiter(clock)
        self._login_sources = frozenset(
            rule.user for rule in self._ruleset.rules if uses_current_user(rule.user)
        )
        # Most apps have no session: source; they skip reading it per request.
        self._session_sources = any(
            rule.user.startswith("session:") for rule in self._ruleset.rules
        )
        # Only before rules, and the values session: sources had as the
        # request arrived, need a hook before the view.
        self._needs_before = self._session_sources or any(
            rule.when == "before" for rule in self._ruleset.rules
        )
        self._first_request_lock = threading.Lock()
        self._first_request_seen = False
        # Sources that cannot be read on this app, found at the first request.
        self._unreadable: frozenset[str] = frozenset()
        # Whether Flask lets exceptions propagate, as it decides it, read at
        # the first request; until then the teardown hook checks every
        # request.
        self._exceptions_propagate = True

    def install(self, app: Flask) -> None:
        """Register the hooks on ``app``: the after and teardown hooks, the
        before hook when a rule needs it, and, for rules that read
        ``current_user``, a receiver of Flask-Login's ``user_logged_out``
        that keeps the user who leaves."""
        # Each hook goes to Flask as a partial of the plain function: Flask
        # inspects every hook it calls on every request (ensure_sync), a
        # bound method with one Python call more.
        if self._needs_before:
            app.before_request(functools.partial(RuleHooks.before_request, self))
        # First in the list, so it runs last: Flask calls an app's
        # after_request functions in reverse order of registration, so this
        # one sees the status that every function registered with
        # app.after_request, before or after the extension, agreed on.
        app.after_request_funcs.setdefault(None, []).insert(
            0, functools.partial(RuleHooks.after_request, self)
        )
        # The teardown hook serves requests that after rules may fire for:
        # only theirs, when those are of some blueprints (Flask calls a
        # blueprint's hooks on its requests alone). The after hook stays on
        # every request, the last of the app's after_request functions.
        # Registered through app.teardown_request first, which refuses an app
        # that has served its first request, then moved.
        teardown = functools.partial(RuleHooks.teardown_request, self)
        app.teardown_request(teardown)
        blueprints = self._ruleset.after_rule_blueprints()
        if blueprints != {None}:
            app.teardown_request_funcs[None].remove(teardown)
            for blueprint in blueprints:
                app.teardown_request_funcs.setdefault(blueprint, []).append(teardown)
        if self._login_sources:
            from flask_login import user_logged_out

            # blinker drops the receiver when the app (its sender) is
            # collected, so a strong connection leaks nothing.
            user_logged_out.connect(self.user_logged_out, app, weak=False)

    def before_request(self) -> None:
        """Mark the before rules, and keep what the after rules need."""
        if not self._first_request_seen:
            self._first_request()
        # Attributes of the real request: through the proxy each costs 1.5 us.
        current = request._get_current_object()  # type: ignore[attr-defined]
        before, after = self._ruleset.for_endpoint(current.endpoint)
        marked = (
            frozenset(self._apply(current, before, None, _NOTHING))
            if before
            else _NOTHING
        )
        if after:
            values = self._session_values(after) if self._session_sources else _NONE
            setattr(current, _ARRIVAL, _Arrival(marked, values))

    def after_request(self, response: Response) -> Response:
        """Mark the after rules with the status of the response."""
        if not self._first_request_seen:
            self._first_request()
        # Attributes of the real request: through the proxy each costs 1.5 us.
        # Every request comes here, so it looks up its after rules without a
        # Python call once its endpoint has been seen (each costs about
        # 0.5 us with Flask's caches cold): Request.endpoint, inline, and
        # RuleSet's cache before RuleSet.for_endpoint.
        current = request._get_current_object()  # type: ignore[attr-defined]
        url_rule = current.url_rule
        endpoint = None if url_rule is None else url_rule.endpoint
        found = self._ruleset.by_endpoint.get(endpoint)
        after = (found or self._ruleset.for_endpoint(endpoint))[1]
        if after:
            # _finish, inline: a Python call less on every request an after
            # rule may mark (the teardown hook's rarer requests call it).
            attributes = current.__dict__
            if _FINISHED not in attributes:
                attributes[_FINISHED] = True
                arrival = attributes.get(_ARRIVAL)
                self._apply(
                    current,
                    after,
                    response.status_code,
                    _NOTHING if arrival is None else arrival.marked,
                    arrival,
                )
        return response

    def teardown_request(self, error: BaseException | None) -> None:
        """Mark the after rules of a request whose after hook never ran: its
        exception propagated, or an ``after_request`` function kept failing.
        Either way it ended in a 500."""
        # Flask passes the exception that ended the request. Where Flask
        # answers exceptions itself (not testing, not debugging, not
        # PROPAGATE_EXCEPTIONS), a request it passes none finished its after
        # hooks: most requests stop here, 0.5 us sooner than by looking at
        # the request. Elsewhere an exception can end a request unseen: one
        # that should_ignore_error ignores, or that a test caught around
        # full_dispatch_request.
        if not self._first_request_seen:
            self._first_request()
        if error is None and not self._exceptions_propagate:
            return
        current = request._get_current_object()  # type: ignore[attr-defined]
        after = self._ruleset.for_endpoint(current.endpoint)[1]
        if after:
            self._finish(current, after, 500)

    def _finish(self, current: Request, after: tuple[Rule, ...], status: int) -> None:
        """Mark the after rules, once per request: the after hook runs again
        when Flask answers an exception it raised with a 500."""
        if _FINISHED in current.__dict__:
            return
        setattr(current, _FINISHED, True)
        arrival: _Arrival | None = current.__dict__.get(_ARRIVAL)
        marked = _NOTHING if arrival is None else arrival.marked
        self._apply(current, after, status, marked, arrival)

    def user_logged_out(self, sender: Flask, user: Any = None, **extra: Any) -> None:
        """Keep the user Flask-Login logs out, for the after rules of this
        request whose ``current_user`` is anonymous by the time it ends."""
        if user is not None and has_request_context():
            setattr(request._get_current_object(), _LOGGED_OUT, user)  # type: ignore[attr-defined]

    def _first_request(self) -> None:
        with self._first_request_lock:
            if self._first_request_seen:
                return
            self._first_request_seen = True
        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        propagate = app.config.get("PROPAGATE_EXCEPTIONS")
        self._exceptions_propagate = bool(
            app.testing or app.debug if propagate is None else propagate
        )
        try:
            for problem in self._ruleset.problems(app):
                logger.warning("%s", problem.message)
        except Exception:
            # A custom URL converter may raise on a sample value: the check
            # must never fail the request.
            logger.exception("Could not check the YAML rules against the routes.")
        if self._login_sources and not hasattr(app, "login_manager"):
            self._unreadable = self._login_sources
            logger.warning(
                "Rules use the id source current_user, but Flask-Login is not set "
                "up on this app: create LoginManager(app), or name another source "
                "with user:. Until then, the rules that use it mark nothing."
            )

    def _session_values(self, rules: tuple[Rule, ...]) -> Mapping[str, Any]:
        """The value of each ``session:`` source of ``rules`` that may fire,
        as the request arrives: a dict lookup in the session Flask already
        opened, which a logout may clear."""
        current = request._get_current_object()  # type: ignore[attr-defined]
        method, path = current.method, current.path
        return {
            rule.user: rule.get_user()
            for rule in rules
            if rule.user.startswith("session:") and rule.matches_request(method, path)
        }

    def _fallback(self, current: Request, rule: Rule, arrival: _Arrival | None) -> Any:
        """What ``rule``'s source gave before the view changed the user."""
        if uses_current_user(rule.user):
            user = current.__dict__.get(_LOGGED_OUT)
            return None if user is None else user_id_of(rule.user, user)
        return arrival.session_values.get(rule.user) if arrival else None

    def _warn(self, rule: Rule, reason: str) -> None:
        held = self._limiter.allow(rule.origin)
        if held is None:
            return
        if held:
            logger.warning(
                "Rule at %s marked nothing (%d warnings suppressed since the "
                "last one): %s",
                rule.origin,
                held,
                reason,
            )
        else:
            logger.warning("Rule at %s marked nothing: %s", rule.origin, reason)

    def _apply(
        self,
        current: Request,
        rules: tuple[Rule, ...],
        status: int | None,
        already: frozenset[str],
        arrival: _Arrival | None = None,
    ) -> AbstractSet[str]:
        """Mark what ``rules`` match, skipping events in ``already``; return
        the events marked by this request so far (a set the caller may keep
        only as a frozenset: the after hook, which ignores it, is spared
        building one). A source that gives ``None`` falls back to
        :meth:`_fallback`. A failure is logged (raised with
        ``BITMAPIST_RAISE_ERRORS``), marking none of them."""
        try:
            settings = self._settings
            method, path = current.method, current.path
            marked = set(already)
            marks = []
            now: datetime | None = None
            for rule in rules:
                # Rule.matches_request, and the status, inline: a Python call
                # costs about 0.5 us of a request.
                methods, path_regex = rule.methods, rule.path_regex
                if (
                    rule.event in marked
                    or rule.user in self._unreadable
                    or (methods is not None and method not in methods)
                    or (path_regex is not None and path_regex.match(path) is None)
                    or (status is not None and status not in rule.statuses)
                ):
                    continue
                value = None
                try:
                    value = rule.get_user()
                    if value is None:
                        value = self._fallback(current, rule, arrival)
                    # A plain int in range skips a Python call (as in @mark).
                    if (
                        value.__class__ is int
                        and 0 <= value <= settings.max_user_id
                        and not settings.id_map
                    ):
                        user_id: int | str | None = value
                    else:
                        user_id = to_user_id(
                            rule.event,
                            value,
                            max_user_id=settings.max_user_id,
                            id_map=settings.id_map,
                        )
                except Exception as error:
                    self._warn(rule, f"{error}{object_hint(rule.user, value)}")
                    continue
                if user_id is None:
                    continue
                marked.add(rule.event)
                hourly, unique = rule.track_hourly, rule.track_unique
                if now is None:
                    now = utc_now()
                marks.append(
                    new_mark(
                        (
                            rule.event,
                            user_id,
                            now,
                            settings.track_hourly if hourly is None else hourly,
                            settings.track_unique if unique is None else unique,
                            1,
                        )
                    )
                )
            # submit_marks, inline: a Python call less on every marked request.
            if marks:
                accepted = self._state.writer.submit_many(marks)
                if event_marked.receivers:
                    announce_marks(None, accepted)
            return marked
        except Exception:
            if self._settings.raise_errors:
                raise
            logger.exception(
                "YAML rules failed to mark %s %s", current.method, current.path
            )
            return already


def install_rule_hooks(
    app: Flask, state: AppState, *, clock: Callable[[], float] = time.monotonic
) -> None:
    """Apply ``state``'s rules to ``app``'s requests (see :class:`RuleHooks`).

    :param clock: the clock that spaces the warnings of a rule that marks
        nothing.
    """
    RuleHooks(state, clock=clock).install(app)
