"""Responses whose head Refract writes itself: the origin's header bytes as they came.

aiohttp decodes header bytes as UTF-8 with ``surrogateescape``, so a byte that is not UTF-8
(a windows-1252 ``filename="caf\\xe9.pdf"``) arrives as a lone surrogate, which its writer
then drops (``caf.pdf``). And it answers in the version the request line claimed, so a
request line saying "HTTP/2.0" over HTTP/1 got a "HTTP/2.0" status line back. The responses
here write their head with every field's bytes restored, under an HTTP/1.x status line.

Control characters are refused as aiohttp refuses them (they would split or smuggle a
header); the handler drops origin fields carrying one before they get here
(``headers.forwardable``), so this is the last guard, checked on the head's bytes at once.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.http_writer import HttpVersion, HttpVersion10, StreamWriter
from multidict import CIMultiDict

from refract.proxy.headers import ReadHeaders, splits_head


def status_line(version: HttpVersion, status: int, reason: str) -> str:
    """HTTP/1.0 answers HTTP/1.0; anything else gets HTTP/1.1, the version spoken here."""
    spoken = "1.0" if version == HttpVersion10 else "1.1"
    return f"HTTP/{spoken} {status} {reason}"


def head_bytes(line: str, headers: ReadHeaders) -> bytes:
    """The status line and fields as bytes, each field's bytes as they were received."""
    lines = [line, *(f"{name}: {value}" for name, value in headers.items())]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")
    if splits_head(head, len(lines)):
        raise ValueError("a control character in a response header would split it")
    return head


class WireStream(web.StreamResponse):
    """A streamed response whose head is written byte-exactly (see the module's docstring)."""

    async def _write_headers(self) -> None:
        request, writer = self._req, self._payload_writer
        assert request is not None
        assert isinstance(writer, StreamWriter)
        line = status_line(request.version, self.status, self.reason)
        # aiohttp's own bookkeeping for a head (its hooks, "not yet written"), then our bytes.
        await writer.write_headers(line, CIMultiDict())
        writer._headers_buf = head_bytes(line, self.headers)
        if self._send_headers_immediately:
            writer.send_headers()


class WireResponse(WireStream, web.Response):
    """A response with a body, its head written byte-exactly."""
