"""One JSON line per request, on stdout."""

from __future__ import annotations

import ipaddress
import json
import logging
import time

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from refract.proxy.app_keys import STATE_KEY
from refract.proxy.call import EXCHANGE, Exchange

access_logger = logging.getLogger("refract.access")


def anonymize_ip(address: str, mode: str) -> str | None:
    """Keep the network, drop the host: /24 for IPv4, /48 for IPv6 (privacy.ip_in_logs)."""
    if mode == "none" or not address:
        return None
    if mode == "full":
        return address
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return None
    prefix = 24 if parsed.version == 4 else 48
    return str(ipaddress.ip_network(f"{parsed}/{prefix}", strict=False).network_address)


class JsonAccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time_s: float) -> None:
        exchange = request.get(EXCHANGE)
        # uvloop's clock, which aiohttp's time_s comes from, counts whole milliseconds.
        elapsed_s = time.perf_counter() - exchange.started if exchange else time_s
        exchange = exchange or Exchange(kind="local")
        ip_mode = "truncated"
        if isinstance(request, web.Request) and STATE_KEY in request.app:
            ip_mode = request.app[STATE_KEY].current.config.privacy.ip_in_logs
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
