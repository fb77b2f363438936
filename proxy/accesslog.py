"""One JSON line per request, on stdout."""

from __future__ import annotations

import json
import logging
import time

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from refract.proxy.app_keys import STATE_KEY
from refract.proxy.call import EXCHANGE, Exchange
from refract.rules.privacy import anonymize_ip

access_logger = logging.getLogger("refract.access")


def _ip_mode(request: web.BaseRequest) -> str:
    """``privacy.ip_in_logs`` of the application that answered.

    A request aiohttp refused before routing it (malformed) reaches the log as a synthetic
    request without an application (its ``app`` property asserts): nothing says what the
    operator chose, so its address is left out.
    """
    try:
        app = request.app if isinstance(request, web.Request) else None
    except (AssertionError, AttributeError):
        app = None
    if app is None:
        return "none"
    return app[STATE_KEY].current.config.privacy.ip_in_logs if STATE_KEY in app else "truncated"


class JsonAccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time_s: float) -> None:
        exchange = request.get(EXCHANGE)
        # uvloop's clock, which aiohttp's time_s comes from, counts whole milliseconds.
        elapsed_s = time.perf_counter() - exchange.started if exchange else time_s
        exchange = exchange or Exchange(kind="local")
        ip_mode = _ip_mode(request)
        record = {
            "ts": round(time.time(), 3),
            "method": request.method,
            "host": request.host,
            "path": request.path,
            "status": response.status,
            "bytes": response.body_length,
            "ms": round(elapsed_s * 1000, 2),
            "upstream_ms": None if exchange.upstream_ms is None else round(exchange.upstream_ms, 2),
            "site": exchange.site,
            "kind": exchange.kind,
            "rewritten": exchange.rewritten,
            "client": anonymize_ip(exchange.client_ip or request.remote or "", ip_mode),
        }
        if exchange.notes:
            record["notes"] = exchange.notes
        self.logger.info(json.dumps(record, separators=(",", ":")))

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
