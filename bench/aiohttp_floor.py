"""The floor under any aiohttp server: a page from memory, nothing else done per request.

    python bench/aiohttp_floor.py PORT PAGE

bench/proxy_bench.py's ``aiohttp_floor`` row. The same server stack Refract's proxy runs
(aiohttp's web server on uvloop, the collector frozen after start-up as Refract's is) answers
every request with ``PAGE``'s bytes, so its CPU a request is what serving those bytes costs
before Refract does anything of its own: the rest of a hit's cost is Refract's.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import uvloop
from aiohttp import web


def main() -> None:
    port, page = int(sys.argv[1]), Path(sys.argv[2]).read_bytes()

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", serve)
    gc.collect()
    gc.freeze()
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
