"""Logging for every Refract process: JSON lines, access log on stdout, the rest on stderr."""

from __future__ import annotations

import json
import logging
import sys
import time

from refract.rules.log_hygiene import LogHygiene

_STANDARD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD_FIELDS})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure(level: int = logging.INFO) -> None:
    events = logging.StreamHandler(sys.stderr)
    events.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [events]
    root.setLevel(level)
    access = logging.getLogger("refract.access")
    access.propagate = False
    raw = logging.StreamHandler(sys.stdout)
    raw.setFormatter(logging.Formatter("%(message)s"))
    access.handlers[:] = [raw]
    logging.getLogger("aiohttp.access").disabled = True
    logging.Formatter.converter = time.gmtime


def follow_ip_policy(ip_mode: str) -> None:
    """Clean every line this process writes (``privacy.ip_in_logs``, no query strings): a
    filter on the handlers ``configure`` made, so it sees every logger's records, aiohttp's
    and libraries' included (a logger's own filter would miss its children's)."""
    hygiene = LogHygiene(ip_mode)
    for logger in (logging.getLogger(), logging.getLogger("refract.access")):
        for handler in logger.handlers:
            for old in [f for f in handler.filters if isinstance(f, LogHygiene)]:
                handler.removeFilter(old)
            handler.addFilter(hygiene)
