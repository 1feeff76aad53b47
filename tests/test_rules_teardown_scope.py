"""The rules' teardown hook is installed for the requests after rules may
fire for: under the blueprints of their endpoints when every after rule
names endpoints of a blueprint, else for every request. A failed request
in scope still counts as 500, once; a request out of scope runs no hook of
the extension's but the after hook."""

from __future__ import annotations

import sys
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import redis
from flask import Blueprint, Flask
from keys import users_by_event
from rules_app import page_app

from flask_bitmapist import FlaskBitmapist
from flask_bitmapist.track.rules import RuleSet, parse_rules


def scopes_of(text: str) -> frozenset[str | None]:
    return RuleSet(parse_rules(text, "scope.yaml", {})).after_rule_blueprints()


def after_rules(*endpoints: str) -> str:
    return "rules:\n" + "".join(
        f'  - event: "e{number}"\n    endpoint: "{endpoint}"\n'
        for number, endpoint in enumerate(endpoints)
    )


@pytest.mark.parametrize(
    ("endpoints", "blueprints"),
    [
        (["admin.page"], {"admin"}),
        (["admin.page", "admin.other"], {"admin"}),
        (["admin.*"], {"admin"}),
        (["admin.pa?e", "shop.cart.view"], {"admin", "shop.cart"}),
        # A blueprint within another is covered by it.
        (["shop.cart.view", "shop.*"], {"shop"}),
        (["shop.cart.*", "shop.cartoon.view"], {"shop.cart", "shop.cartoon"}),
        (["shop.c*.view"], {"shop"}),
        # An endpoint of the app, or a glob that may reach one: every request.
        (["page"], {None}),
        (["admin.page", "page"], {None}),
        (["*page"], {None}),
        (["adm*.page"], {None}),
        (["[a].page"], {None}),
    ],
)
def test_the_blueprints_after_rules_may_fire_for(
    endpoints: list[str], blueprints: set[str | None]
) -> None:
    assert scopes_of(after_rules(*endpoints)) == blueprints


def test_a_path_rule_fires_for_every_request_and_before_rules_for_none() -> None:
    path_rule = 'rules:\n  - event: "x"\n    path: "/admin/*"\n'
    assert scopes_of(path_rule) == {None}
    before = 'rules:\n  - event: "x"\n    endpoint: "page"\n    when: before\n'
    assert scopes_of(before) == frozenset()


RULES = """
rules:
  - event: "page:ok"
    endpoint: "admin.*"
    user: query:uid
    status: [200]
  - event: "page:failed"
    endpoint: "admin.*"
    user: query:uid
    status: [500]
"""


@pytest.fixture
def admin_app(redis_url: str, tmp_path: Path) -> Flask:
    """``page_app`` with after rules on the ``admin`` blueprint's endpoints
    (and those of ``admin.deep``, within it), testing: errors propagate."""
    app = page_app(redis_url, tmp_path, RULES, "scoped")
    admin = Blueprint("admin", __name__, url_prefix="/admin")
    deep = Blueprint("deep", __name__, url_prefix="/deep")

    @admin.get("/page")
    def page() -> str:
        raise RuntimeError("the admin page failed")

    @deep.get("/page")
    def deep_page() -> str:
        return "deep"

    admin.register_blueprint(deep)
    FlaskBitmapist(app)
    app.register_blueprint(admin)
    return app


def test_the_teardown_hook_is_the_blueprints_only(admin_app: Flask) -> None:
    hooks = {
        name: len(functions)
        for name, functions in admin_app.teardown_request_funcs.items()
        if functions
    }
    assert hooks == {"admin": 1}
    assert len(admin_app.after_request_funcs[None]) == 1


def test_a_failed_request_in_scope_counts_as_500_once(
    admin_app: Flask, client: redis.Redis
) -> None:
    web = admin_app.test_client()
    with pytest.raises(RuntimeError, match="the admin page failed"):
        web.get("/admin/page?uid=1")
    assert web.get("/admin/deep/page?uid=2").status_code == 200
    assert web.get("/page?uid=3&explode=").status_code == 200
    assert users_by_event(client, ("page:ok", "page:failed")) == {
        "page:failed": {1},
        "page:ok": {2},
    }
    state = admin_app.extensions["bitmapist"].state(admin_app)
    assert state.writer.stats().queued == 2


def calls_of(app: Flask, path: str) -> list[str]:
    """The names of the Python functions of the extension that one request
    to ``path`` calls (after a first request)."""
    web = app.test_client()
    web.get(path)
    names: list[str] = []

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and "flask_bitmapist" in frame.f_code.co_filename:
            names.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        web.get(path)
    finally:
        sys.setprofile(None)
    return names


@pytest.mark.parametrize(
    ("path", "hooks"),
    [
        ("/other", ["after_request"]),
        ("/admin/deep/page?uid=4", ["after_request", "teardown_request"]),
    ],
)
def test_a_request_out_of_scope_runs_the_after_hook_alone(
    admin_app: Flask, path: str, hooks: list[str]
) -> None:
    called = calls_of(admin_app, path)
    assert [name for name in called if name.endswith("_request")] == hooks


def test_rules_on_an_app_endpoint_keep_the_hook_on_every_request(
    redis_url: str, tmp_path: Path
) -> None:
    app = page_app(redis_url, tmp_path, RULES + '  - event: "x"\n    endpoint: page\n')
    FlaskBitmapist(app)
    assert list(app.teardown_request_funcs) == [None]
    assert calls_of(app, "/other").count("teardown_request") == 1
