"""One request on its way through the proxy: what it resolved to, and what it reports.

Apart from handler.py so that the modules a request passes through (measure.py) can take the
call whole without importing the pipeline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web

from refract.proxy.app_keys import VISITOR_KEY_KEY
from refract.proxy.forwarding import ClientView
from refract.proxy.identity import Identity, unrecorded
from refract.proxy.personalize import NO_SEGMENT, Personalized, Segment
from refract.proxy.sites import Site
from refract.proxy.state import ProxyState


@dataclass(slots=True)
class Exchange:
    """What the access log and metrics need to know about one request."""

    site: str = "-"
    kind: str = "passthrough"
    started: float = field(default_factory=time.perf_counter)
    client_ip: str = ""
    upstream_ms: float | None = None
    rewritten: bool = False
    notes: list[str] = field(default_factory=list)


EXCHANGE = web.RequestKey("refract.exchange", Exchange)


@dataclass(slots=True)
class Call:
    """One request on its way through the pipeline, filled in as the pipeline learns more."""

    request: web.Request
    state: ProxyState
    site: Site
    view: ClientView
    exchange: Exchange
    personalized: Personalized | None = None  # decided before the origin was asked (split URL)
    segment: Segment = NO_SEGMENT  # what the worker concluded about the visitor
    _identity: Identity | None = field(default=None, init=False, repr=False)

    @property
    def identity(self) -> Identity:
        """Who the visitor is: resolved on first use, then kept for the rest of the request.

        Once, because a new visitor is given random ids: the cookies a page sets and the events
        it records must name the same visitor. On first use, because assets never ask, and
        reading a visitor's cookies costs more than the rest of an asset's pass through us.
        A request that may never be recorded (``counted``) is decided as nobody it could
        reveal the arm of: a throwaway id (identity.unrecorded). One that may not be
        identified (privacy, no key) stays so: it is in no experiment anyway.
        """
        if self._identity is None:
            request = self.request
            key = request.app[VISITOR_KEY_KEY]
            identity = self.state.identity.identify(request.headers, key)
            self._identity = identity if self.counted or not identity.tracked else unrecorded()
        return self._identity

    @property
    def counted(self) -> bool:
        """Whether this request is the visitor's own, to record and to set their cookies on:
        any request from no bot but a ``HEAD`` (no page view, yet the fields of a page's
        ``HEAD`` would tell its variant). Pages are rewritten for ``GET`` and ``HEAD`` only."""
        request = self.request
        return request.method != "HEAD" and not self.state.bots.is_bot(
            request.headers.get("User-Agent", "")
        )
