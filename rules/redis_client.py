"""Every Redis client Refract opens, built here with deadlines: a frozen Redis costs a call a
few seconds and an error, never a process that hangs (issue 16: a worker stop took 21 s).

``SOCKET_TIMEOUT_S`` bounds every read and write on the connection, so it must stay above the
longest blocking command Refract sends (the worker's XREADGROUP waits ``BLOCK_MS``, 200 ms).

A Redis Cluster is named by ``redis+cluster://[user:password@]host:port,host:port,...`` (or
``rediss+cluster://`` for TLS): a few seed nodes, from which the client learns the rest and
follows slots as they move or fail over. Refract's keys are built for it (rules/keyspace.py:
a site's keys share the ``{site}`` hash tag, so one site's multi-key scripts and transactions
stay in one slot); the cluster client answers the same commands, so callers keep the
``redis.Redis`` type.
"""

from __future__ import annotations

from typing import Final, cast
from urllib.parse import unquote, urlsplit

import redis.asyncio as redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

CONNECT_TIMEOUT_S: Final = 2.0
SOCKET_TIMEOUT_S: Final = 5.0
CLUSTER_SCHEMES: Final = frozenset(("redis+cluster", "rediss+cluster"))
MAX_SEED_NODES: Final = 32  # a seed list, not an inventory: the client discovers the rest
# A cluster client keeps a pool per node; past this many connections to one node a call fails
# at once (redis-py's cluster pool does not queue), so it is set well above the admin's burst.
CLUSTER_CONNECTIONS_PER_NODE: Final = 256
# What a call to Redis raises when Redis is away, slow or failing over: what the proxy's
# fail-open paths and background loops catch. redis-py's asyncio connections raise
# AttributeError or TypeError, not ConnectionError, when a connection is torn down while a
# command is written to it ("'NoneType' object has no attribute 'writelines'": a cluster
# failover in tests/test_cluster.py; redis/redis-py#3546, #4287), past all of its own retries:
# a loop that caught only RedisError stopped for good (the proxy no longer followed published
# rules, or no longer wrote its events). Caught here, at the library's boundary, rather than
# mended in a connection subclass: the cluster client picks its connection class itself.
REDIS_FAILURES: Final = (TimeoutError, redis.RedisError, OSError, AttributeError, TypeError)


def is_cluster(url: str) -> bool:
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def cluster_seeds(url: str) -> list[tuple[str, int]]:
    """The (host, port) seed nodes of a ``redis+cluster://`` URL; ValueError says what is
    wrong with it."""
    parts = urlsplit(url)
    if parts.scheme not in CLUSTER_SCHEMES:
        raise ValueError("a cluster URL starts with redis+cluster:// or rediss+cluster://")
    if parts.path not in ("", "/", "/0") or parts.query or parts.fragment:
        raise ValueError("a cluster URL names nodes only: a cluster has no database number")
    hosts = parts.netloc.rpartition("@")[2]
    seeds = []
    for item in hosts.split(","):
        host, colon, port = item.rpartition(":")
        if (
            not colon
            or not host
            or not (port.isascii() and port.isdigit())
            or not 0 < int(port) < 65536
        ):
            raise ValueError(f'"{item}" is not host:port with a port from 1 to 65535')
        seeds.append((host.strip("[]"), int(port)))
    if len(seeds) > MAX_SEED_NODES:
        raise ValueError(f"at most {MAX_SEED_NODES} seed nodes (the client finds the others)")
    return seeds


def _cluster(url: str, connect_timeout_s: float, max_connections: int) -> RedisCluster:
    parts = urlsplit(url)
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in cluster_seeds(url)],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        ssl=parts.scheme == "rediss+cluster",
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=connect_timeout_s,
        max_connections=max_connections,
    )


def connect(url: str, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> redis.Redis:
    """A client on ``url`` whose every connect and call gives up past its deadline."""
    if is_cluster(url):
        # The cluster client is no subclass of redis.Redis but answers every command Refract
        # sends (tests/test_cluster.py runs the flows on a real cluster).
        return cast(redis.Redis, _cluster(url, connect_timeout_s, CLUSTER_CONNECTIONS_PER_NODE))
    return redis.Redis.from_url(
        url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=connect_timeout_s
    )


def pooled(url: str, max_connections: int, wait_s: float) -> redis.Redis:
    """A client whose callers wait up to ``wait_s`` for one of ``max_connections`` connections
    (the admin's bursts), with the same deadlines on each; on a cluster, a pool per node."""
    if is_cluster(url):
        return cast(redis.Redis, _cluster(url, CONNECT_TIMEOUT_S, CLUSTER_CONNECTIONS_PER_NODE))
    return redis.Redis.from_pool(blocking_pool(url, max_connections, wait_s))  # closes it too


def blocking_pool(url: str, max_connections: int, wait_s: float) -> redis.BlockingConnectionPool:
    """A pool whose callers wait up to ``wait_s`` for a free connection (the admin's bursts),
    with the same deadlines on each connection."""
    return redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=wait_s,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
    )
