"""The request pipeline: route, identify, forward, rewrite pages, stream everything else.

What is measured about the pages served (page views, exposures) is measure.py's; this module
says when: for every page, and exposures only for pages rewritten.

Two promises shape this module. The origin's response reaches the visitor as the origin sent
it, except where Refract means to change it (pages) and where HTTP says a proxy must
(hop-by-hop headers, redirects naming the origin). And nothing of Refract's own can break a
page: when a stage of ours fails, the origin's bytes are served as they came, and the
failure is counted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.http_writer import HttpVersion10, HttpVersion11
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from refract.proxy import codings, csp, freshness, local, measure, metrics, sniff
from refract.proxy.app_keys import REDIS_KEY, STATE_KEY
from refract.proxy.call import EXCHANGE, Call, Exchange
from refract.proxy.charset import is_ascii_safe, page_encoding, response_content_type
from refract.proxy.forwarding import forwarding_headers, host_name, is_client_claim, is_host
from refract.proxy.headers import (
    add_vary,
    forwardable,
    has_control_character,
    has_directive,
    has_undecodable_bytes,
    is_asset_request,
    is_cdn_cache_header,
    is_download,
    is_fetched_by_script,
    names_page_etag,
    none_match,
    page_cache_control,
    refused_head,
    rewrite_location,
    rewrite_set_cookie,
    set_cookie_name,
    with_replacement_characters,
    without_hop_by_hop,
)
from refract.proxy.origin_cache import (
    KEPT_CONDITIONALS,
    KeptPage,
    OriginKey,
    Told,
    changes_the_origin,
    is_personal,
)
from refract.proxy.pages import neutral_page
from refract.proxy.personalize import NO_SEGMENT, Personalized, Segment, personalize
from refract.proxy.request_body import (
    BodyStalledError,
    BodyTooLargeError,
    announcing_end,
    request_body,
)
from refract.proxy.rewrite_cache import page_digest
from refract.proxy.rewrite_time import RewriteTooSlowError
from refract.proxy.rewriter import Plan
from refract.proxy.sites import Site
from refract.proxy.state import ProxyState, with_nonce
from refract.proxy.websocket import is_websocket_upgrade, relay_websocket
from refract.proxy.wire import PreparedFields, WireResponse, WireStream
from refract.rules import keyspace
from refract.rules.accounts import Account
from refract.rules.redis_client import REDIS_FAILURES
from refract.rules.segments import decode_segment
from refract.rules.targeting import Value

log = logging.getLogger("refract.proxy")

_XHTML_TYPE = "application/xhtml+xml"
_HTML_TYPES = ("text/html", _XHTML_TYPE)
_PAGE_DESTINATIONS = frozenset({"document", "iframe", "frame"})  # Fetch's request destinations
# Written by us for the origin, never copied from the visitor: Host (the origin's), Expect
# (our client's to send) and the forwarding fields, with values of our own.
_REPLACED_FIELDS = (
    "Host",
    "Expect",
    "Forwarded",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
)
# Validators and ranges describe the origin's bytes, not the page we serve.
_PAGE_DROPPED_FIELDS = frozenset(
    {"content-length", "content-encoding", "etag", "last-modified", "accept-ranges"}
)
# A visitor's validators the origin must not judge when the answer may be a page (see
# _drop_page_validators), and the fields of a range request, which a page ignores.
_VISITOR_VALIDATORS = ("If-None-Match", "If-Modified-Since")
_RANGE_FIELDS = ("Range", "If-Range")
# RFC 9110 section 9.3.8: TRACE echoes the request, cookies included, back to a script
# (cross-site tracing); nginx answers it 405 and so do we, and CONNECT (a tunnel: this is no
# forward proxy) as nginx does too. A 405 must say what is allowed.
_REFUSED_METHODS = frozenset({"TRACE", "CONNECT"})
_ALLOWED_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
_SPOKEN_VERSIONS = (HttpVersion10, HttpVersion11)
# Cache-Control directives only shared caches heed, or that let them store (RFC 9111 section
# 5.2.2): left out of a page made private; a "private" naming fields becomes a plain one.
_SHARED_CACHE_DIRECTIVES = frozenset({"public", "private", "s-maxage", "proxy-revalidate"})


@dataclass(frozen=True, slots=True)
class OriginPage:
    """An origin's 200 page, read whole: just sent, kept and confirmed by a 304, or kept and
    still fresh."""

    headers: CIMultiDictProxy[str]
    body: bytes
    coding: str  # its content coding, normalised (codings.normalize)
    digest: bytes  # rewrite_cache.page_digest(body), computed once per page received
    reason: str = "OK"
    age: int | None = None  # served from the origin cache without asking: its age (RFC 9111 5.1)
    source: KeptPage | None = None  # the kept page it is, which has visitors after this one
    key: OriginKey | None = None  # the key it is kept under

    @classmethod
    def kept(cls, page: KeptPage, key: OriginKey | None, age: int | None = None) -> OriginPage:
        coding = _coding(page.headers)
        return cls(page.headers, page.body, coding, page.digest, age=age, source=page, key=key)


async def proxy_request(request: web.Request) -> web.StreamResponse:
    state: ProxyState = request.app[STATE_KEY].current
    exchange = Exchange()
    request[EXCHANGE] = exchange
    refusal = _protocol_refusal(request, state)
    if refusal is not None:
        exchange.kind = "error"
        response: web.StreamResponse = refusal
    else:
        response = await _proxy(_in_origin_form(request), state, exchange)
    metrics.request_counter(exchange.site, exchange.kind, f"{response.status // 100}xx").inc()
    metrics.latency_histogram(exchange.kind).observe(time.perf_counter() - exchange.started)
    return response


def _protocol_refusal(request: web.Request, state: ProxyState) -> web.Response | None:
    """Requests answered as nginx answers them, before anything else is done with them."""
    if request.version not in _SPOKEN_VERSIONS:
        return refuse(505, "http_version", "This server speaks HTTP/1.0 and HTTP/1.1.")
    if request.method in _REFUSED_METHODS:
        refusal = refuse(405, "method", "This request method is not allowed here.")
        refusal.headers["Allow"] = _ALLOWED_METHODS
        return refusal
    if request.version == HttpVersion10 and "Transfer-Encoding" in request.headers:
        # RFC 9112 section 6.1: an HTTP/1.0 message's framing is unknowable with it.
        return refuse(400, "framing", "Transfer-Encoding is not HTTP/1.0.")
    if request.raw_path.startswith("/"):
        # RFC 9112 section 3.2: a Host that is no host[:port] gets 400, as nginx answers it;
        # a "*" site is reached by any Host, and the answer's cookies are matched against it.
        if not is_host(request.host):
            return refuse(400, "host", "This address is not valid.")
        return None
    authority = _absolute_authority(request.raw_path)
    if authority is None or not is_host(authority) or state.router.match(authority) is None:
        return refuse(400, "target", "This address is not served here.")
    return None


def refuse(status: int, reason: str, message: str) -> web.Response:
    """A neutral page, the connection closed after it: the request's framing is not trusted
    (also how proxy/server.py answers a request aiohttp's parser stopped)."""
    metrics.REQUEST_REJECTED.labels(reason).inc()
    refusal = neutral_page(status, message)
    refusal.force_close()
    return refusal


def _absolute_authority(target: str) -> str | None:
    """The host[:port] of an absolute-form request target (``http://site/path``), or None for
    anything else (the asterisk form, garbage)."""
    try:
        url = URL(target, encoded=True)
    except ValueError:
        return None
    if url.scheme not in ("http", "https") or not url.raw_host:
        return None
    return url.raw_authority


def _in_origin_form(request: web.Request) -> web.Request:
    """An absolute-form request (a client talking to us as to a forward proxy) as the
    origin-form one it means: RFC 9112 section 3.2.2, the target's authority replaces Host."""
    if request.raw_path.startswith("/"):
        return request
    target = URL(request.raw_path, encoded=True)  # _protocol_refusal has parsed it
    # an empty path is "/" (RFC 9112 section 3.2.2: `GET http://site HTTP/1.1` asks for it)
    path = URL.build(
        path=target.raw_path or "/", query_string=target.raw_query_string, encoded=True
    )
    return request.clone(rel_url=path, host=target.raw_authority)


async def _proxy(request: web.Request, state: ProxyState, exchange: Exchange) -> web.StreamResponse:
    if local.reaches_prefix(request.raw_path, state.config.server.prefix):
        exchange.kind = "local"  # ours however it is spelled: never the origin's
        return await local.not_found(request)
    site = state.router.match(request.host)
    if site is None:
        exchange.kind = "error"
        metrics.REQUEST_REJECTED.labels("unknown_host").inc()
        return neutral_page(421, "This address is not served here.")
    exchange.site = site.key
    peer = request.remote or ""
    view = state.trusted.client_view(
        peer, request.scheme, request.host, request.headers, site.config
    )
    exchange.client_ip = view.ip
    length = request.content_length
    if length is not None and length > state.config.server.max_request_body:
        return _too_large()

    call = Call(request, state, site, view, exchange)
    if is_websocket_upgrade(request):
        exchange.kind = "websocket"
        max_message = state.config.server.websocket_max_message
        headers = _upstream_headers(call)
        return await relay_websocket(request, site, _origin_url(call), headers, max_message)

    early = _may_redirect(call)
    segment_lookup = None
    if _needs_segment(request, state) and (early or _asks_for_a_page(request)):
        segment_lookup = _start_segment_lookup(call)
    try:
        if early:
            call.personalized = await _decide_early(call, segment_lookup)
            if call.personalized is not None and call.personalized.redirect:
                return _split_url_redirect(call, call.personalized)
        return await _forward(call, segment_lookup)
    finally:
        if segment_lookup is not None:
            segment_lookup.cancel()  # the page did not need it (an error, a passthrough)


async def _forward(call: Call, segment_lookup: asyncio.Future[Any] | None) -> web.StreamResponse:
    """Ask the origin, then serve its answer: a page (rewritten) or a stream; or serve the
    page kept from it, while fresh, without asking."""
    request, state, exchange = call.request, call.state, call.exchange
    kept_key, personal, upstream_headers = _kept_key(call)
    kept = state.origin_cache.lookup(kept_key, personal) if kept_key else None
    if kept is not None:
        age = state.origin_cache.fresh_age(kept, request.headers)
        if age is not None:  # fresh: the origin said it may be used without asking
            state.origin_cache.count("fresh")
            exchange.upstream_ms = 0.0
            call.segment = await _page_segment(call, segment_lookup)
            return _page(call, OriginPage.kept(kept, kept_key, age))
    if upstream_headers is None:
        upstream_headers = _upstream_headers(call)
    url = _origin_url(call)
    if kept is not None:
        upstream_headers.update(kept.conditional_headers())
    try:
        body = await request_body(request, state.config.server)
    except BodyTooLargeError:
        return _too_large()
    except BodyStalledError:
        return body_stalled()
    began = time.perf_counter()
    asked = await _ask_whole(call, request.method, url, upstream_headers, body)
    if isinstance(asked, web.Response):
        return asked
    upstream, deadline = asked
    mismatched = (
        kept is not None and upstream.status == 304 and not kept.validated_by(upstream.headers)
    )
    if mismatched and kept_key is not None:
        # a 304 about another page than the kept one, which is dropped (RFC 9111 4.3.4)
        upstream.release()
        state.origin_cache.count("mismatched")
        state.origin_cache.forget(kept_key)
        kept = None
        for name in KEPT_CONDITIONALS:
            upstream_headers.popall(name, None)
        asked = await _ask_whole(call, request.method, url, upstream_headers, body, deadline)
        if isinstance(asked, web.Response):
            return asked
        upstream, deadline = asked
    exchange.upstream_ms = (time.perf_counter() - began) * 1000
    try:
        _forget_changed(call, upstream)
        if (kept is not None and upstream.status == 304) or _is_page(request, upstream):
            call.segment = await _page_segment(call, segment_lookup)
        if kept is not None and kept_key is not None and upstream.status == 304:
            state.origin_cache.count("not_modified")
            confirmed = state.origin_cache.revalidated(kept_key, kept, upstream.headers)
            return _page(call, OriginPage.kept(confirmed, kept_key))
        if kept is not None:
            state.origin_cache.count("modified")
        return await _respond(call, upstream, kept_key, deadline, personal)
    finally:
        upstream.release()


async def _ask_whole(
    call: Call,
    method: str,
    url: URL,
    headers: CIMultiDict[str],
    body: bytes | AsyncIterator[bytes] | None,
    deadline: float | None = None,
) -> Asked | web.Response:
    """Ask the origin; for a page we rewrite, its whole self (_must_fetch_whole)."""
    asked = await _ask(call, method, url, headers, body, deadline)
    if isinstance(asked, web.Response):
        return asked
    upstream, deadline = asked
    if not _must_fetch_whole(call.request, upstream, call.site):
        return upstream, deadline
    upstream.release()
    without_range = without_hop_by_hop(headers, drop=_RANGE_FIELDS)
    return await _ask(call, "GET", url, without_range, None, deadline)


def _forget_changed(call: Call, upstream: aiohttp.ClientResponse) -> None:
    """A success of an unsafe method changed what the origin has at its URL (and at the
    Location or Content-Location it names): what is kept of them is dropped."""
    request = call.request
    if not changes_the_origin(request.method, upstream.status):
        return  # every GET: nothing to gather
    named = [
        *upstream.headers.getall("Location", ()),
        *upstream.headers.getall("Content-Location", ()),
    ]
    call.state.origin_cache.changed(
        call.site.key, request.method, upstream.status, request.raw_path, request.host, named
    )


Asked = tuple[aiohttp.ClientResponse, float]


async def _ask(
    call: Call,
    method: str,
    url: URL,
    headers: CIMultiDict[str],
    body: bytes | AsyncIterator[bytes] | None,
    deadline: float | None = None,
) -> Asked | web.Response:
    """The origin's response head and the deadline for the rest of it, or an error page.

    The site's ``total_timeout`` runs from the moment the request has been sent (a visitor's
    slow upload is not the origin's time), or from ``deadline``, one already running.
    """
    site, loop = call.site, asyncio.get_running_loop()
    try:
        async with asyncio.timeout_at(deadline) as timeout:

            def sent() -> None:
                timeout.reschedule(loop.time() + site.config.total_timeout)

            if deadline is None and not isinstance(body, AsyncIterator):
                sent()
            elif isinstance(body, AsyncIterator):
                body = announcing_end(body, sent)
            upstream = await site.client.request(
                method, url, headers=headers, data=body, allow_redirects=False
            )
    except (TimeoutError, aiohttp.ServerTimeoutError):
        return _origin_failed(site, call.exchange, "timeout", url)
    except aiohttp.ClientConnectorError:
        return _origin_failed(site, call.exchange, "connect", url)
    except aiohttp.ClientResponseError as error:  # a head aiohttp's parser refused
        return _origin_failed(site, call.exchange, refused_head(error) or "protocol", url)
    except aiohttp.ClientError:
        return _origin_failed(site, call.exchange, "protocol", url)
    return upstream, timeout.when() or loop.time() + site.config.total_timeout


def _must_fetch_whole(request: web.Request, upstream: aiohttp.ClientResponse, site: Site) -> bool:
    """A page we rewrite is ours to describe: a HEAD of it needs the rewritten length, and a
    range of it would be the origin's bytes, not ours (a page ignores Range: a full 200)."""
    if request.method == "HEAD":
        coding = _coding(upstream.headers)
        return _is_page(request, upstream) and not _rewrite_skip_reason(upstream, site, coding)
    return (
        request.method == "GET"
        and upstream.status == 206
        and _is_html(upstream)
        and not is_download(upstream.headers.get("Content-Disposition"))
    )


def _drop_page_validators(request: web.Request, headers: CIMultiDict[str]) -> None:
    """Validators only Refract can judge for a page: ours (a page we served; judged once it is
    rewritten again, in _page), and the origin's on any request that may get a page (all but
    assets, by Sec-Fetch-Dest or extension: a navigation, a fetch() or prefetch, a HEAD, a
    client without Fetch metadata), whose cached copy may be the origin's unpersonalised page
    from before Refract, which an origin's 304 would confirm whatever the visitor's variant.
    Assets keep theirs: their revalidation stays a 304 from the origin."""
    if request.method not in ("GET", "HEAD"):
        return
    headers_in = request.headers
    if names_page_etag(headers_in.get("If-None-Match")) or not is_asset_request(
        headers_in, request.path
    ):
        for name in _VISITOR_VALIDATORS:
            headers.popall(name, None)


def _too_large() -> web.Response:
    """A request body over ``server.max_request_body``, however it was found out."""
    metrics.REQUEST_REJECTED.labels("body_too_large").inc()
    return neutral_page(413, "The request is too large.")


def body_stalled() -> web.Response:
    """A request body that paused past ``server.request_body_timeout``: 408, and the
    connection closed, since the rest of the body may still come and must not be read as the
    next request."""
    metrics.REQUEST_REJECTED.labels("body_stalled").inc()
    response = neutral_page(408, "The request took too long to arrive.")
    response.force_close()
    return response


def _may_redirect(call: Call) -> bool:
    """Split-URL tests must be decided before the origin is asked; others wait for the page."""
    rules = call.state.rules
    return (
        call.request.method == "GET"
        and rules.redirects
        and rules.may_redirect(rules.tagger.tags(call.request.path))
    )


async def _decide_early(
    call: Call, segment_lookup: asyncio.Future[Any] | None
) -> Personalized | None:
    """The page's decision, made before the origin is asked, from what the page's own would
    know: the visitor's segment and account too (the page uses it unless it redirects)."""
    state = call.state
    try:
        call.segment = await _segment(segment_lookup, state.config.server.segment_wait)
        return personalize(
            state.rules,
            call.request,
            call.identity,
            state.tail_for(call.site),
            _with_account(call, measure.account_of(call)),
            site=call.site.key,
        )
    except Exception as error:  # a failure of ours: no redirect, the origin's page as it is
        metrics.FAIL_OPEN.labels("decision").inc()
        log.warning("decision failed: %r", error, extra={"site": call.site.key})
        return None


def _split_url_redirect(call: Call, personalized: Personalized) -> web.Response:
    call.exchange.kind = "redirect"
    headers = _with_identity(call, CIMultiDict())
    headers["Location"] = personalized.redirect
    headers["Cache-Control"] = "private, no-store"
    measure.record_redirect(call, personalized.decision, personalized.redirect)
    return WireResponse(status=302, headers=headers)


def _needs_segment(request: web.Request, state: ProxyState) -> bool:
    """Some audience looks at segment fields, and there is a Redis to ask."""
    return (
        request.method == "GET"
        and state.rules.needs_segment
        and request.app.get(REDIS_KEY) is not None
    )


def _asks_for_a_page(request: web.Request) -> bool:
    """Whether a page is what the request wants, so that its segment is worth asking for
    before the origin answers: a browser names the destination (Sec-Fetch-Dest: a document or
    a frame, not an image, style or script), an older client names HTML in Accept. A page
    asked for otherwise (``*/*``) gets its segment once the origin has shown it is a page."""
    destination = request.headers.get("Sec-Fetch-Dest")
    if destination is not None:
        return destination.lower() in _PAGE_DESTINATIONS
    return "text/html" in request.headers.get("Accept", "").lower()


def _start_segment_lookup(call: Call) -> asyncio.Future[Any] | None:
    """Fetch the visitor's segment while the origin works (the identity stays on the call)."""
    identity = call.identity
    if identity.new_visitor or identity.visitor_id is None:
        return None  # nothing concluded about a first visit yet
    client = call.request.app[REDIS_KEY]
    lookup = asyncio.ensure_future(client.get(keyspace.segment(call.site.key, identity.visitor_id)))
    lookup.add_done_callback(_quietly)
    return lookup


def _quietly(lookup: asyncio.Future[Any]) -> None:
    """Retrieve the outcome, so an abandoned lookup's error is not reported as unhandled."""
    if not lookup.cancelled():
        lookup.exception()


async def _page_segment(call: Call, early: asyncio.Future[Any] | None) -> Segment:
    """The segment for a page: from the lookup started with the request, or from one started
    now if the request did not look like a page's; the one read already when the page was
    decided before the origin was asked (a split-URL test's page: not waited for twice)."""
    if call.personalized is not None:
        return call.segment
    wait_s = call.state.config.server.segment_wait
    if early is not None or not _needs_segment(call.request, call.state):
        return await _segment(early, wait_s)
    late = _start_segment_lookup(call)
    try:
        return await _segment(late, wait_s)
    finally:
        if late is not None:
            late.cancel()  # past the wait: the page went on without it


async def _segment(lookup: asyncio.Future[Any] | None, wait_s: float) -> Segment:
    """The segment, if Redis answers in time; otherwise the page goes on without it."""
    if lookup is None:
        return NO_SEGMENT
    try:
        data = await asyncio.wait_for(asyncio.shield(lookup), wait_s)
    except REDIS_FAILURES:
        metrics.FAIL_OPEN.labels("segment").inc()
        return NO_SEGMENT
    return decode_segment(data)


def _kept_key(call: Call) -> tuple[OriginKey | None, bool, CIMultiDict[str] | None]:
    """The origin cache's key for the request, judged by the fields the origin would be sent
    (OriginCache.key); whether the request is a personal one (origin_cache.is_personal); and
    the fields sent when they had to be made to judge the key.

    The fields sent carry no conditional the request does not (none is added, some are
    dropped): a request without any has the key the fields sent would give it, and only a
    request with one has them made here."""
    cache, site, request = call.state.origin_cache, call.site, call.request
    told = _told(call)
    key = cache.key(site.key, told, request, request.headers)
    if key is None and cache.enabled and request.method in ("GET", "HEAD"):
        sent = _upstream_headers(call)
        return cache.key(site.key, told, request, sent), _is_personal(call), sent
    return key, key is not None and _is_personal(call), None


def _is_personal(call: Call) -> bool:
    """Whether the request carries cookies of the origin's that may make its page one
    visitor's (Refract's own never reach the origin)."""
    cookie = "; ".join(call.request.headers.getall("Cookie", ()))
    if not cookie:
        return False
    qa_cookie = call.state.rules.rules.settings.qa_parameter
    return is_personal(call.state.identity.strip_own_cookies(cookie, qa_cookie))


def _origin_url(call: Call) -> URL:
    return URL(call.site.origin_base + call.request.raw_path, encoded=True)


def _told(call: Call) -> Told:
    """What the origin is told of where the visitor asked: the one source of the request's
    Host (here) and of its forwarded scheme and public host (``forwarding_headers`` writes
    X-Forwarded-Proto/-Host and Forwarded's proto and host from the same two view fields),
    and so of the origin cache's key: a page made for https or for one tenant's host is kept
    for that scheme and host alone."""
    view = call.view
    return Told(call.site.upstream_host(view.host), view.scheme, view.public_host)


def _upstream_headers(call: Call) -> CIMultiDict[str]:
    """The fields to send the origin: the visitor's, less what is ours to write or to judge."""
    request, state, view = call.request, call.state, call.view
    claims = None if view.peer_trusted else is_client_claim
    headers = without_hop_by_hop(request.headers, drop=_REPLACED_FIELDS, drop_if=claims)
    if has_undecodable_bytes(request.raw_headers):
        headers = with_replacement_characters(headers)
    cookie = "; ".join(headers.popall("Cookie", ()))  # HTTP/2 may split it (RFC 9113 8.2.3)
    qa_cookie = state.rules.rules.settings.qa_parameter
    if cookie and (kept := state.identity.strip_own_cookies(cookie, qa_cookie)):
        headers["Cookie"] = kept
    headers["Host"] = _told(call).host
    headers.update(forwarding_headers(request.headers, request.remote or "", view))
    _drop_page_validators(request, headers)
    return headers


def _origin_failed(site: Site, exchange: Exchange, reason: str, url: URL) -> web.Response:
    exchange.kind = "error"
    metrics.UPSTREAM_ERRORS.labels(site.key, reason).inc()
    log.warning("origin %s failed: %s", url.with_query(None), reason, extra={"site": site.key})
    if reason == "timeout":
        return neutral_page(504, "The website took too long to answer. Please try again.")
    return neutral_page(502, "The website is not answering right now. Please try again.")


async def _respond(
    call: Call,
    upstream: aiohttp.ClientResponse,
    kept_key: OriginKey | None,
    deadline: float,
    personal: bool,
) -> web.StreamResponse:
    request, site = call.request, call.site
    if not _is_page(request, upstream):
        if kept_key is not None:
            call.state.origin_cache.forget(kept_key)
        return await _stream(request, upstream, _response_headers(call, upstream.headers))
    if upstream.method == "HEAD":  # of a page we would not rewrite (_must_fetch_whole)
        return await _stream_page(call, upstream)
    coding = _coding(upstream.headers)
    skip = _rewrite_skip_reason(upstream, site, coding)
    # Only the first bytes of a page we will not rewrite, to tell whether it is one at all.
    limit = sniff.HEADER_BYTES if skip else site.config.max_rewrite_bytes
    try:
        async with asyncio.timeout_at(deadline):
            raw, complete = await _read_up_to(upstream.content, limit)
    except (aiohttp.ServerTimeoutError, TimeoutError):
        return _origin_failed(site, call.exchange, "timeout", upstream.url)
    except aiohttp.ClientPayloadError:
        return _origin_failed(site, call.exchange, "protocol", upstream.url)
    if (not_page := _not_a_page(raw, coding)) is not None:
        metrics.REWRITE_SKIPPED.labels(not_page).inc()
        if kept_key is not None:
            call.state.origin_cache.forget(kept_key)
        headers = _response_headers(call, upstream.headers)
        return await _stream(request, upstream, headers, already_read=raw)
    if skip or not complete:
        metrics.REWRITE_SKIPPED.labels(skip or "too_large").inc()
        return await _stream_page(call, upstream, already_read=raw)
    page = OriginPage(upstream.headers, raw, coding, page_digest(raw), upstream.reason or "OK")
    if kept_key is not None:
        call.state.origin_cache.keep(kept_key, page.headers, page.body, page.digest, personal)
    return _page(call, page)


async def _stream_page(
    call: Call, upstream: aiohttp.ClientResponse, already_read: bytes = b""
) -> web.StreamResponse:
    """A page that goes out as the origin sends it: a page view, and no exposure, since the
    visitor sees none of the variant's changes."""
    if call.request.method == "GET":
        measure.record_pageview(call, measure.account_of(call))
    headers = _unmodified_with_identity(call, _response_headers(call, upstream.headers))
    return await _stream(call.request, upstream, headers, already_read)


def _response_headers(call: Call, origin_headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    headers, dropped = forwardable(origin_headers)
    if dropped:
        _origin_header_dropped(call, dropped)
    view = call.view
    public_base = f"{view.scheme}://{view.public_host}" if view.public_host else ""
    for name in ("Location", "Content-Location"):
        if name in headers:
            headers[name] = rewrite_location(headers[name], call.site.origin, public_base)
    if "Set-Cookie" in headers:
        public_host = host_name(view.host)
        domain = call.state.config.cookies.domain
        values = _without_owned_cookies(call, headers.popall("Set-Cookie"))
        cookies = [rewrite_set_cookie(value, public_host, domain) for value in values]
        headers.extend(("Set-Cookie", value) for value in cookies)
    return headers


def _without_owned_cookies(call: Call, values: list[str]) -> list[str]:
    """The origin's Set-Cookie fields less those setting a cookie only Refract may set
    (IdentityPolicy.owned_names): sent after ours, they would replace the visitor's id, session
    or QA override in the browser. Each dropped one is counted; the first per name and site
    in this process (until a reload) is logged: every page of such an origin carries it."""
    owned = call.state.identity.owned_names(call.state.rules.rules.settings.qa_parameter)
    kept = []
    for value in values:
        name = set_cookie_name(value)
        if name is None or name not in owned:
            kept.append(value)
            continue
        site = call.site.key
        metrics.UPSTREAM_ERRORS.labels(site, "owned_cookie").inc()
        call.exchange.notes.append(f"origin cookie dropped: {name}")
        if name not in call.site.owned_cookies_logged:
            call.site.owned_cookies_logged.add(name)
            log.warning(
                "origin set the cookie %s, which is Refract's; dropped (logged once)",
                name,
                extra={"site": site},
            )
    return kept


def _origin_header_dropped(call: Call, names: list[str]) -> None:
    """An origin's field with a control character cannot be sent on (it would split the
    header); the rest of the answer can, and the origin's fault is counted and named."""
    site = call.site.key
    metrics.UPSTREAM_ERRORS.labels(site, "header").inc()
    call.exchange.notes.append(f"origin header dropped: {', '.join(names)}")
    log.warning("origin sent a control character in %s; dropped", names, extra={"site": site})


def _reason(phrase: str | None) -> str | None:
    """The origin's reason phrase, unless it carries a control character (then the standard
    one: None)."""
    return phrase if phrase and not has_control_character(phrase) else None


def _coding(headers: CIMultiDictProxy[str]) -> str:
    return codings.normalize(headers.get("Content-Encoding"))


def _not_a_page(body: bytes, coding: str) -> str | None:
    """Why a body labelled HTML is no page, by its first bytes decoded (sniff.py): "binary"
    (a download), "not_markup" (JSON, plain text, nothing: a script's fetch() of it would
    break on a beacon appended); None for a page."""
    try:
        header = codings.decode_prefix(body, coding, sniff.HEADER_BYTES)
    except codings.DecodeError:
        return None  # not for us to judge: served as a page, failing open as pages do
    if not sniff.is_text(header):
        return "binary"
    return None if sniff.starts_as_markup(header) else "not_markup"


def _with_identity(call: Call, headers: CIMultiDict[str]) -> CIMultiDict[str]:
    """Add the visitor's cookies: only pages carry them, never assets. For fields of our own
    that say no shared cache may store the answer (a personalized page's, a redirect's)."""
    headers.extend(("Set-Cookie", value) for value in _identity_cookies(call))
    return headers


def _unmodified_with_identity(call: Call, headers: CIMultiDict[str]) -> CIMultiDict[str]:
    """Add the visitor's cookies to a page served as the origin sent it, which is then
    private: the origin's caching may let a shared cache (the CDN in front) store it, cookies
    and all, and hand one visitor's id, or the deletion of theirs, to everyone after them."""
    values = _identity_cookies(call)
    if values:
        _keep_from_shared_caches(headers)
        headers.extend(("Set-Cookie", value) for value in values)
    return headers


def _identity_cookies(call: Call) -> list[str]:
    secure = call.view.scheme == "https"
    return call.state.identity.set_cookie_headers(call.identity, secure=secure)


def _keep_from_shared_caches(headers: CIMultiDict[str]) -> None:
    """Make an origin's fields say only the visitor's browser may keep the response: its
    Cache-Control ``private`` with the origin's other directives (its ``max-age`` stays the
    browser's), without those for shared caches, and without the fields a CDN obeys instead.
    A change of fields only, not of the content: ``no-transform`` still holds."""
    directives = freshness.directive_items(headers.popall("Cache-Control", ()))
    kept = [
        item
        for item in directives
        if freshness.directive_name(item) not in _SHARED_CACHE_DIRECTIVES
    ]
    headers["Cache-Control"] = ", ".join(["private", *kept])
    for name in [name for name in headers if is_cdn_cache_header(name)]:
        headers.popall(name, None)


def _is_page(request: web.Request, upstream: aiohttp.ClientResponse) -> bool:
    return (
        request.method in ("GET", "HEAD")
        and upstream.status == 200
        and _is_html(upstream)
        and "Content-Range" not in upstream.headers
        and not is_download(upstream.headers.get("Content-Disposition"))
    )


def _is_html(upstream: aiohttp.ClientResponse) -> bool:
    """Whether the answer is HTML or XHTML, by all its Content-Type fields as a browser reads
    them (aiohttp's ``content_type`` reads the first)."""
    types = tuple(upstream.headers.getall("Content-Type", ()))
    return response_content_type(types)[0] in _HTML_TYPES


def _rewrite_skip_reason(upstream: aiohttp.ClientResponse, site: Site, coding: str) -> str:
    if has_directive(upstream.headers.get("Cache-Control"), "no-transform"):
        return "no_transform"  # RFC 9110 section 7.7: a proxy must not transform this
    if not codings.is_supported(coding):
        return "coding"
    length = upstream.content_length
    if length is not None and length > site.config.max_rewrite_bytes:
        return "too_large"
    return ""


def _as_page_headers(headers: CIMultiDict[str], etag: str) -> None:
    """Make ``headers`` (a copy of the origin's) those of a personalized page: private to one
    visitor, revalidated on every use, our validator (``etag``: headers.page_etag) of the
    bytes served in place of the origin's."""
    dropped = {
        name
        for name in headers
        if name.lower() in _PAGE_DROPPED_FIELDS or is_cdn_cache_header(name)
    }
    for name in dropped:
        headers.popall(name)
    headers["Cache-Control"] = page_cache_control(headers.get("Cache-Control"))
    headers["ETag"] = etag
    add_vary(headers, "Accept-Encoding")


class _PassUnmodifiedError(Exception):
    """The page is fine, but must reach the visitor as the origin sent it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _page(call: Call, origin: OriginPage) -> web.Response:
    """Rewrite a page, or serve the origin's bytes as they came if anything goes wrong."""
    call.exchange.kind = "page"
    state, request = call.state, call.request
    account = measure.account_of(call)
    # A fragment a script fetched into a page (htmx, jQuery's load) gets the edits, so that it
    # shows what the page shows, but no beacon or styles (the page has them) and is no page
    # view (its exposure is recorded, below); a whole page fetched so (hx-boost, Turbo) is one.
    fragment = is_fetched_by_script(request.headers) and not _opens_a_document(origin)
    # Whatever becomes of the rewrite below; a HEAD is no page view.
    human = request.method == "GET" and not fragment and measure.record_pageview(call, account)
    # Every Content-Type field, as a browser reads them: the last type wins.
    types = tuple(origin.headers.getall("Content-Type", ()))
    essence, content_type = response_content_type(types)
    coding = codings.choose_coding(request.headers.get("Accept-Encoding"), origin.coding)
    limit = call.site.config.max_rewrite_bytes

    try:
        personalized = call.personalized or personalize(
            state.rules,
            request,
            call.identity,
            state.tail_for(call.site),
            _with_account(call, account),
            site=call.site.key,
        )
        plan = personalized.plan
        if fragment:
            plan = Plan(edits=plan.edits)
        elif plan.tail:
            plan = _beacon_under_csp(call, origin.headers, plan)

        def rewrite() -> bytes:
            html = codings.decode(origin.body, origin.coding, limit)
            if not is_ascii_safe(page_encoding(content_type, html)):
                raise _PassUnmodifiedError("charset")
            xml = essence == _XHTML_TYPE
            time_limit = call.site.config.max_rewrite_seconds
            place = f"{call.site.key} {request.path}"
            output = state.rewriter.rewrite(html, plan, xml=xml, time_limit=time_limit, place=place)
            return codings.encode(output, coding)

        key = call.state.cache.key(
            plan.fingerprint, content_type, origin.coding, coding, origin.body, origin.digest
        )
        body, etag = call.state.cache.get_or_make(key, rewrite)
    except _PassUnmodifiedError as skip:
        metrics.REWRITE_SKIPPED.labels(skip.reason).inc()
        return _unmodified_page(call, origin)
    except RewriteTooSlowError as error:
        metrics.FAIL_OPEN.labels("rewrite_time").inc()
        call.exchange.notes.append("fail-open: rewrite_time")
        log.warning("page served unmodified: %s", error, extra={"site": call.site.key})
        return _unmodified_page(call, origin)
    except Exception as error:  # any failure of ours serves the origin's page
        metrics.FAIL_OPEN.labels("rewrite").inc()
        call.exchange.notes.append(f"fail-open: {type(error).__name__}")
        log.warning(
            "rewrite failed, page served unmodified: %r", error, extra={"site": call.site.key}
        )
        return _unmodified_page(call, origin)
    call.exchange.rewritten = True
    # only now: a page served unmodified above showed the visitor no variant. A fragment shows
    # it too: exposed (the worker keeps a visitor's first exposure), or a script's fetch would
    # tell a client an id's arm without counting it
    if human or (fragment and call.counted):
        measure.record_exposures(call, personalized.decision)
    fields = _page_fields(call, origin, etag, coding)
    headers = _with_identity(call, CIMultiDict(fields.read_by_aiohttp))
    if (age := _age(origin)) is not None:
        headers["Age"] = age
    if none_match(request.headers.get("If-None-Match"), etag):
        # the visitor holds these very bytes
        return WireResponse(status=304, headers=headers, prepared=fields)
    return WireResponse(reason=_reason(origin.reason), headers=headers, body=body, prepared=fields)


def _beacon_under_csp(call: Call, headers: CIMultiDictProxy[str], plan: Plan) -> Plan:
    """The plan as the page's Content-Security-Policy header fields allow it: with the beacon
    as it is, carrying the policy's nonce, or without it (proxy/csp.py). Per response, since
    the fields are; a page without them pays two lookups, and its plan is the one made once
    per rule set. A plan changed here is hashed anew: such a page (a nonce is per response)
    is one of its own anyway."""
    fields = tuple(value for name in csp.HEADERS for value in headers.getall(name, ()))
    if not fields:
        return plan
    view = call.view
    verdict = csp.beacon_verdict(fields, view.scheme, view.host, call.state.config.server.prefix)
    if not verdict.inject:
        _BEACON_CSP.inc()
        return dataclasses.replace(plan, tail="")
    if verdict.nonce:
        return dataclasses.replace(plan, tail=with_nonce(plan.tail, verdict.nonce))
    return plan


_BEACON_CSP = metrics.FAIL_OPEN.labels("beacon_csp")  # bound once: labels() costs a lookup


def _opens_a_document(origin: OriginPage) -> bool:
    """Whether the page's first bytes open a whole document (a body that cannot be decoded is
    taken for one: its rewrite fails open alike)."""
    try:
        return sniff.opens_a_document(codings.decode_prefix(origin.body, origin.coding, 1024))
    except Exception:
        return True


def _unmodified_page(call: Call, origin: OriginPage) -> web.Response:
    headers = _unmodified_with_identity(call, _response_headers(call, origin.headers))
    if origin.age is not None:
        headers["Age"] = str(origin.age)
    return WireResponse(reason=_reason(origin.reason), headers=headers, body=origin.body)


def _age(origin: OriginPage) -> str | None:
    """The page's Age: a kept page's own, else the one the origin sent with it, if any."""
    if origin.age is not None:
        return str(origin.age)
    return origin.headers.get("Age")


def _page_fields(call: Call, origin: OriginPage, etag: str, coding: str) -> PreparedFields:
    """The fields of a rewritten page that every visitor of it gets (all but their cookies and
    the age): made once per variant (``etag``), coding and view of a kept page, so an origin
    field dropped from them (``_response_headers``) is reported once then, not per visitor."""

    def make() -> PreparedFields:
        headers = _response_headers(call, origin.headers)
        headers.popall("Age", None)  # the kept page's grows: written per request (_age)
        _as_page_headers(headers, etag)
        if coding != "identity":
            headers["Content-Encoding"] = coding
        return PreparedFields.of(headers)

    if origin.source is None or origin.key is None:
        return make()
    view = call.view
    key = (etag, coding, view.scheme, view.host, view.public_host)
    return call.state.origin_cache.fields_for(origin.key, origin.source, key, make)


def _with_account(call: Call, account: Account | None) -> Segment:
    if account is None:
        return call.segment
    values, confidence = call.segment
    known: dict[str, Value] = {"account.name": account.name, "account.target": account.target}
    return {**values, **known}, confidence


async def _read_up_to(stream: aiohttp.StreamReader, limit: int) -> tuple[bytes, bool]:
    """Read the whole body if it is at most ``limit`` bytes; else what was read and False.

    The chunks are joined once at the end (no copy at all when the body came in one read,
    as a page from a nearby origin usually does), not copied into a growing buffer."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await stream.readany()
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), False


async def _stream(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    headers: CIMultiDict[str],
    already_read: bytes = b"",
) -> web.StreamResponse:
    """Send the origin's response as it arrives, never holding more than a chunk."""
    response = WireStream(status=upstream.status, reason=_reason(upstream.reason), headers=headers)
    try:
        await response.prepare(request)
        if request.method == "HEAD":  # the head of an answer to a GET (_must_fetch_whole)
            await response.write_eof()
            return response
        if already_read:
            await response.write(already_read)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
    except (aiohttp.ClientPayloadError, aiohttp.ServerTimeoutError, TimeoutError) as error:
        # Too late for an error status: cut the connection so the visitor sees a broken
        # download rather than a complete-looking truncated one.
        log.warning("origin body failed mid-stream: %r", error)
        if request.transport is not None:
            request.transport.close()
        return response
    except ConnectionResetError:
        upstream.close()  # the visitor left; the rest of the origin's body is not wanted
        return response
    except asyncio.CancelledError:
        upstream.close()
        raise
    await response.write_eof()
    return response
