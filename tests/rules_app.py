"""A realistic app for the rules tests: blueprints, URL converters, a JSON API,
Flask-Login (log in, log out), a sign-up that keeps the new account on g, a
view that raises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, abort, g, jsonify, request, session
from flask_login import LoginManager, UserMixin, login_user, logout_user

from flask_bitmapist import FlaskBitmapist


class Account:
    """A database row, as an ORM gives it: an object with an ``id``."""

    def __init__(self, account_id: int) -> None:
        self.id = account_id

    def __repr__(self) -> str:
        return f"<Account {self.id}>"


class User(UserMixin):
    def __init__(self, user_id: str) -> None:
        self.id = user_id
        self.account = Account(int(user_id) + 1000)


def create_app(redis_url: str, instance_path: str, rules: Any, **config: Any) -> Flask:
    app = Flask(__name__, instance_path=instance_path)
    app.config.update(
        TESTING=True,
        SECRET_KEY="test",
        BITMAPIST_REDIS_URL=redis_url,
        BITMAPIST_RULES=rules,
        BITMAPIST_ID_SOURCES={"account_owner": lambda: g.get("team_owner")},
    )
    app.config.update(config)
    login = LoginManager(app)
    login.user_loader(User)

    @login.request_loader
    def from_header(request: Any) -> User | None:
        user_id = request.headers.get("X-Login")
        return User(user_id) if user_id else None

    @app.route("/")
    def index() -> str:
        return "home"

    @app.post("/login/<user_id>")
    def login_view(user_id: str) -> str:
        login_user(User(user_id))
        return "in"

    @app.post("/logout")
    def logout_view() -> str:
        logout_user()
        # As Flask's tutorial app (flaskr) does: nothing of the user is left.
        session.clear()
        return "out"

    @app.post("/signup")
    def signup() -> Any:
        g.new_user = Account(101)
        return "welcome", 201

    @app.post("/echo")
    def echo() -> bytes:
        # Reads the raw body itself, as an upload view may.
        return request.get_data()

    @app.get("/play/<int:user_id>")
    def play(user_id: int) -> str:
        return f"played {user_id}"

    projects = Blueprint("projects", __name__, url_prefix="/projects")

    @projects.post("/")
    def create() -> Any:
        body = request.get_json(silent=True) or {}
        if body.get("explode"):
            raise RuntimeError("the view failed")
        if not body.get("name"):
            return jsonify(error="name is required"), 400
        return jsonify(id=1, name=body["name"]), 201

    @projects.route("/<int:owner_id>/<slug>", methods=["GET", "DELETE"])
    def show(owner_id: int, slug: str) -> Any:
        if slug == "missing":
            abort(404)
        return jsonify(owner=owner_id, slug=slug)

    shop = Blueprint("shop", __name__, url_prefix="/shop")

    @shop.post("/checkout")
    def checkout() -> Any:
        if request.args.get("declined"):
            return jsonify(error="card declined"), 402
        return jsonify(paid=True)

    @shop.get("/cart")
    def cart() -> str:
        return "cart"

    api = Blueprint("api", __name__, url_prefix="/api")

    @api.route("/items/<int:item_id>", methods=["GET", "PUT", "DELETE"])
    def item(item_id: int) -> Any:
        return jsonify(id=item_id, method=request.method)

    @api.get("/search")
    def search() -> Any:
        return jsonify(results=[])

    teams = Blueprint("teams", __name__, url_prefix="/teams")

    @teams.before_request
    def load_team() -> None:
        g.team_owner = request.args.get("owner")

    @teams.get("/<int:team_id>", endpoint="show")
    def show_team(team_id: int) -> str:
        return f"team {team_id}"

    reports = Blueprint("reports", __name__, url_prefix="/reports")

    @reports.before_request
    def load_reader() -> None:
        g.reader_id = request.args.get("reader")

    @reports.get("/<name>")
    def read(name: str) -> str:
        return f"report {name}"

    for blueprint in (projects, shop, api, teams, reports):
        app.register_blueprint(blueprint)

    # Registered before the extension, so it runs after any after_request
    # function the extension could register.
    @app.after_request
    def force_status(response: Any) -> Any:
        forced = request.headers.get("X-Force-Status")
        if forced:
            response.status_code = int(forced)
        return response

    FlaskBitmapist(app)
    return app


def page_app(
    redis_url: str, folder: Path, rules: str, name: str = "pages", **config: Any
) -> Flask:
    """A small app for the rules hooks' tests, without the extension yet (so
    a test can register hooks before it): ``rules`` written to a file in
    ``folder``, the sync writer, ``/page`` (``?explode=1`` raises, ``?gone=1``
    answers 410) and ``/other``."""
    path = folder / f"rules-{name}.yaml"
    path.write_text(rules)
    app = Flask(name, instance_path=str(folder / f"instance-{name}"))
    app.config.update(
        TESTING=True,
        BITMAPIST_REDIS_URL=redis_url,
        BITMAPIST_RULES=str(path),
        BITMAPIST_WRITE_MODE="sync",
        **config,
    )

    @app.get("/page")
    def page() -> Any:
        if request.args.get("explode"):
            raise RuntimeError("the view failed")
        if request.args.get("gone"):
            abort(410)
        return "page"

    @app.get("/other")
    def other() -> str:
        return "other"

    return app
