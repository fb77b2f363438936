"""Log lines under the IP policy (``privacy.ip_in_logs``) and without query strings: a filter
for any logger or handler, shared by every process (the ``refract`` command puts it on its
handlers once config.toml is read, admin/logs.py).

aiohttp writes its own lines when it cannot parse a request ("Error handling request from
<address>", with the offending bytes: an 8 KiB URL and its query included), and a library's
message may hold an address or a URL anywhere; the filter rewrites each record's message and
traceback: addresses per the policy, query strings and quoted request bytes removed.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import traceback

from refract.rules.privacy import anonymize_ip

# Candidates only: each is parsed before it is replaced, so a version number stays as it is.
_ADDRESS = re.compile(
    r"(?<![\w.:])(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]*:[0-9A-Fa-f:.]+)(?![\w.:])"
)
# Not a query already removed (a record may pass a logger's filter and then a handler's), nor
# the question mark that ends a sentence ("did you mean 'workers'?", "(which one?)"): a query
# goes on past its first character, which is no space or quote.
_QUERY = re.compile(r"\?(?!<query removed>)(?=[^\s'\")\]]|[)\]][^\s'\"])[^\s'\"]*")
# The words before the address a listener could not bind (asyncio's and uvloop's OSError,
# "error while attempting to bind on address ('10.0.0.1', 8080): ..."): the operator's own
# address from config.toml, never a visitor's, and wrong if rewritten.
_BIND_ADDRESS_PREFIX = "bind on address ('"
# a Python bytes repr, b'...' or b"...", whose b starts a token: the b of 'b' or xb'..' does not
_QUOTED_BYTES = re.compile(r"(?:bytearray\()?(?<![\w'\"])b(['\"]).*?(?<!\\)\1\)?")


class LogHygiene(logging.Filter):
    """Rewrites a record's message and traceback: addresses per ``ip_mode``, no query
    strings, no quoted request bytes."""

    def __init__(self, ip_mode: str) -> None:
        super().__init__()
        self.ip_mode = ip_mode

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.clean(record.getMessage()), None
        if record.exc_info:
            error = self.clean("".join(traceback.format_exception(*record.exc_info)).rstrip())
            record.exc_info, record.exc_text = None, error
            record.error = error  # admin/logs.py's JSON lines take it as their "error"
        return True

    def clean(self, line: str) -> str:
        line = _QUOTED_BYTES.sub("<request bytes removed>", line)
        line = _QUERY.sub("?<query removed>", line)
        return _ADDRESS.sub(self._address, line)

    def _address(self, match: re.Match[str]) -> str:
        if match.string.endswith(_BIND_ADDRESS_PREFIX, 0, match.start()):
            return match[0]
        try:
            ipaddress.ip_address(match[0])
        except ValueError:
            return match[0]
        return anonymize_ip(match[0], self.ip_mode) or "<address removed>"
