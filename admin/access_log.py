"""The admin's logs: one JSON access-log line per request, and aiohttp's own error lines
cleaned, both under the proxy's IP policy (``privacy.ip_in_logs``, rules/privacy.py).

Access lines carry the path without its query string (which may hold a visitor id, a search,
a ``next``), the status, size, time, the client as the policy allows and who was signed in.
aiohttp writes its own lines when it cannot parse a request ("Error handling request from
<address>" with the offending bytes, an 8 KiB URL included); a filter on its loggers rewrites
them: addresses under the policy, query strings and quoted request bytes removed.
"""

from __future__ import annotations

import json
import logging
import time

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from refract.admin.auth import IDENTITY_KEY
from refract.admin.perimeter import client_address
from refract.admin.state import CONFIG_KEY, config_in
from refract.rules.log_hygiene import LogHygiene
from refract.rules.privacy import anonymize_ip

access_logger = logging.getLogger("refract.access")
AIOHTTP_LOGGERS = ("aiohttp.server", "aiohttp.web", "aiohttp.access")


class AdminAccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time_s: float) -> None:
        record: dict[str, object] = {
            "ts": round(time.time(), 3),
            "app": "admin",
            "method": request.method,
            "host": request.host,
            "path": request.path,
            "status": response.status,
            "bytes": response.body_length,
            "ms": round(time_s * 1000, 2),
            "client": None,
            "user": None,
        }
        app = _app_of(request)
        if app is not None and CONFIG_KEY in app:
            config = config_in(app)
            address = client_address(request, config)
            record["client"] = anonymize_ip(address, config.privacy.ip_in_logs)
            identity = request.get(IDENTITY_KEY)
            record["user"] = identity.name if identity is not None else None
        self.logger.info(json.dumps(record, separators=(",", ":")))

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def _app_of(request: web.BaseRequest) -> web.Application | None:
    """The application that answered; None for a request aiohttp refused before routing it
    (malformed), whose ``app`` asserts: its client is then left out of the line."""
    try:
        return request.app if isinstance(request, web.Request) else None
    except (AssertionError, AttributeError):
        return None


def install_log_hygiene(ip_mode: str) -> LogHygiene:
    """Put a cleaning filter on aiohttp's loggers (``remove_log_hygiene`` takes it off)."""
    hygiene = LogHygiene(ip_mode)
    for name in AIOHTTP_LOGGERS:
        logging.getLogger(name).addFilter(hygiene)
    return hygiene


def remove_log_hygiene(hygiene: LogHygiene) -> None:
    for name in AIOHTTP_LOGGERS:
        logging.getLogger(name).removeFilter(hygiene)
