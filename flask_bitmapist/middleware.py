"""The request hooks that apply YAML rules: before rules as a request arrives,
after rules once its status is known (a view that raised counts as 500)."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from flask import Flask, Response, current_app, g, request, request_finished

from .ids import to_user_id
from .rules import Rule
from .state import AppState, submit_marks
from .writer import Mark

logger = logging.getLogger("flask_bitmapist")

# The after rules a request may fire, with the events its before rules marked,
# wait on flask.g under this name; only requests that some rule may mark
# store anything.
_PENDING = "_bitmapist_pending_rules"
_NOTHING: frozenset[str] = frozenset()


def install_rule_hooks(app: Flask, state: AppState) -> None:
    """Register the before, after and teardown hooks that apply the app's rules.

    The hooks hold the state, not the app, which blinker's receiver must not
    keep alive.
    """
    settings, ruleset = state.settings, state.ruleset

    def apply(
        rules: tuple[Rule, ...], status: int | None, already: frozenset[str]
    ) -> frozenset[str]:
        """Mark what ``rules`` match, skipping events in ``already``; return
        the events marked by this request so far."""
        current = request._get_current_object()  # type: ignore[attr-defined]
        method, path = current.method, current.path
        marked = set(already)
        marks = []
        for rule in rules:
            if rule.event in marked or not rule.matches_request(method, path):
                continue
            if status is not None and not rule.matches_status(status):
                continue
            try:
                user_id = to_user_id(rule.event, rule.get_user())
            except Exception as error:
                logger.warning("Rule at %s marked nothing: %s", rule.origin, error)
                continue
            if user_id is None:
                continue
            marked.add(rule.event)
            hourly, unique = rule.track_hourly, rule.track_unique
            marks.append(
                Mark(
                    rule.event,
                    user_id,
                    datetime.now(timezone.utc),
                    settings.track_hourly if hourly is None else hourly,
                    settings.track_unique if unique is None else unique,
                )
            )
        if marks:
            submit_marks(current_app._get_current_object(), state, marks)  # type: ignore[attr-defined]
        return frozenset(marked)

    def guarded(
        rules: tuple[Rule, ...], status: int | None, already: frozenset[str]
    ) -> frozenset[str]:
        try:
            return apply(rules, status, already)
        except Exception:
            if settings.raise_errors:
                raise
            logger.exception(
                "YAML rules failed to mark %s %s", request.method, request.path
            )
            return already

    @app.before_request
    def bitmapist_rules_before() -> None:
        if not ruleset.checked_routes:
            ruleset.checked_routes = True
            for rule in ruleset.unmatched(app):
                logger.warning(
                    "Rule for %r at %s matches no route of the app.",
                    rule.event,
                    rule.origin,
                )
        before, after = ruleset.for_endpoint(request.endpoint)
        marked = guarded(before, None, _NOTHING) if before else _NOTHING
        if after:
            setattr(g, _PENDING, (after, marked))

    # request_finished comes after every after_request function, whenever it
    # was registered, so after rules see the status that is really sent. The
    # receiver holds no reference to the app, and blinker drops it when the
    # app (its sender) is collected, so a strong connection leaks nothing.
    def bitmapist_rules_after(
        sender: Flask, response: Response, **extra: object
    ) -> None:
        pending = g.pop(_PENDING, None)
        if pending:
            guarded(pending[0], response.status_code, pending[1])

    request_finished.connect(bitmapist_rules_after, app, weak=False)

    @app.teardown_request
    def bitmapist_rules_teardown(error: BaseException | None) -> None:
        # Nothing is finished when an exception propagates (testing mode,
        # PROPAGATE_EXCEPTIONS): the request still ended in a 500.
        pending = g.pop(_PENDING, None)
        if pending:
            guarded(pending[0], 500, pending[1])
