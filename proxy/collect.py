"""``POST {prefix}collect``: the beacon's batches, validated, into the event log.

Nothing unvalidated reaches a stream: a batch is accepted whole or refused with 400 and the
reason. Identity comes from the visitor's cookies, never from the body, and no id is minted
here: a visitor without cookies (no consent, Global Privacy Control) sends anonymous events.
Bots are answered like everyone else but counted apart and never logged. When the event queue
is full (Redis slow or away) a batch is refused with 503 rather than accepted and dropped.
"""

from __future__ import annotations

import time

from aiohttp import web

from refract.proxy import metrics
from refract.proxy.app_keys import EVENT_LOG_KEY, STATE_KEY
from refract.rules.events import InvalidEvent, from_beacon, parse_batch

MAX_BODY = 64 * 1024


def _refuse(status: int, reason: str, message: str) -> web.Response:
    metrics.COLLECT_REJECTED.labels(reason).inc()
    return web.json_response({"error": message}, status=status)


async def collect(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY].current
    site = state.router.match(request.host)
    if site is None:
        return _refuse(421, "site", "this host is not served here")
    if (request.content_length or 0) > MAX_BODY:
        return _refuse(413, "too_large", f"a batch is at most {MAX_BODY} bytes")
    if state.bots.is_bot(request.headers.get("User-Agent", "")):
        metrics.BOTS.labels("collect").inc()
        return web.Response(status=204)
    identity = state.identity.identify(request.headers, request.cookies)
    visitor = "" if identity.new_visitor else identity.visitor_id or ""
    session = "" if identity.new_session else identity.session_id or ""
    client_ip = state.trusted.client_view(
        request.remote or "", request.scheme, request.host, request.headers
    ).ip
    if visitor and not state.visitor_rate.allow(visitor):
        return _refuse(429, "rate_visitor", "too many batches from this visitor; slow down")
    if not state.ip_rate.allow(client_ip):
        return _refuse(429, "rate_ip", "too many batches from this address; slow down")
    body = await request.content.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        return _refuse(413, "too_large", f"a batch is at most {MAX_BODY} bytes")
    try:
        batch = parse_batch(body)
    except InvalidEvent as error:
        return _refuse(400, "invalid", str(error))
    accepted = from_beacon(
        batch,
        site.key,
        visitor,
        session,
        time.time(),
        email_domains=state.config.events.email_domains,
    )
    event_log = request.app[EVENT_LOG_KEY]
    if not event_log.room_for(len(accepted)):
        # Accepted means kept: refuse what the queue cannot hold rather than drop it later.
        return _refuse(503, "busy", "events are not being written fast enough; not accepted")
    for event in accepted:
        event_log.record(event)
    return web.json_response({"accepted": len(accepted)}, status=202)
