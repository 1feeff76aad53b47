"""Why a rule cannot fire on an app as it is: its endpoint or path matches no
route, its endpoint has a URL rule but no view (so requests go elsewhere), or
its methods never meet those of the routes it matches.

``flask bitmapist rules check`` lists these problems, and the rules'
request hook logs them at the first request.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask
from werkzeug.exceptions import HTTPException
from werkzeug.routing import AnyConverter, BaseConverter, MapAdapter, RequestRedirect
from werkzeug.routing import Rule as UrlRule
from werkzeug.routing.converters import NumberConverter, UUIDConverter

if TYPE_CHECKING:
    from .rules import Rule

# Methods Flask adds to routes by itself, so a list of what a route accepts
# names them only when nothing else is left.
_AUTOMATIC_METHODS = frozenset({"HEAD", "OPTIONS"})


def rule_problems(rules: Sequence[Rule], app: Flask) -> list[RuleProblem]:
    """Why rules cannot fire on ``app``, in the order of the rules: a rule
    whose endpoint or path matches no route; whose endpoint has a URL
    rule but no view, so requests to it reach another endpoint (or
    fail); or whose methods never meet those of the routes it matches.

    A path glob matches a route when it matches the route's pattern or a
    sample URL of it (each converter given a value it accepts). HEAD and
    OPTIONS, which Flask adds to routes itself, count only for rules that
    ask for them.
    """
    routes = list(app.url_map.iter_rules())
    adapter = app.url_map.bind(app.config.get("SERVER_NAME") or "localhost")
    found = []
    for rule in rules:
        problem = _route_problem(rule, routes, app.view_functions, adapter)
        if problem is not None:
            found.append(
                RuleProblem(rule, f"{rule.origin}: rule {rule.event!r} {problem}.")
            )
    return found


@dataclass(frozen=True)
class RuleProblem:
    """A rule that cannot fire on the app as it is.

    :ivar message: one sentence that starts with the rule's origin and event,
        such as ``"rules.yaml, line 5: rule 'post:deleted' has methods [GET],
        but endpoint 'blog.delete' accepts only POST."``
    """

    rule: Rule
    message: str


def _route_problem(
    rule: Rule,
    routes: Sequence[UrlRule],
    views: Mapping[str, object],
    adapter: MapAdapter,
) -> str | None:
    """Why ``rule`` cannot fire on ``routes``, without the rule's origin."""
    matched = [route for route in routes if _rule_meets_route(rule, route)]
    if not matched:
        target = " and ".join(
            f"{name} {value!r}"
            for name, value in (("endpoint", rule.endpoint), ("path", rule.path))
            if value is not None
        )
        return f"({target}) matches no route"
    served = [route for route in matched if route.endpoint in views]
    if not served:
        return _no_view(rule, matched, adapter)
    if rule.methods is None or any(
        route.methods is None or rule.methods & route.methods for route in served
    ):
        return None
    accepted = set().union(*(route.methods or () for route in served))
    shown = accepted - _AUTOMATIC_METHODS or accepted
    endpoints = sorted({str(route.endpoint) for route in served})
    verb = "accepts" if len(endpoints) == 1 else "accept"
    return (
        f"has methods [{', '.join(sorted(rule.methods))}], but "
        f"{_endpoints(endpoints)} {verb} only {_listed(sorted(shown))}"
    )


def _rule_meets_route(rule: Rule, route: UrlRule) -> bool:
    if not rule.matches_endpoint(str(route.endpoint)):
        return False
    return (
        rule.path_regex is None
        or rule.path_regex.match(route.rule) is not None
        or rule.path_regex.match(_sample_url(route)) is not None
    )


def _no_view(rule: Rule, matched: Sequence[UrlRule], adapter: MapAdapter) -> str:
    """The routes a rule matches have no view: where requests to them go."""
    endpoints = sorted({str(route.endpoint) for route in matched})
    urls = [route.rule for route in matched]
    what = (
        f"a URL rule ({urls[0]})" if len(urls) == 1 else f"URL rules ({_listed(urls)})"
    )
    outcomes = []
    for route in matched:
        url, method = _sample_url(route), _probe_method(rule, route)
        outcomes.append(
            f"{method} requests to {url} {_outcome(route, url, method, adapter)}"
        )
    if len(endpoints) == 1:
        subject = f"names endpoint {endpoints[0]!r}, which has"
    else:
        names = _listed([repr(name) for name in endpoints])
        subject = f"matches only endpoints {names}, which have"
    return f"{subject} {what} but no view; {', and '.join(outcomes)}"


def _probe_method(rule: Rule, route: UrlRule) -> str:
    """The method to try ``route`` with: the first that the rule asks for and
    the route accepts, else the first the rule asks for; for a rule with any
    method, the first the route accepts (HEAD and OPTIONS only if alone)."""
    accepted = route.methods or frozenset({"GET"})
    asked = sorted(
        rule.methods
        if rule.methods is not None
        else accepted - _AUTOMATIC_METHODS or accepted
    )
    return next((method for method in asked if method in accepted), asked[0])


def _outcome(route: UrlRule, url: str, method: str, adapter: MapAdapter) -> str:
    try:
        reached, _ = adapter.match(url, method, return_rule=True)
    except RequestRedirect as redirect:
        return f"are redirected to {redirect.new_url}"
    except HTTPException as error:
        return f"get {error.code} {error.name}"
    if reached is route:
        return "reach it and fail, as it has no view"
    return f"reach {reached.endpoint!r}"


def _sample_url(route: UrlRule) -> str:
    """A URL that ``route`` matches: its pattern with each variable given a
    value that the variable's converter accepts."""
    # Werkzeug keeps the converter of each variable on the rule.
    converters: Mapping[str, BaseConverter] = route._converters
    return re.sub(
        r"<(?:[^>]*:)?(\w+)>",
        lambda variable: _sample_value(converters.get(variable[1])),
        route.rule,
    )


def _sample_value(converter: BaseConverter | None) -> str:
    if isinstance(converter, AnyConverter):
        return min(converter.items)
    if isinstance(converter, UUIDConverter):
        return str(uuid.UUID(int=1))
    if isinstance(converter, NumberConverter):
        value = 1
        if converter.min is not None:
            value = max(value, converter.min)
        if converter.max is not None:
            value = min(value, converter.max)
        return converter.to_url(value)
    # The string and path converters take anything; a custom converter may
    # not take this, and then the sample matches no route.
    return "1"


def _endpoints(names: Sequence[str]) -> str:
    if len(names) == 1:
        return f"endpoint {names[0]!r}"
    if len(names) > 3:
        return f"the {len(names)} endpoints it matches"
    return f"endpoints {_listed([repr(name) for name in names])}"


def _listed(items: Sequence[str]) -> str:
    """``["a", "b", "c"]`` as ``"a, b and c"``."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"
