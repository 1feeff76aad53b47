"""Id sources: form and json, dotted paths, and the paths refused at load."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from flask import Flask, g
from rules_app import Account

from flask_bitmapist import RulesError
from flask_bitmapist.track.idsources import client_controlled, resolve_id_source
from flask_bitmapist.track.rules import parse_rules

ROOT = Path(__file__).parent.parent
SCHEMA = json.loads((ROOT / "rules" / "schema.json").read_text())


def rules_with_user(spec: str) -> str:
    return f'rules:\n  - event: "e"\n    endpoint: index\n    user: {spec}\n'


def test_paths_read_attributes_of_g_and_keys_of_the_json_body() -> None:
    app = Flask(__name__)
    body = {"user": {"id": 7, "name": "ada"}, "uid": 3}
    with app.test_request_context("/", method="POST", json=body):
        g.user = Account(5)
        read = {
            spec: resolve_id_source(spec, {})()
            for spec in (
                "json:uid",
                "json:user.id",
                "json:user.name.first",
                "json:nobody.id",
                "g:user.id",
                "g:user.missing",
                "g:nobody.id",
                "form:uid",
            )
        }
    assert read == {
        "json:uid": 3,
        "json:user.id": 7,
        "json:user.name.first": None,
        "json:nobody.id": None,
        "g:user.id": 5,
        "g:user.missing": None,
        "g:nobody.id": None,
        "form:uid": None,
    }


def test_form_reads_a_form_field() -> None:
    app = Flask(__name__)
    with app.test_request_context("/", method="POST", data={"uid": "12"}):
        assert resolve_id_source("form:uid", {})() == "12"
        assert resolve_id_source("json:uid", {})() is None


@pytest.mark.parametrize(
    ("spec", "line", "segment"),
    [
        ("g:user.__class__", 4, "__class__"),
        ("g:__dict__", 4, "__dict__"),
        ("current_user.__class__.__name__", 4, "__class__"),
        ("json:__proto__.id", 4, "__proto__"),
    ],
)
def test_a_path_part_starting_with_two_underscores_is_refused_at_load(
    spec: str, line: int, segment: str
) -> None:
    with pytest.raises(RulesError) as error:
        parse_rules(rules_with_user(spec), "rules.yaml", {})
    assert str(error.value) == (
        f"rules.yaml, line {line}: rules[0]: id source {spec!r}: path segment "
        f"{segment!r} must not start with __."
    )


def test_a_default_source_with_a_bad_path_names_the_line_of_user() -> None:
    text = 'user: g:user.__class__\nrules:\n  - event: "e"\n    endpoint: index\n'
    with pytest.raises(RulesError) as error:
        parse_rules(text, "rules.yaml", {})
    assert str(error.value) == (
        "rules.yaml, line 1: rules[0]: id source 'g:user.__class__': path segment "
        "'__class__' must not start with __."
    )


@pytest.mark.parametrize(
    ("spec", "segment"),
    [
        ("g:user.1d", "1d"),
        ("g:user..id", ""),
        ("json:user-id", "user-id"),
        ("json:user.", ""),
        ("current_user.", ""),
        ("current_user.account.id-x", "id-x"),
        ("g:usér.id", "usér"),
    ],
)
def test_a_path_part_that_is_not_an_identifier_is_refused(
    spec: str, segment: str
) -> None:
    with pytest.raises(ValueError) as error:
        resolve_id_source(spec, {})
    assert str(error.value) == (
        f"id source {spec!r}: path segment {segment!r} must be an identifier"
    )
    # The schema refuses it too, so an editor flags it and the loader says
    # which sources there are.
    with pytest.raises(RulesError, match=r"line 4: rules\[0\]\.user must be an id"):
        parse_rules(rules_with_user(spec), "rules.yaml", {})


NEW_SOURCES = [
    "form:uid",
    "form:user[id]",
    "json:uid",
    "json:user.id",
    "g:user.id",
    "g:user.account.owner_id",
    "current_user.id",
    "current_user.account.id",
]


@pytest.mark.parametrize("spec", NEW_SOURCES)
def test_new_sources_pass_the_schema_and_the_loader(spec: str) -> None:
    text = rules_with_user(spec)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    assert list(validator.iter_errors(yaml.safe_load(text))) == []
    (rule,) = parse_rules(text, "rules.yaml", {})
    assert rule.user == spec


@pytest.mark.parametrize(
    ("spec", "sent"),
    [
        ("view_arg:user_id", True),
        ("header:X-User-Id", True),
        ("query:uid", True),
        ("form:uid", True),
        ("json:user.id", True),
        ("current_user", False),
        ("current_user.account.id", False),
        ("session:user_id", False),
        ("g:user.id", False),
        ("account_owner", False),
    ],
)
def test_which_sources_the_client_controls(spec: str, sent: bool) -> None:
    assert client_controlled(spec) is sent
