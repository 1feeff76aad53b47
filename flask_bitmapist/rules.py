"""YAML rules: loading, validating against the JSON Schema, and compiling them
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
checks what a schema cannot know: that every id source exists in this app.
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

from .ids import validate_event_name
from .idsources import IdSource, resolve_id_source

SCHEMA_PATH = Path(__file__).with_name("rules.schema.json")
DEFAULT_USER = "current_user"
DEFAULT_METHODS = frozenset({"GET"})
DEFAULT_STATUS = ("2xx", "3xx")
RULE_FILE_SUFFIXES = (".yaml", ".yml")
# Globs never reach these endpoints: a rule must name them exactly.
_GLOB_EXCLUDED = re.compile(r"^(static|.*\.static|bitmapist\..*)$")
_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "boolean": "true or false",
    "integer": "an integer",
}


class RulesError(ValueError):
    """A rules file cannot be used; the message names the file, line and reason."""


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

    def matches_status(self, status: int) -> bool:
        """Whether the rule fires for a response with ``status``."""
        return status in self.status_codes or status // 100 in self.status_classes


@cache
def rules_schema() -> dict[str, Any]:
    """The JSON Schema of rules files."""
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return schema


def rule_files(paths: Sequence[str], root_path: str) -> list[Path]:
    """The files that ``BITMAPIST_RULES`` names: each path is a file, or a folder
    whose ``*.yaml`` and ``*.yml`` files are taken in name order.

    :raises RulesError: for a path that does not exist.
    """
    files = []
    for name in paths:
        path = Path(root_path, name)
        if path.is_dir():
            files.extend(
                sorted(p for p in path.iterdir() if p.suffix in RULE_FILE_SUFFIXES)
            )
        elif path.is_file():
            files.append(path)
        else:
            raise RulesError(
                f"BITMAPIST_RULES names {str(path)!r}, which does not exist."
            )
    return files


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
        for rule in parse_rules(path.read_text(encoding="utf-8"), str(path), id_sources)
    ]


def parse_rules(
    text: str, filename: str, id_sources: Mapping[str, IdSource]
) -> list[Rule]:
    """Validate and compile one rules document.

    :param text: the YAML text.
    :param filename: named in error messages.
    :param id_sources: the app's named id sources.
    :raises RulesError: ``"FILE, line N: reason."`` for the first problem.
    """
    document, root = _load_yaml(text, filename)
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


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that rejects a key given twice in one mapping."""

    def construct_mapping(
        self, node: yaml.MappingNode, deep: bool = False
    ) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str, filename: str) -> tuple[Any, yaml.Node | None]:
    loader = _UniqueKeyLoader(text)
    try:
        root = loader.get_single_node()
        document = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else 1
        problem = error.problem or error.context or "cannot be parsed"
        raise RulesError(f"{filename}, line {line}: invalid YAML: {problem}.") from None
    finally:
        loader.dispose()
    if document is None:
        raise RulesError(
            f"{filename}, line 1: the file is empty; it needs a 'rules' list."
        )
    return document, root


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
    found = []
    for error in validator.iter_errors(document):
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
        self._by_endpoint: dict[
            str | None, tuple[tuple[Rule, ...], tuple[Rule, ...]]
        ] = {}
        self.checked_routes = False

    def for_endpoint(
        self, endpoint: str | None
    ) -> tuple[tuple[Rule, ...], tuple[Rule, ...]]:
        """The (before, after) rules that may fire for ``endpoint``."""
        found = self._by_endpoint.get(endpoint)
        if found is None:
            candidates = [
                rule for rule in self.rules if rule.matches_endpoint(endpoint)
            ]
            found = self._by_endpoint[endpoint] = (
                tuple(rule for rule in candidates if rule.when == "before"),
                tuple(rule for rule in candidates if rule.when == "after"),
            )
        return found

    def unmatched(self, app: Flask) -> list[Rule]:
        """The rules whose endpoint or path matches no route of ``app``.

        A path glob matches a route when it matches the route's pattern or a
        sample URL of it (each ``<converter:name>`` taken as ``1``).
        """
        endpoints = list(app.view_functions)
        samples = [
            candidate
            for url_rule in app.url_map.iter_rules()
            for candidate in (url_rule.rule, re.sub(r"<[^>]+>", "1", url_rule.rule))
        ]
        return [
            rule
            for rule in self.rules
            if (
                rule.endpoint is not None
                and not any(rule.matches_endpoint(e) for e in endpoints)
            )
            or (
                rule.path_regex is not None
                and not any(rule.path_regex.match(sample) for sample in samples)
            )
        ]
