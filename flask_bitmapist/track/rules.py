"""YAML rules: validating them against the JSON Schema, and compiling them
into matchers that the middleware looks up by endpoint.

A rules file::

    user: current_user
    rules:
      - event: "project:created"
        endpoint: projects.create
        methods: [POST]
        status: [201]

``rules.schema.json`` beside this module is the contract (also at
``rules/schema.json`` in the repository). The loader validates with it, then
checks what a schema cannot know: that every id source exists in this app,
and that fnmatch reads every glob as it is written. Reading the files, as if
hostile, is :mod:`~flask_bitmapist.track.rulefile`'s job; telling which rules can
never fire on an app, :mod:`~flask_bitmapist.track.routecheck`'s.
"""

from __future__ import annotations

import fnmatch
import json
import re
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from flask import Flask

from ..store.layout import validate_event_name
from .idsources import IdSource, resolve_id_source
from .routecheck import RuleProblem, rule_problems
from .rulefile import (
    MAX_RULES_FILE_BYTES,
    RulesError,
    load_document,
    read_rules_file,
    rule_files,
)

__all__ = [
    "MAX_RULES_FILE_BYTES",
    "Rule",
    "RuleProblem",
    "RuleSet",
    "RulesError",
    "load_rules",
    "parse_rules",
    "read_rules_file",
    "rule_files",
    "rules_schema",
]

SCHEMA_PATH = Path(__file__).with_name("rules.schema.json")
DEFAULT_USER = "current_user"
DEFAULT_METHODS = frozenset({"GET"})
DEFAULT_STATUS = ("2xx", "3xx")
# Globs never reach these endpoints: a rule must name them exactly.
_GLOB_EXCLUDED = re.compile(r"^(static|.*\.static|bitmapist\..*)$")
_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "boolean": "true or false",
    "integer": "an integer",
}


@dataclass(frozen=True)
class Rule:
    """One compiled rule.

    :ivar origin: ``"file, line N"``, for messages about the rule.
    """

    event: str
    endpoint: str | None
    path: str | None
    methods: frozenset[str] | None
    status_codes: frozenset[int]
    status_classes: frozenset[int]
    when: Literal["before", "after"]
    user: str
    get_user: IdSource = field(compare=False, repr=False)
    track_hourly: bool | None
    track_unique: bool | None
    origin: str
    path_regex: re.Pattern[str] | None = field(compare=False, repr=False)
    #: Every status the rule fires for: its codes, and each code of its
    #: classes, so a request checks it with one set lookup (``status in
    #: rule.statuses``).
    statuses: frozenset[int] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        codes = set(self.status_codes)
        for status_class in self.status_classes:
            codes.update(range(status_class * 100, status_class * 100 + 100))
        object.__setattr__(self, "statuses", frozenset(codes))

    def matches_endpoint(self, endpoint: str | None) -> bool:
        """Whether the endpoint part of the rule lets ``endpoint`` through."""
        if self.endpoint is None:
            return True
        if endpoint is None:
            return False
        if self.endpoint == endpoint:
            return True
        return not _GLOB_EXCLUDED.match(endpoint) and fnmatch.fnmatchcase(
            endpoint, self.endpoint
        )

    def matches_request(self, method: str, path: str) -> bool:
        """Whether the method and path parts of the rule let the request through."""
        if self.methods is not None and method not in self.methods:
            return False
        return self.path_regex is None or self.path_regex.match(path) is not None


@cache
def rules_schema() -> dict[str, Any]:
    """The JSON Schema of rules files."""
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return schema


def load_rules(
    paths: Sequence[str], root_path: str, id_sources: Mapping[str, IdSource]
) -> list[Rule]:
    """Load, validate and compile every rules file that ``paths`` names.

    :raises RulesError: for the first problem found, naming file and line.
    :raises RuntimeError: when ``paths`` names files but jsonschema is missing.
    """
    files = rule_files(paths, root_path)
    if files:
        try:
            import jsonschema  # noqa: F401
        except ImportError:
            raise RuntimeError(
                "BITMAPIST_RULES needs jsonschema: "
                "pip install 'flask-bitmapist[rules]'."
            ) from None
    return [
        rule
        for path in files
        for rule in parse_rules(read_rules_file(path), str(path), id_sources)
    ]


def parse_rules(
    text: str, filename: str, id_sources: Mapping[str, IdSource]
) -> list[Rule]:
    """Validate and compile one rules document.

    Beyond the schema, the YAML must pass
    :func:`~flask_bitmapist.track.rulefile.load_document` (no aliases, bounded
    nesting, nodes and integers), and an endpoint or path glob may not have
    an unclosed ``[`` or a backwards range such as ``[z-a]``.

    :param text: the YAML text.
    :param filename: named in error messages.
    :param id_sources: the app's named id sources.
    :raises RulesError: ``"FILE, line N: reason."`` for the first problem.
    """
    document, root = load_document(text, filename)
    error = first_schema_error(document, root)
    if error is not None:
        line, reason = error
        raise RulesError(f"{filename}, line {line}: {reason}.")
    default_user = document.get("user", DEFAULT_USER)
    rules = []
    for index, raw in enumerate(document["rules"]):
        place = ["rules", index]
        try:
            validate_event_name(raw["event"])
        except ValueError as problem:
            line = _line_of(root, [*place, "event"])
            raise RulesError(
                f"{filename}, line {line}: {_where(place)}: {problem}"
            ) from None
        for key in ("endpoint", "path"):
            glob_problem = _glob_problem(raw[key]) if key in raw else None
            if glob_problem is not None:
                line = _line_of(root, [*place, key])
                raise RulesError(
                    f"{filename}, line {line}: {_where([*place, key])} "
                    f"{raw[key]!r} {glob_problem}."
                )
        user = raw.get("user", default_user)
        try:
            get_user = resolve_id_source(user, id_sources)
        except ValueError as problem:
            line = _line_of(root, [*place, "user"] if "user" in raw else ["user"])
            raise RulesError(
                f"{filename}, line {line}: {_where(place)}: {problem}."
            ) from None
        origin = f"{filename}, line {_line_of(root, place)}"
        rules.append(_compile(raw, user, get_user, origin))
    return rules


def _glob_problem(glob: str) -> str | None:
    """Where fnmatch reads ``glob`` otherwise than its author meant: an
    unclosed ``[``, which fnmatch takes literally, or a backwards range such
    as ``z-a``, which it drops (so ``[z-a]`` matches nothing). ``None`` when
    there is neither.

    It scans brackets exactly as :func:`fnmatch.translate` does: ``!`` after
    ``[`` negates, a ``]`` right after ``[`` or ``[!`` is a member, ``-`` is
    a range only between two members, and a ``-`` right after a range is a
    member.
    """
    start = glob.find("[")
    while start >= 0:
        first = start + 1
        if glob.startswith("!", first):
            first += 1
        end = glob.find("]", first + 1 if glob.startswith("]", first) else first)
        if end < 0:
            return (
                f"has a '[' at character {start + 1} that is never closed, "
                "which fnmatch would match literally; write [[] for a literal ["
            )
        members = glob[first:end]
        dash = members.find("-", 1)
        while 0 < dash < len(members) - 1:
            low, high = members[dash - 1], members[dash + 1]
            if low > high:
                return (
                    f"has the range {low}-{high}, which runs backwards, "
                    "so fnmatch drops it"
                )
            dash = members.find("-", dash + 3)
        start = glob.find("[", end + 1)
    return None


def _compile(raw: dict[str, Any], user: str, get_user: IdSource, origin: str) -> Rule:
    methods = raw.get("methods", sorted(DEFAULT_METHODS))
    statuses = raw.get("status", DEFAULT_STATUS)
    path = raw.get("path")
    return Rule(
        event=raw["event"],
        endpoint=raw.get("endpoint"),
        path=path,
        methods=None if methods == "*" else frozenset(methods),
        status_codes=frozenset(s for s in statuses if isinstance(s, int)),
        status_classes=frozenset(int(s[0]) for s in statuses if isinstance(s, str)),
        when=raw.get("when", "after"),
        user=user,
        get_user=get_user,
        track_hourly=raw.get("track_hourly"),
        track_unique=raw.get("track_unique"),
        origin=origin,
        path_regex=re.compile(fnmatch.translate(path)) if path else None,
    )


def first_schema_error(document: Any, root: yaml.Node | None) -> tuple[int, str] | None:
    """The first error of ``document`` against the schema, as ``(line, reason)``;
    ``None`` when it is valid.

    Errors are taken in the order of the file. A key missing from a mapping
    counts at the end of that mapping, so an unknown key inside it (``rulez``
    for ``rules``) is reported first.

    :param root: the composed YAML node of the document, for line numbers.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(rules_schema())
    found: list[tuple[int, int, str]] = []
    for error in validator.iter_errors(document):
        # Errors in the rules list come item by item, and no error inside an
        # item is earlier than the item's first line: once an item starts at
        # or after the best error so far, no later error can win. A file of
        # 200,000 bad items then costs two errors, not 200,000.
        item = list(error.absolute_path)[:2]
        if (
            found
            and len(item) == 2
            and item[0] == "rules"
            and _line_of(root, item) >= min(order for order, _, _ in found)
        ):
            break
        path, reason, whole_mapping = _describe(error)
        node = _node_at(
            root, path, key=error.validator in ("additionalProperties", "not")
        )
        line = node.start_mark.line + 1 if node else 1
        order = node.end_mark.line + 1 if node and whole_mapping else line
        found.append((order, line, reason))
    if not found:
        return None
    _, line, reason = min(found, key=lambda item: item[0])
    return line, reason


def _describe(error: Any) -> tuple[list[Any], str, bool]:
    """The instance path an error is about (ending in a key when it is about a
    key), its reason in words, and whether it is about a whole mapping
    (something missing) rather than one value."""
    path = list(error.absolute_path)
    where = _where(path)
    if error.validator in ("anyOf", "oneOf") and error.context:
        deepest = max(error.context, key=lambda inner: len(inner.absolute_path))
        if len(deepest.absolute_path) > len(path):
            return _describe(deepest)
    message = (
        error.schema.get("errorMessage") if isinstance(error.schema, dict) else None
    )
    if message and error.validator == "not":
        forbidden = error.validator_value["required"][0]
        return [*path, forbidden], f"{where} {message}", False
    if message:
        return path, f"{where} {message}", error.validator == "anyOf"
    if error.validator == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        unknown = sorted(str(key) for key in error.instance if key not in allowed)[0]
        return [*path, unknown], f"{where} has an unknown key {unknown!r}", False
    if error.validator == "required":
        missing = next(
            key for key in error.validator_value if key not in error.instance
        )
        return path, f"{where} is missing {missing!r}", True
    if error.validator == "type":
        kind = _TYPE_WORDS.get(error.validator_value, "valid")
        return (
            path,
            f"{where} must be {kind}, got {reprlib.repr(error.instance)}",
            False,
        )
    return path, f"{where}: {error.message}", False


def _where(path: Sequence[Any]) -> str:
    """``["rules", 2, "methods"]`` as ``"rules[2].methods"``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "the file"


def _node_at(
    root: yaml.Node | None, path: Sequence[Any], key: bool = False
) -> yaml.Node | None:
    """The YAML node at ``path``, or its nearest ancestor that exists; with
    ``key``, the key node of the last part rather than its value."""
    node = root
    for depth, part in enumerate(path, 1):
        if isinstance(node, yaml.MappingNode):
            child = next(
                (
                    key_node if key and depth == len(path) else value
                    for key_node, value in node.value
                    if isinstance(key_node, yaml.ScalarNode)
                    and key_node.value == str(part)
                ),
                None,
            )
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        else:
            child = None
        if child is None:
            break
        node = child
    return node


def _blueprint_of(endpoint: str | None) -> str | None:
    """The blueprint of every endpoint that ``endpoint`` (a name or a glob)
    matches: what comes before the last dot ahead of any glob character;
    ``None`` when that is nothing, or for no endpoint (a path rule)."""
    if endpoint is None:
        return None
    literal = re.split(r"[*?\[]", endpoint, maxsplit=1)[0]
    return literal.rpartition(".")[0] or None


def _line_of(root: yaml.Node | None, path: Sequence[Any]) -> int:
    """The 1-based line of the node at ``path`` (or of its nearest ancestor)."""
    node = _node_at(root, path)
    return node.start_mark.line + 1 if node is not None else 1


class RuleSet:
    """The app's compiled rules, looked up once per request by endpoint.

    Which rules an endpoint can fire is worked out on its first request and
    cached, so a request costs one dict lookup; an endpoint no rule names
    gets two empty tuples.
    """

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        #: The (before, after) rules of each endpoint seen so far, filled by
        #: :meth:`for_endpoint`: the request hooks read it first, a dict
        #: lookup instead of a Python call.
        self.by_endpoint: dict[
            str | None, tuple[tuple[Rule, ...], tuple[Rule, ...]]
        ] = {}

    def for_endpoint(
        self, endpoint: str | None
    ) -> tuple[tuple[Rule, ...], tuple[Rule, ...]]:
        """The (before, after) rules that may fire for ``endpoint``."""
        found = self.by_endpoint.get(endpoint)
        if found is None:
            candidates = [
                rule for rule in self.rules if rule.matches_endpoint(endpoint)
            ]
            found = self.by_endpoint[endpoint] = (
                tuple(rule for rule in candidates if rule.when == "before"),
                tuple(rule for rule in candidates if rule.when == "after"),
            )
        return found

    def after_rule_blueprints(self) -> frozenset[str | None]:
        """The blueprints whose requests after rules may fire for, by the
        names Flask keeps a request's hooks under (``request.blueprints``,
        which Flask reads off the endpoint: ``shop.cart.view`` is of
        ``shop.cart`` and ``shop``): ``{None}`` when some may fire for a
        request of any blueprint or none (a path rule, an endpoint without a
        dot, a glob that starts before one), none when there is no after
        rule. A blueprint within another of them is left out: the outer one
        covers its requests."""
        found = {
            _blueprint_of(rule.endpoint) for rule in self.rules if rule.when == "after"
        }
        if None in found:
            return frozenset({None})
        names = {name for name in found if name is not None}
        return frozenset(
            name
            for name in names
            if not any(name.startswith(f"{other}.") for other in names)
        )

    def problems(self, app: Flask) -> list[RuleProblem]:
        """Why rules cannot fire on ``app``, in the order of the rules: see
        :func:`~flask_bitmapist.track.routecheck.rule_problems`."""
        return rule_problems(self.rules, app)
