"""Logging for every Refract process: JSON lines, access log on stdout, the rest on stderr."""

from __future__ import annotations

import json
import logging
import sys
import time

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
