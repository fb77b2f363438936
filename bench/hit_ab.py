"""A/B of the cache hit or the miss: the working tree against another revision, at once.

    python bench/hit_ab.py --before REV [--rounds 5] [--duration 5] [--miss]

Checks REV out in a temporary git worktree, starts the proxy bench's origin and two
``refract_edits`` servers (bench/proxy_bench.py's own functions and rules: 4 edits, the beacon,
page views and exposures), one importing the worktree's code (``PYTHONPATH``) and one the
working tree's, and loads the 100 KB hit on each with wrk, interleaved round by round
(``--miss``: servers set as ``refract_edits_miss``, without caches, so every request is a
rewrite). Prints
each round's req/s and CPU µs a request (the server's process tree) and the medians. Both
servers share the machine and the origin, so what one gains the other does not lose to drift.

To measure a change that is not committed, commit it on a branch (or stash it and measure the
stash's parent against it); docs/performance.md records the runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import proxy_bench as bench

REPOSITORY = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the git revision to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--miss", action="store_true", help="no caches: every request rewrites")
    args = parser.parse_args()
    with worktree(args.before, Path(tempfile.mkdtemp(prefix="refract-ab-")) / "before") as before:
        codes = {"before": before, "after": None}
        results = compare(codes, args.rounds, args.duration, caches=not args.miss)
    for name, runs in results.items():
        print(summary(f"{name:6} ({args.before if name == 'before' else 'working tree'})", runs))
    return 0


def compare(
    codes: dict[str, Path | None], rounds: int, duration: int, caches: bool = True
) -> dict[str, list[bench.Load]]:
    """Each of ``codes`` (None: the working tree) serving the 100 KB page at once (a hit, or
    with ``caches`` off a miss), behind one origin, loaded in turn for ``rounds`` rounds of
    ``duration`` seconds."""
    workdir = Path(tempfile.mkdtemp(prefix="refract-ab-"))
    workdir.chmod(0o755)  # nginx workers run as an unprivileged user
    bench.write_pages(workdir / "root", bench.PAGE.read_bytes())
    servers = {
        name: bench.Server(name, 10 + index, "refract", caches=caches)
        for index, name in enumerate(codes)
    }
    bench.BY_NAME.update(servers)
    origin = bench.start_nginx(workdir, bench.BY_NAME["origin"], workdir / "root")
    processes: dict[str, subprocess.Popen[bytes]] = {}
    for name, code in codes.items():
        with importing(code):
            processes[name] = bench.start_refract(workdir, servers[name])
    try:
        for server in servers.values():
            bench.wait_for(f"http://127.0.0.1:{server.port}/page.html", 60)
        loads: dict[str, list[bench.Load]] = {name: [] for name in servers}
        for _ in range(rounds):
            for name, process in processes.items():
                loads[name].append(bench.wrk(bench.Row(name), process.pid, duration, 64))
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        origin.send_signal(signal.SIGQUIT)
        for process in (*processes.values(), origin):
            process.wait(30)
    return loads


def summary(label: str, runs: list[bench.Load]) -> str:
    rates = [round(load.requests_per_s) for load in runs]
    cpu = [round(load.cpu_us_per_request) for load in runs]
    return (
        f"{label}: req/s {rates} median {statistics.median(rates):,.0f}; "
        f"CPU µs/req {cpu} median {statistics.median(cpu):,.0f}"
    )


@contextmanager
def worktree(revision: str, path: Path) -> Iterator[Path]:
    """``revision`` checked out at ``path`` for as long as the block runs."""
    git = ["git", "-C", str(REPOSITORY), "worktree"]
    subprocess.run([*git, "add", "--detach", "-q", str(path), revision], check=True)
    try:
        yield path
    finally:
        subprocess.run([*git, "remove", "--force", str(path)], check=True)


@contextmanager
def importing(code: Path | None) -> Iterator[None]:
    """Processes started in the block import Refract from ``code`` (its ``refract/`` links);
    None: from the working tree, as installed.

    The servers run ``python -m`` in the repository, which puts the repository (and its
    ``refract/``) first on ``sys.path``, ahead of ``PYTHONPATH``: ``PYTHONSAFEPATH`` (Python
    3.11) leaves it out, so ``code`` is what they import (before this, both sides of an A/B
    ran the working tree)."""
    if code is None:
        yield
        return
    saved = {name: os.environ.get(name) for name in ("PYTHONPATH", "PYTHONSAFEPATH")}
    os.environ.update(PYTHONPATH=str(code), PYTHONSAFEPATH="1")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


if __name__ == "__main__":
    sys.exit(main())
