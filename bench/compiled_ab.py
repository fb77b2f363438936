"""The request pipeline compiled (mypyc) against the same code interpreted: a cache hit's A/B.

    python bench/compiled_ab.py [--rounds 5] [--duration 5]

Issue 17's last step: move the per-request pipeline's hottest part into compiled code, behind
the same interfaces, "measure before deciding". mypyc (it comes with mypy, a dev dependency)
compiles the modules a cache hit runs through, unchanged, to C extensions: the source
stays the one the tests and the type checker read, so it measures what compiling buys
without writing a second implementation. The working tree is copied to a temporary folder,
``COMPILED`` built there, and both versions serve the 100 KB hit at once behind one origin
(bench/hit_ab.py's ``compare``: 4 edits, the beacon, page views and exposures, rounds
interleaved). docs/performance.md records a run and what was decided.

Needs nginx and wrk (as proxy_bench.py) and a C compiler.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from hit_ab import REPOSITORY, compare, importing, summary

# What a cache hit runs of Refract's own, by the profile (bench/profile_hit.py). Left out:
# proxy/request_body.py and proxy/event_log.py (async generators, which mypyc does not
# compile: neither is on a hit's path but for the event log's enqueue), rules/events.py
# (mypyc 2.4 emits C that does not build for its pydantic import).
COMPILED = (
    "proxy/handler.py",
    "proxy/call.py",
    "proxy/headers.py",
    "proxy/wire.py",
    "proxy/personalize.py",
    "proxy/measure.py",
    "proxy/identity.py",
    "proxy/origin_cache.py",
    "proxy/freshness.py",
    "proxy/metrics.py",
    "proxy/forwarding.py",
    "proxy/rewrite_cache.py",
    "proxy/codings.py",
    "rules/decisions.py",
    "rules/targeting.py",
    "rules/assignment.py",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    args = parser.parse_args()
    if shutil.which("cc") is None:
        sys.exit("a C compiler is needed: apt-get install gcc")
    compiled = build(Path(tempfile.mkdtemp(prefix="refract-mypyc-")))
    if not imports_compiled(compiled):
        sys.exit(f"a server started from {compiled} would not import the compiled modules")
    results = compare({"interpreted": None, "compiled": compiled}, args.rounds, args.duration)
    for name, runs in results.items():
        print(summary(f"{name:11}", runs))
    return 0


def build(into: Path) -> Path:
    """The working tree's files copied to ``into`` with ``COMPILED`` built there in place."""
    listed = subprocess.run(
        ["git", "-C", str(REPOSITORY), "ls-files", "-co", "--exclude-standard", "-z"],
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, (entry.decode() for entry in listed)):
        source, target = REPOSITORY / name, into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        elif source.is_file():
            shutil.copy2(source, target)
    # mypyc's build reads pyproject.toml with the environment's setuptools, which may be older
    # than the one the project builds with (its license field): it needs only the mypy options.
    (into / "pyproject.toml").unlink()
    (into / "mypy.ini").write_text("[mypy]\npython_version = 3.11\nignore_missing_imports = True\n")
    modules = [f"refract/{name}" for name in COMPILED]
    subprocess.run(
        [sys.executable, "-m", "mypyc", *modules], cwd=into, check=True, stdout=subprocess.DEVNULL
    )
    return into


def imports_compiled(code: Path) -> bool:
    """Whether a process started as the bench starts its servers (``python -m`` in the
    repository, hit_ab.importing) imports the handler ``code`` built, not the source's."""
    probe = "import refract.proxy.handler as handler; print(handler.__file__)"
    with importing(code):
        found = subprocess.run(
            [sys.executable, "-c", probe], cwd=REPOSITORY, check=True, capture_output=True
        )
    return Path(found.stdout.decode().strip()).suffix == ".so"


if __name__ == "__main__":
    sys.exit(main())
