"""Container health checks: ``python -m refract.admin.probe [proxy|admin|worker]`` exits 0
when this node's process of that role is healthy, 1 when not (with the reason on stderr).

It reads the same config.toml as the process (``$REFRACT_CONFIG``, the environment's
overrides), so the check follows the configured addresses:

* ``proxy`` (the image's HEALTHCHECK): the proxy's readiness, ``{prefix}ready`` on its first
  listener: configuration loaded, Redis reachable, an origin answering (proxy/readiness.py);
* ``admin``: ``GET /api/health`` answers (the admin is up; its body says how the rest is);
* ``worker``: this host's worker (``REFRACT_WORKER_NAME`` or the host name) beats and has a
  rule set, i.e. is not waiting for one (analytics/heartbeats.py).

Only the standard library and Redis: a probe runs every few seconds and must stay cheap.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from refract.rules.config import Config, load_config, split_host_port
from refract.rules.problems import InvalidFileError

TIMEOUT_S = 3.0
ROLES = ("proxy", "admin", "worker")
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def local_url(address: str, path: str) -> str:
    """``path`` on a listener, reached from inside the host (a wildcard means loopback)."""
    host, port = split_host_port(address)
    host = _ANY_ADDRESS.get(host, host)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}{path}"


def http_ok(url: str) -> str | None:
    """None when ``url`` answers 200, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer:
            return None if answer.status == 200 else f"{url}: HTTP {answer.status}"
    except urllib.error.HTTPError as error:
        return f"{url}: HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return f"{url}: {getattr(error, 'reason', error)}"


async def worker_problem(config: Config) -> str | None:
    from refract.admin.embedded_redis import running_url
    from refract.analytics.heartbeats import live_workers, worker_name
    from refract.rules.redis_client import connect

    url = config.redis.url or running_url(config.server.data_dir)
    if not url:
        return "no Redis: neither redis.url nor a running embedded server in data_dir"
    name = worker_name()
    async with connect(url) as client, asyncio.timeout(TIMEOUT_S):
        found = {worker.name: worker for worker in await live_workers(client)}
    if name not in found:
        return f"worker {name}: no fresh heartbeat"
    if found[name].state == "waiting":
        return f"worker {name}: waiting for a rule set that loads, consuming nothing"
    return None


def problem(role: str, config: Config) -> str | None:
    if role == "proxy":
        return http_ok(local_url(config.server.listen[0], f"{config.server.prefix}ready"))
    if role == "admin":
        return http_ok(local_url(config.admin.listen, "/api/health"))
    from refract.rules.redis_client import REDIS_FAILURES

    try:
        return asyncio.run(worker_problem(config))
    except REDIS_FAILURES as error:
        return f"Redis: {error!r}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m refract.admin.probe", description=__doc__)
    parser.add_argument("role", nargs="?", choices=ROLES, default="proxy")
    parser.add_argument("--config", default=os.environ.get("REFRACT_CONFIG", "config.toml"))
    args = parser.parse_args(argv)
    try:
        config = load_config(Path(args.config))
    except InvalidFileError as error:
        print(error, file=sys.stderr)
        return 1
    found = problem(args.role, config)
    if found is not None:
        print(f"unhealthy: {found}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
