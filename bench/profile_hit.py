"""Where a cache hit's (or a miss's) time goes: py-spy samples of the serving process under wrk.

    python bench/profile_hit.py [--server refract_edits_miss] [--path /page.html] [--seconds 15]

Starts the proxy bench's origin (nginx) and its ``refract_edits`` server (4 edits, the beacon,
page views and exposures; ``--server`` names another of the bench's Refract servers, such as
``refract_edits_miss``, whose caches are off) with ``bench/proxy_bench.py``'s own functions,
loads ``--path`` with wrk (``-t2 -c64``, a Chrome user agent) and samples the serving
process with py-spy (``record --nonblocking -f raw``). Prints the share of samples by the
function they were in (self) and, for Refract's own functions, including what they call
(inclusive); the raw stacks are kept in ``--output`` for a flame graph. docs/performance.md
records a run.

Needs nginx and wrk (as proxy_bench.py) and py-spy (``pip install py-spy``: a profiler, not a
dependency of Refract).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import proxy_bench as bench

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?):\d+\)$")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    refract = [server.name for server in bench.SERVERS if server.kind == "refract"]
    parser.add_argument("--server", default="refract_edits", choices=refract)
    parser.add_argument("--path", default="/page.html", help="what wrk asks for")
    parser.add_argument("--seconds", type=int, default=15, help="seconds sampled")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples a second")
    parser.add_argument("--output", type=Path, default=Path("hit-profile.txt"))
    parser.add_argument("--top", type=int, default=25, help="functions listed")
    args = parser.parse_args()
    # py-spy installed with pip into this interpreter's environment is not on PATH
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=Path(sys.executable).parent)
    for tool, found in (("nginx", shutil.which("nginx")), ("wrk", shutil.which("wrk"))):
        if found is None:
            sys.exit(f"{tool} is needed: apt-get install nginx-light wrk")
    if py_spy is None:
        sys.exit("py-spy is needed: pip install py-spy")
    server = bench.BY_NAME[args.server]
    with bench.origin_and_proxy(server):
        url = f"http://127.0.0.1:{server.port}{args.path}"
        bench.wait_for(url, 60)
        agent = f"User-Agent: {bench.BROWSER}"
        load = subprocess.Popen(
            ["wrk", "-t2", "-c64", f"-d{args.seconds + 5}s", "-H", agent, url],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(2)  # past the first requests' misses
        record = [py_spy, "record", "-r", str(args.rate), "--nonblocking", "-f", "raw"]
        pid = str(bench.serving_pid(server))
        sampled = [*record, "-d", str(args.seconds), "-o", str(args.output), "-p", pid]
        subprocess.run(sampled, check=True, capture_output=True)
        print(load.communicate()[0])
    print_shares(args.output, args.top)
    return 0


def print_shares(raw: Path, top: int) -> None:
    """Self and (Refract's functions) inclusive shares of the samples in py-spy's raw file."""
    own: Counter[str] = Counter()
    within: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        samples = int(count)
        total += samples
        frames = [_name(frame) for frame in stack.split(";")]
        own[frames[-1]] += samples
        for frame in set(frames):
            if "refract/" in frame:
                within[frame] += samples
    print(f"{total} samples\n\nself:")
    for frame, samples in own.most_common(top):
        print(f"{100 * samples / total:5.1f} %  {frame}")
    print("\nRefract's functions, inclusive:")
    for frame, samples in within.most_common(top):
        print(f"{100 * samples / total:5.1f} %  {frame}")


def _name(frame: str) -> str:
    """``function (path/to/file.py:line)`` as ``function  file`` (the path from the package)."""
    found = _FRAME.match(frame)
    if found is None:
        return frame
    path = found["file"].split("site-packages/")[-1].split("/work/main/")[-1]
    return f"{found['function']}  {path}"


if __name__ == "__main__":
    sys.exit(main())
