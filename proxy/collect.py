"""``POST {prefix}collect``: the beacon's batches, validated, into the event log.

Nothing unvalidated reaches a stream: a batch is accepted whole or refused with 400 and the
reason. Identity comes from the visitor's cookies, never from the body, and no id is minted
here: a visitor without cookies (no consent, Global Privacy Control) sends anonymous events.
Bots are answered like everyone else but counted apart and never logged. When the event queue
is full (Redis slow or away), or the site's stream is at its budget (the worker behind, see
stream_budget.py), a batch is refused with 503 rather than accepted and dropped.

A visitor cookie the proxies did not sign (rules/visitor_ids.py) is refused with 403, not
taken for an anonymous batch: the beacon always posts with the cookie its page set. Budgets
per visitor, per address and per network (an IPv4 /24, an IPv6 /64: one machine holds many
addresses of its network) answer 429.

The beacon posts JSON from the site's own pages, so anything else is refused before it costs
a rate limit's budget: a post another site's page makes its visitors' browsers send (the
browser says so in ``Sec-Fetch-Site``, or, in browsers without it, in ``Origin``) and a body
that is not ``application/json`` (the only kind a cross-site page can send without the
browser asking this server first, CORS preflight, which nothing here answers).

A batch may come compressed with gzip or deflate (the beacon sends none). The proxy's server
hands bodies on as they were sent (app.py), so the endpoint inflates them itself, to 64 KiB at
most, all of a gzip body's members together (a compression bomb stops there: 413); one that
does not decode gets 400, another coding 415, each with its reason, never a traceback.
"""

from __future__ import annotations

import time

from aiohttp import web
from yarl import URL

from refract.proxy import codings, metrics
from refract.proxy.app_keys import EVENT_LOG_KEY, STATE_KEY, VISITOR_KEY_KEY
from refract.proxy.ratelimit import network_of
from refract.proxy.request_body import BodyStalledError, BodyTooLargeError, read_whole
from refract.proxy.wire import WireResponse, json_answer
from refract.rules.events import InvalidEvent, check_values, from_beacon, parse_batch
from refract.rules.ruleset import RuleSet

MAX_BODY = 64 * 1024
JSON = "application/json"
# gzip and deflate are the codings aiohttp's server inflated here before the proxy stopped it
# decoding bodies, so a client that compresses its batches goes on being served. br and zstd
# are left out: each decoding holds a window of megabytes, for any visitor, 1,200 times a minute.
BATCH_CODINGS = ("identity", "gzip", "deflate")


def _refuse(status: int, reason: str, message: str) -> web.Response:
    metrics.COLLECT_REJECTED.labels(reason).inc()
    return json_answer({"error": message}, status=status)


async def collect(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY].current
    site = state.router.match(request.host)
    if site is None:
        return _refuse(421, "site", "this host is not served here")
    if _cross_site(request):
        return _refuse(403, "cross_site", "batches are accepted from this site's own pages only")
    if request.content_type != JSON:
        return _refuse(415, "content_type", f"a batch is JSON: send Content-Type: {JSON}")
    coding = _content_coding(request)
    if coding not in BATCH_CODINGS:
        return _refuse(
            415,
            "content_encoding",
            "a batch is sent as it is, or with Content-Encoding gzip or deflate",
        )
    if (request.content_length or 0) > MAX_BODY:
        return _refuse(413, "too_large", f"a batch is at most {MAX_BODY} bytes")
    if state.bots.is_bot(request.headers.get("User-Agent", "")):
        metrics.BOTS.labels("collect").inc()
        return WireResponse(status=204)
    identity = state.identity.identify(request.headers, request.app[VISITOR_KEY_KEY])
    if identity.reason == "no-key":
        return _refuse(503, "no_key", "visitor ids cannot be verified yet; not accepted")
    if identity.refused_cookie:
        # An id we did not sign: forged, or copied without its signature. Its page got a new one.
        return _refuse(403, "visitor_unsigned", "the visitor cookie is not signed by this site")
    visitor = "" if identity.new_visitor else identity.visitor_id or ""
    session = "" if identity.new_session else identity.session_id or ""
    client_ip = state.trusted.client_view(
        request.remote or "", request.scheme, request.host, request.headers, site.config
    ).ip
    if visitor and not state.visitor_rate.allow(visitor):
        return _refuse(429, "rate_visitor", "too many batches from this visitor; slow down")
    if not state.ip_rate.allow(client_ip):
        return _refuse(429, "rate_ip", "too many batches from this address; slow down")
    if not state.network_rate.allow(network_of(client_ip)):
        return _refuse(429, "rate_network", "too many batches from this network; slow down")
    event_log = request.app[EVENT_LOG_KEY]
    if site.key in event_log.full_sites:
        return _refuse(503, "stream_full", "events are not being processed; not accepted")
    try:
        timeout = state.config.server.request_body_timeout
        body = _decoded(await read_whole(request, MAX_BODY, timeout), coding)
    except BodyTooLargeError:
        return _refuse(413, "too_large", f"a batch is at most {MAX_BODY} bytes")
    except BodyStalledError:  # the rest may still come: never read as the next request
        stalled = _refuse(408, "stalled", "the batch took too long to arrive")
        stalled.force_close()
        return stalled
    except codings.DecodeError as error:
        return _refuse(400, "invalid", str(error))
    rules = state.rules.rules
    try:
        batch = parse_batch(body)
        check_values(batch, lambda name: _allows_negative(rules, name))
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
    if not event_log.room_for(len(accepted)):
        # Accepted means kept: refuse what the queue cannot hold rather than drop it later.
        return _refuse(503, "busy", "events are not being written fast enough; not accepted")
    for event in accepted:
        event_log.record(event)
    return json_answer({"accepted": len(accepted)}, status=202)


def _content_coding(request: web.Request) -> str:
    """The body's coding, normalized; several fields (codings applied in turn) stay a list, which
    no batch coding matches."""
    return codings.normalize(",".join(request.headers.getall("Content-Encoding", ())))


def _decoded(body: bytes, coding: str) -> bytes:
    """The batch ``body`` was sent as, inflated to ``MAX_BODY`` bytes at most (all of a gzip
    body's members together: a client's streaming compressor may write several). Past that,
    ``BodyTooLargeError`` (nothing more is inflated); a body that is not what ``coding`` says,
    ``codings.DecodeError``."""
    if coding == "identity":
        return body
    try:
        return codings.decode(body, coding, MAX_BODY, gzip_members=True)
    except codings.TooLarge:
        raise BodyTooLargeError from None


def _cross_site(request: web.Request) -> bool:
    """Whether the browser says another site's page sent this post. Sec-Fetch-Site first
    (only ``same-origin``: the beacon posts to the page's own host); else Origin, which must
    name this host. A client that sends neither is no browser tricked into posting."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site != "same-origin"
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    try:
        host = URL(origin).raw_authority
    except ValueError:
        return True  # "null" (an opaque origin) or garbage: no page of this site
    return not host or host.lower() != request.host.lower()


def _allows_negative(rules: RuleSet, name: str) -> bool:
    """Whether the event metric counting track calls named ``name`` takes refunds."""
    return any(
        metric.kind == "event" and metric.event == name and metric.allow_negative
        for metric in rules.metrics.values()
    )
