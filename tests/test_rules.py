"""YAML rules: validation (loader and schema agree), loading, and what the
middleware marks on a realistic app."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import jsonschema
import pytest
import redis
import yaml
from flask import Blueprint, Flask
from keys import day_key
from rules_app import create_app

from flask_bitmapist import FlaskBitmapist, RulesError
from flask_bitmapist.track.rules import parse_rules

HERE = Path(__file__).parent
ROOT = HERE.parent
MALFORMED = HERE / "rules" / "malformed"
VALID_APP_RULES = [
    str(HERE / "rules" / "valid" / "app"),
    str(HERE / "rules" / "valid" / "app" / "more"),
]
SCHEMA = json.loads((ROOT / "rules" / "schema.json").read_text())
SOURCES = {"account_owner": lambda: None}

# file: (line, reason, what the JSON Schema alone says: "invalid", "valid"
# when only the app can know, or "not YAML")
CORPUS = {
    "yaml_syntax.yaml": (4, "invalid YAML: expected ',' or ']', but got ':'", "not YAML"),
    "duplicate_key.yaml": (4, "invalid YAML: duplicate key 'endpoint'", "not YAML"),
    "empty.yaml": (1, "the file is empty; it needs a 'rules' list", "invalid"),
    "not_a_mapping.yaml": (1, "the file must be a mapping, got [{'endpoint': 'index', 'event': 'home:viewed'}]", "invalid"),
    "missing_rules.yaml": (1, "the file is missing 'rules'", "invalid"),
    "unknown_top_level_key.yaml": (2, "the file has an unknown key 'rulez'", "invalid"),
    "rules_not_a_list.yaml": (2, "rules must be a list, got {'endpoint': 'index', 'event': 'home:viewed'}", "invalid"),
    "unknown_key.yaml": (4, "rules[0] has an unknown key 'methds'", "invalid"),
    "missing_event.yaml": (4, "rules[1] is missing 'event'", "invalid"),
    "event_not_a_string.yaml": (2, "rules[0].event must be an event name: 1 to 200 characters, no whitespace or control characters, not bitop nor starting with bitop_", "invalid"),
    "event_with_whitespace.yaml": (2, "rules[0].event must be an event name: 1 to 200 characters, no whitespace or control characters, not bitop nor starting with bitop_", "invalid"),
    "event_reserved_prefix.yaml": (2, "rules[0].event must be an event name: 1 to 200 characters, no whitespace or control characters, not bitop nor starting with bitop_", "invalid"),
    "no_endpoint_or_path.yaml": (2, "rules[0] needs an endpoint or a path", "invalid"),
    "path_without_slash.yaml": (3, "rules[0].path must be a glob on the request path, starting with /", "invalid"),
    "unknown_method.yaml": (4, "rules[0].methods[1] must be an HTTP method in capitals: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE or CONNECT", "invalid"),
    "methods_not_a_list.yaml": (4, 'rules[0].methods must be "*" or a non-empty list of HTTP methods', "invalid"),
    "empty_methods.yaml": (4, 'rules[0].methods must be "*" or a non-empty list of HTTP methods', "invalid"),
    "bad_status_pattern.yaml": (5, 'rules[0].status[1] must be a status code from 100 to 599 or a class such as "2xx"', "invalid"),
    "status_out_of_range.yaml": (4, 'rules[0].status[0] must be a status code from 100 to 599 or a class such as "2xx"', "invalid"),
    "status_with_before.yaml": (5, "rules[0] cannot have a status with when: before, which marks before there is a response", "invalid"),
    "bad_when.yaml": (4, "rules[0].when must be before or after", "invalid"),
    "track_hourly_not_bool.yaml": (4, "rules[0].track_hourly must be true or false, got 'yes'", "invalid"),
    "unknown_source_prefix.yaml": (4, "rules[0].user must be an id source: current_user, session:KEY, g:NAME, view_arg:NAME, header:NAME, query:NAME, form:FIELD, json:KEY or the name of a source the app registers; current_user, g: and json: take a dotted path of identifiers, as in g:user.id", "invalid"),
    "unregistered_named_source.yaml": (7, "rules[1]: unknown id source 'account_owner' (the app registers these named sources: none)", "valid"),
    "alias.yaml": (5, "rules files cannot use YAML aliases (*home)", "valid"),
    "too_deep.yaml": (4, "the YAML nests deeper than 32 levels", "invalid"),
    "glob_unclosed_bracket.yaml": (3, "rules[0].endpoint 'admin.[a-' has a '[' at character 7 that is never closed, which fnmatch would match literally; write [[] for a literal [", "valid"),
    "glob_backwards_range.yaml": (3, "rules[0].path '/reports/[z-a]*' has the range z-a, which runs backwards, so fnmatch drops it", "valid"),
}  # fmt: skip


def test_the_corpus_is_complete() -> None:
    assert sorted(path.name for path in MALFORMED.glob("*.yaml")) == sorted(CORPUS)
    assert len(CORPUS) >= 15


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_malformed_files_name_the_file_line_and_reason(name: str) -> None:
    line, reason, _ = CORPUS[name]
    path = MALFORMED / name
    with pytest.raises(RulesError) as error:
        parse_rules(path.read_text(), str(path), {})
    assert str(error.value) == f"{path}, line {line}: {reason}."


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_the_schema_agrees_on_malformed_files(name: str) -> None:
    verdict = CORPUS[name][2]
    text = (MALFORMED / name).read_text()
    if verdict == "not YAML":
        with pytest.raises(yaml.YAMLError):
            yaml.load(text, Loader=_StrictLoader)
        return
    errors = list(
        jsonschema.Draft202012Validator(SCHEMA).iter_errors(yaml.safe_load(text))
    )
    assert bool(errors) == (verdict == "invalid")


class _StrictLoader(yaml.SafeLoader):
    """What any YAML tool rejects: syntax errors and duplicate keys."""

    def construct_mapping(
        self, node: yaml.MappingNode, deep: bool = False
    ) -> dict[Any, Any]:
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        if len(keys) != len(set(keys)):
            raise yaml.constructor.ConstructorError(
                None, None, "duplicate key", node.start_mark
            )
        return super().construct_mapping(node, deep=deep)


VALID_FILES = [
    ROOT / "rules" / "example.yaml",
    *sorted((HERE / "rules" / "valid").rglob("*.y*ml")),
]


@pytest.mark.parametrize("path", VALID_FILES, ids=lambda path: path.name)
def test_valid_files_pass_the_loader_and_the_schema(path: Path) -> None:
    text = path.read_text()
    assert (
        list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(yaml.safe_load(text)))
        == []
    )
    assert len(parse_rules(text, str(path), SOURCES)) == len(
        yaml.safe_load(text)["rules"]
    )


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_the_example_compiles_every_key() -> None:
    rules = parse_rules(
        (ROOT / "rules" / "example.yaml").read_text(), "example.yaml", SOURCES
    )
    by_event = {rule.event: rule for rule in rules}
    assert by_event["home:viewed"].methods == frozenset({"GET"})
    assert by_event["home:viewed"].status_classes == frozenset({2, 3})
    assert by_event["project:created"].status_codes == frozenset({201})
    assert by_event["project:rejected"].status_classes == frozenset({4})
    assert by_event["project:rejected"].status_codes == frozenset({500})
    assert by_event["api:called"].methods is None
    assert by_event["api:called"].user == "header:X-User-Id"
    assert by_event["checkout:started"].when == "before"
    assert (
        by_event["checkout:started"].track_hourly,
        by_event["checkout:started"].track_unique,
    ) == (True, False)
    assert by_event["team:viewed"].user == "account_owner"
    assert by_event["home:viewed"].user == "current_user"
    assert by_event["home:viewed"].origin == "example.yaml, line 21"


# --- loading through init_app


@pytest.fixture
def make_rules_app(redis_url: str, tmp_path: Path) -> Callable[..., Flask]:
    def factory(rules: Any = VALID_APP_RULES, **config: Any) -> Flask:
        return create_app(redis_url, str(tmp_path / "instance"), rules, **config)

    return factory


def test_a_malformed_file_stops_the_app_from_starting(
    make_rules_app: Callable[..., Flask],
) -> None:
    path = MALFORMED / "unknown_key.yaml"
    with pytest.raises(
        RulesError,
        match=r"unknown_key\.yaml, line 4: rules\[0\] has an unknown key 'methds'\.",
    ):
        make_rules_app(str(path))


def test_paths_are_relative_to_the_root_path_and_can_be_a_list(
    make_rules_app: Callable[..., Flask],
) -> None:
    app = make_rules_app(
        ["../tests/rules/valid/app/main.yaml", "../rules/example.yaml"]
    )
    events = [
        rule.event for rule in app.extensions["bitmapist"].state(app).ruleset.rules
    ]
    assert events[:2] == ["home:viewed", "project:created"]
    assert "team:viewed" in events


def test_folders_load_their_yaml_and_yml_files_not_subfolders(
    make_rules_app: Callable[..., Flask],
) -> None:
    app = make_rules_app()
    origins = [
        rule.origin for rule in app.extensions["bitmapist"].state(app).ruleset.rules
    ]
    assert origins[0].endswith("app/main.yaml, line 3")
    assert origins[9].endswith("app/more/api.yml, line 2")
    assert len(origins) == 15
    only_top = make_rules_app(VALID_APP_RULES[0])
    assert len(only_top.extensions["bitmapist"].state(only_top).ruleset.rules) == 9


def test_a_missing_path_is_an_error(make_rules_app: Callable[..., Flask]) -> None:
    with pytest.raises(
        RulesError,
        match=r"BITMAPIST_RULES names '.*nowhere\.yaml', which does not exist\.",
    ):
        make_rules_app("nowhere.yaml")


def test_the_id_source_decorator_registers_before_init_app(
    redis_url: str, tmp_path: Path
) -> None:
    from flask_bitmapist import FlaskBitmapist

    rules = tmp_path / "rules.yaml"
    rules.write_text(
        'rules:\n  - event: "team:viewed"\n    endpoint: index\n    user: team_lead\n'
    )
    bitmapist = FlaskBitmapist()

    @bitmapist.id_source("team_lead")
    def team_lead() -> int:
        return 77

    app = Flask("decorated", instance_path=str(tmp_path))
    app.config.update(
        TESTING=True, BITMAPIST_REDIS_URL=redis_url, BITMAPIST_RULES=str(rules)
    )
    app.add_url_rule("/", "index", lambda: "home")
    bitmapist.init_app(app)
    app.test_client().get("/")
    assert redis.Redis.from_url(redis_url).getbit(day_key("team:viewed"), 77) == 1
    with pytest.raises(ValueError, match="must be an identifier, got 'team lead'"):
        bitmapist.id_source("team lead")


# --- globs that fnmatch would read otherwise than they are written


@pytest.mark.parametrize(
    "glob",
    ["[[]x", "[]]x", "[!]]x", "[a-z]*", "[-a]", "[a-]", "[a-c-a]", "x]", "*.[!_]*"],
)
def test_globs_that_fnmatch_reads_as_written_are_accepted(glob: str) -> None:
    text = f"rules:\n  - event: e\n    endpoint: '{glob}'\n    path: '/{glob}'\n"
    [rule] = parse_rules(text, "rules.yaml", {})
    assert (rule.endpoint, rule.path) == (glob, f"/{glob}")


@pytest.mark.parametrize(
    ("key", "glob", "problem"),
    [
        ("endpoint", "[a-", "has a '[' at character 1 that is never closed, which fnmatch would match literally; write [[] for a literal ["),
        ("path", "/x/[a-", "has a '[' at character 4 that is never closed, which fnmatch would match literally; write [[] for a literal ["),
        ("path", "/[ok]/[!x", "has a '[' at character 7 that is never closed, which fnmatch would match literally; write [[] for a literal ["),
        ("endpoint", "[z-a]", "has the range z-a, which runs backwards, so fnmatch drops it"),
        ("endpoint", "x.[!z-a]", "has the range z-a, which runs backwards, so fnmatch drops it"),
        ("path", "/[a-cz-x]", "has the range z-x, which runs backwards, so fnmatch drops it"),
    ],
)  # fmt: skip
def test_an_unclosed_bracket_or_a_backwards_range_is_refused(
    key: str, glob: str, problem: str
) -> None:
    other = "path: /x" if key == "endpoint" else "endpoint: x"
    text = f"rules:\n  - event: e\n    {other}\n    {key}: '{glob}'\n"
    with pytest.raises(RulesError) as error:
        parse_rules(text, "rules.yaml", {})
    assert str(error.value) == f"rules.yaml, line 4: rules[0].{key} {glob!r} {problem}."


# --- rules that cannot fire on the app's routes


def create_flaskr(redis_url: str, root: Path, rules: Path) -> Flask:
    """Flask's tutorial app in small: the blog blueprint serves / as
    blog.index, and the app adds / again as endpoint index without a view."""
    app = Flask("flaskr", root_path=str(root))
    app.config.update(
        TESTING=True, BITMAPIST_REDIS_URL=redis_url, BITMAPIST_RULES=str(rules)
    )
    blog = Blueprint("blog", "flaskr")

    @blog.route("/")
    def index() -> str:
        return "posts"

    @blog.route("/create", methods=("GET", "POST"))
    def create() -> str:
        return "created"

    @blog.route("/<int:id>/update", methods=("GET", "POST"))
    def update(id: int) -> str:
        return "updated"

    @blog.route("/<int:id>/delete", methods=("POST",))
    def delete(id: int) -> str:
        return "deleted"

    app.register_blueprint(blog)
    app.add_url_rule("/", endpoint="index")
    app.add_url_rule("/about", endpoint="about")

    @app.put("/api/posts/<uuid:post_id>")
    def put_post(post_id: UUID) -> str:
        return "stored"

    FlaskBitmapist(app)
    return app


FLASKR_RULES = """\
user: header:X-User-Id
rules:
  - event: "home:viewed"
    endpoint: index
  - event: "post:deleted"
    endpoint: blog.delete
  - event: "post:edited"
    endpoint: "blog.*"
    methods: [PUT]
  - event: "post:patched"
    endpoint: "blog.[cu]*"
    methods: [PATCH, DELETE]
  - event: "about:viewed"
    endpoint: about
  - event: "api:read"
    path: "/api/posts/*-*"
  - event: "never:seen"
    endpoint: nowhere
    path: "/nowhere/*"
"""
# Each meets its routes: "*" meets anything, HEAD and OPTIONS are added by
# Flask, and the path glob matches the UUID route's sample URL.
FINE_RULES = """\
  - event: "post:created"
    endpoint: blog.create
    methods: [POST]
  - event: "post:any"
    endpoint: blog.delete
    methods: "*"
  - event: "posts:probed"
    endpoint: blog.index
    methods: [HEAD]
  - event: "post:options"
    endpoint: blog.delete
    methods: [OPTIONS]
  - event: "api:written"
    path: "/api/posts/*-*"
    methods: [PUT]
"""


@pytest.fixture
def flaskr_rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(FLASKR_RULES + FINE_RULES)
    return path


def expected_problems(path: Path) -> list[str]:
    return [
        f"{path}, line 3: rule 'home:viewed' names endpoint 'index', which has a URL rule (/) but no view; GET requests to / reach 'blog.index'.",
        f"{path}, line 5: rule 'post:deleted' has methods [GET], but endpoint 'blog.delete' accepts only POST.",
        f"{path}, line 7: rule 'post:edited' has methods [PUT], but the 4 endpoints it matches accept only GET and POST.",
        f"{path}, line 10: rule 'post:patched' has methods [DELETE, PATCH], but endpoints 'blog.create' and 'blog.update' accept only GET and POST.",
        f"{path}, line 13: rule 'about:viewed' names endpoint 'about', which has a URL rule (/about) but no view; GET requests to /about reach it and fail, as it has no view.",
        f"{path}, line 15: rule 'api:read' has methods [GET], but endpoint 'put_post' accepts only PUT.",
        f"{path}, line 17: rule 'never:seen' (endpoint 'nowhere' and path '/nowhere/*') matches no route.",
    ]  # fmt: skip


def test_problems_name_each_rule_that_cannot_fire_and_why(
    redis_url: str, tmp_path: Path, flaskr_rules: Path
) -> None:
    app = create_flaskr(redis_url, tmp_path, flaskr_rules)
    problems = app.extensions["bitmapist"].state(app).ruleset.problems(app)
    assert [problem.message for problem in problems] == expected_problems(flaskr_rules)
    assert [problem.rule.event for problem in problems][:2] == [
        "home:viewed",
        "post:deleted",
    ]


def test_rules_check_prints_every_problem_and_exits_1(
    redis_url: str, tmp_path: Path, flaskr_rules: Path
) -> None:
    app = create_flaskr(redis_url, tmp_path, flaskr_rules)
    result = app.test_cli_runner().invoke(args=["bitmapist", "rules", "check"])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.splitlines() == expected_problems(flaskr_rules)


def test_rules_check_exits_0_when_every_rule_can_fire(
    redis_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "fine.yaml"
    path.write_text("user: header:X-User-Id\nrules:\n" + FINE_RULES)
    app = create_flaskr(redis_url, tmp_path, path)
    result = app.test_cli_runner().invoke(args=["bitmapist", "rules", "check"])
    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        "All 5 rules can fire on the app's routes.\n",
        "",
    )


def test_the_first_request_logs_each_problem_once(
    redis_url: str, tmp_path: Path, flaskr_rules: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_flaskr(redis_url, tmp_path, flaskr_rules)
    web = app.test_client()
    with caplog.at_level(logging.WARNING, logger="flask_bitmapist"):
        assert web.get("/").text == "posts"
        assert web.post("/1/delete").text == "deleted"
    warnings = [
        record.getMessage()
        for record in caplog.records
        if record.name == "flask_bitmapist" and record.levelno == logging.WARNING
    ]
    assert warnings == expected_problems(flaskr_rules)
