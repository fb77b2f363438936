"""Responses whose head Refract writes itself: the origin's header bytes as they came.

aiohttp decodes header bytes as UTF-8 with ``surrogateescape``, so a byte that is not UTF-8
(a windows-1252 ``filename="caf\\xe9.pdf"``) arrives as a lone surrogate, which its writer
then drops (``caf.pdf``). And it answers in the version the request line claimed, so a
request line saying "HTTP/2.0" over HTTP/1 got a "HTTP/2.0" status line back. The responses
here write their head with every field's bytes restored, under an HTTP/1.x status line.

Control characters are refused as aiohttp refuses them (they would split or smuggle a
header); the handler drops origin fields carrying one before they get here
(``headers.forwardable``), so this is the last guard, checked on the head's bytes at once.

A page served to many visitors has most of its fields in common: those are encoded and
checked once (``PreparedFields``) and written after the ones made per request.

aiohttp adds a ``Server`` naming itself and Python, with their versions, to any answer without
one; a proxy passes the origin's, and Refract's own answers name no software: only a
``Server`` the response was given is written. It also types an untyped answer
``application/octet-stream``, which makes a browser download a page an origin sent with no
``Content-Type`` (an untyped one it sniffs, and shows): a streamed answer (every untyped one:
no page) gets only a ``Content-Type`` it was given. (``web.Response`` types a ``body`` given
without one itself: Refract's own answers name theirs.)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import hdrs, web
from aiohttp.http_writer import HttpVersion, HttpVersion10, HttpVersion11, StreamWriter
from multidict import CIMultiDict

from refract.proxy.headers import ReadHeaders, splits_lines

# The fields aiohttp's response preparation reads (and adds when absent): they stay in a
# response's own headers, never among its prepared fields, or a second one would be written.
_READ_BY_AIOHTTP = frozenset(
    {"content-type", "content-length", "transfer-encoding", "date", "server", "connection"}
)
# The fields aiohttp makes up when a response has none, which only the response may give.
_ADDED_BY_AIOHTTP = frozenset({hdrs.SERVER, hdrs.CONTENT_TYPE})


def status_line(version: HttpVersion, status: int, reason: str) -> str:
    """HTTP/1.0 answers HTTP/1.0; anything else gets HTTP/1.1, the version spoken here."""
    spoken = "1.0" if version == HttpVersion10 else "1.1"
    return f"HTTP/{spoken} {status} {reason}"


def _checked_lines(lines: Iterable[str], count: int) -> bytes:
    """``count`` lines, each ended by CRLF, as the bytes they were received as (checked: no
    line carries a control character)."""
    block = "".join(f"{line}\r\n" for line in lines).encode("utf-8", "surrogateescape")
    if splits_lines(block, count):
        raise ValueError("a control character in a response header would split it")
    return block


def head_bytes(line: str, headers: ReadHeaders, prepared: bytes = b"") -> bytes:
    """The status line and fields as bytes, each field's bytes as they were received;
    ``prepared`` (``PreparedFields.lines``) written after them."""
    fields = (f"{name}: {value}" for name, value in headers.items())
    return _checked_lines((line, *fields), len(headers) + 1) + prepared + b"\r\n"


@dataclass(frozen=True, slots=True)
class PreparedFields:
    """A response's fields made once for many visitors: those aiohttp reads, and the rest
    encoded and checked (``lines``)."""

    read_by_aiohttp: tuple[tuple[str, str], ...]
    lines: bytes

    @classmethod
    def of(cls, headers: ReadHeaders) -> PreparedFields:
        read: list[tuple[str, str]] = []
        rest: list[tuple[str, str]] = []
        for name, value in headers.items():
            (read if name.lower() in _READ_BY_AIOHTTP else rest).append((name, value))
        lines = _checked_lines((f"{name}: {value}" for name, value in rest), len(rest))
        return cls(tuple(read), lines)


class WireStream(web.StreamResponse):
    """A streamed response whose head is written byte-exactly (see the module's docstring)."""

    _prepared = b""

    async def _prepare_headers(self) -> None:
        # the origin's (a prepared page keeps them here)
        given = [name for name in _ADDED_BY_AIOHTTP if name in self.headers]
        await super()._prepare_headers()
        for name in _ADDED_BY_AIOHTTP.difference(given):
            self.headers.popall(name, None)  # aiohttp's own default
        if self._ends_at_close():
            self.force_close()
            self.headers[hdrs.CONNECTION] = "close"

    def _ends_at_close(self) -> bool:
        """Whether only closing the connection can end the body, as nginx closes it: an
        HTTP/1.0 answer with a body and no Content-Length (HTTP/1.0 has no chunks). aiohttp
        would keep an HTTP/1.0 keep-alive connection open after it, and the client wait for an
        end that never comes, or read the next answer as the rest of this body."""
        request, writer = self._req, self._payload_writer
        assert request is not None
        assert writer is not None
        return (
            request.version < HttpVersion11
            and not self._must_be_empty_body
            and writer.length is None
        )

    async def _write_headers(self) -> None:
        request, writer = self._req, self._payload_writer
        assert request is not None
        assert isinstance(writer, StreamWriter)
        line = status_line(request.version, self.status, self.reason)
        # aiohttp's own bookkeeping for a head (its hooks, "not yet written"), then our bytes.
        await writer.write_headers(line, CIMultiDict())
        writer._headers_buf = head_bytes(line, self.headers, self._prepared)
        if self._send_headers_immediately:
            writer.send_headers()


class WireResponse(WireStream, web.Response):
    """A response with a body, its head written byte-exactly; ``prepared``'s fields go with
    ``headers`` (which must not repeat them)."""

    def __init__(self, *, prepared: PreparedFields | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if prepared is not None:
            self._prepared = prepared.lines


def json_answer(
    data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> WireResponse:
    """Refract's own JSON answer (``web.json_response``'s, naming no server software)."""
    return WireResponse(
        text=json.dumps(data), status=status, content_type="application/json", headers=headers
    )
