"""The request hooks that apply YAML rules: before rules as a request arrives,
after rules once its status is known (a view that raised counts as 500)."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from flask import Flask, Response, g, request

from .config import Settings
from .ids import to_user_id
from .rules import Rule, RuleSet
from .writer import Mark, Writer

logger = logging.getLogger("flask_bitmapist")

# Per-request state lives on flask.g under these names, and only for requests
# that some rule may mark.
_PENDING_AFTER = "_bitmapist_after_rules"
_MARKED_EVENTS = "_bitmapist_marked_events"


def install_rule_hooks(
    app: Flask, settings: Settings, writer: Writer, ruleset: RuleSet
) -> None:
    """Register the before, after and teardown hooks that apply ``ruleset``."""

    def apply(rules: tuple[Rule, ...], status: int | None) -> None:
        method, path = request.method, request.path
        marked: set[str] = g.setdefault(_MARKED_EVENTS, set())
        now = datetime.now(timezone.utc)
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
            marks.append(
                Mark(
                    rule.event,
                    user_id,
                    now,
                    settings.track_hourly
                    if rule.track_hourly is None
                    else rule.track_hourly,
                    settings.track_unique
                    if rule.track_unique is None
                    else rule.track_unique,
                )
            )
        if marks:
            writer.submit_many(marks)

    def guarded(rules: tuple[Rule, ...], status: int | None) -> None:
        try:
            apply(rules, status)
        except Exception:
            if settings.raise_errors:
                raise
            logger.exception(
                "YAML rules failed to mark %s %s", request.method, request.path
            )

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
        if after:
            setattr(g, _PENDING_AFTER, after)
        if before:
            guarded(before, None)

    @app.after_request
    def bitmapist_rules_after(response: Response) -> Response:
        after = g.pop(_PENDING_AFTER, None)
        if after:
            guarded(after, response.status_code)
        return response

    @app.teardown_request
    def bitmapist_rules_teardown(error: BaseException | None) -> None:
        # after_request does not run when an exception propagates (testing
        # mode, PROPAGATE_EXCEPTIONS): the request still ended in a 500.
        after = g.pop(_PENDING_AFTER, None)
        if after:
            guarded(after, 500)
