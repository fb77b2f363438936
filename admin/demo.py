"""`refract demo`: the Northbeam Analytics demo website, served as a real origin would.

It listens where the first site of config.toml expects its origin.

Pages are compressed when the client accepts it and carry public caching headers; assets
answer with ETag, Last-Modified and byte ranges; the demo-request form answers with a
redirect that names the origin itself. Refract in front has to handle all of it.

It also stands in for the team's own tools: `POST /hooks/refract` is a webhook receiver (the
demo's config.toml names it as the `demo_inbox` destination), which verifies each delivery's
Standard Webhooks signature, as a real receiver would, and keeps the last ones for
`GET /hooks/refract`.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
from pathlib import Path
from typing import Any

import uvloop
from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

from refract.admin.serving import serve_until_stopped
from refract.proxy.request_body import BodyTooLargeError, read_whole

REPOSITORY = Path(__file__).resolve().parents[1]
# The website's files; an installed (not editable) package has no examples/ beside it, so the
# image's demo target names its copy (Dockerfile).
DEMO_SITE = Path(os.environ.get("REFRACT_DEMO_SITE") or REPOSITORY / "examples" / "demo-site")
SITE_KEY = web.AppKey("demo.site", Path)
# Where the demo's config.toml expects it; `refract run` and `refract proxy` refuse a site
# with this origin (admin/cli.py): nothing else would serve it.
DEMO_ORIGIN = "http://127.0.0.1:8081"
# The demo inbox's signing secret, also in config.toml's demo destination: public, as the demo is.
DEMO_INBOX_SECRET = "whsec_cmVmcmFjdCBkZW1vIGluYm94OiBubyBzZWNyZXQ="
INBOX_KEY = web.AppKey("demo.inbox", collections.deque[dict[str, Any]])
INBOX_KEPT = 200
MAX_DELIVERY = 256 * 1024
DELIVERY_TIMEOUT_S = 10.0  # the demo inbox waits this long between two reads of a body
log = logging.getLogger("refract.demo")


def _page_file(site: Path, path: str) -> Path | None:
    """``/pricing`` -> pricing.html, ``/`` -> index.html; None outside the site."""
    relative = path.strip("/") or "index"
    candidate = (site / f"{relative}.html").resolve()
    if site.resolve() not in candidate.parents or not candidate.is_file():
        return None
    return candidate


async def page(request: web.Request) -> web.StreamResponse:
    site = request.app[SITE_KEY]
    file = _page_file(site, request.path)
    status = 200
    if file is None:
        file, status = site / "404.html", 404
    response = web.Response(
        status=status,
        body=file.read_bytes(),
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "public, max-age=60"},
    )
    response.enable_compression()
    return response


async def demo_request(request: web.Request) -> web.StreamResponse:
    await request.post()  # the demo keeps nothing a visitor typed
    origin = f"http://{request.host}"
    raise web.HTTPSeeOther(f"{origin}/demo-thanks")


async def inbox_delivery(request: web.Request) -> web.StreamResponse:
    """A webhook from Refract's automations: verified, then kept (a repeat, by webhook-id, is
    acknowledged again and not kept twice, as the spec asks of receivers)."""
    try:
        body = await read_whole(request, MAX_DELIVERY, DELIVERY_TIMEOUT_S)
    except BodyTooLargeError:
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_DELIVERY, actual_size=request.content_length or MAX_DELIVERY + 1
        ) from None
    try:
        message = Webhook(DEMO_INBOX_SECRET).verify(body, dict(request.headers))
    except WebhookVerificationError:
        raise web.HTTPUnauthorized(text="not signed by the demo's secret") from None
    kept = request.app[INBOX_KEY]
    delivery = request.headers["webhook-id"]
    if all(entry["id"] != delivery for entry in kept):
        kept.appendleft({"id": delivery, "message": message})
        log.info("demo inbox: %s %s", message.get("type"), message.get("data", {}).get("id"))
    return web.Response(status=204)


async def inbox(request: web.Request) -> web.StreamResponse:
    """What the inbox received, newest first."""
    kept = [entry["message"] for entry in request.app[INBOX_KEY]]
    return web.Response(text=json.dumps(kept, indent=2), content_type="application/json")


def build_app(site: Path) -> web.Application:
    app = web.Application()
    app[SITE_KEY] = site
    app[INBOX_KEY] = collections.deque(maxlen=INBOX_KEPT)
    app.router.add_static("/assets/", site / "assets", append_version=False)
    app.router.add_post("/demo", demo_request)
    app.router.add_post("/hooks/refract", inbox_delivery)
    app.router.add_get("/hooks/refract", inbox)
    app.router.add_get("/{path:.*}", page)
    return app


def run(host: str, port: int, site: Path = DEMO_SITE) -> None:
    uvloop.run(serve_until_stopped(build_app(site), host, port))


def main(argv: list[str] | None = None) -> None:
    """The demo website alone, e.g. as the origin of a compose deployment (compose.yaml)."""
    parser = argparse.ArgumentParser(prog="python -m refract.admin.demo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args(argv)
    run(args.host, args.port)


if __name__ == "__main__":
    main()
