"""The visitor's request body on its way to the origin: the bytes as the visitor sent them,
however they are encoded (the proxy's server decodes no Content-Encoding: app.py), so the
origin gets what the Content-Encoding and Content-Length it is sent describe.

Apart from the pipeline (handler.py) because its async generator is the one construct of the
request path that mypyc cannot compile (bench/compiled_ab.py compiles the rest to measure it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from refract.rules.config import ServerConfig

_CHUNK = 64 * 1024


class BodyTooLargeError(Exception):
    pass


async def request_body(
    request: web.Request, server: ServerConfig
) -> bytes | AsyncIterator[bytes] | None:
    """A body with a Content-Length (checked against the limit already) streams; one without
    (chunked) is read whole first, so that one over the limit never reaches the origin."""
    if not request.body_exists:
        return None
    if request.content_length is not None:
        return request.content.iter_chunked(_CHUNK)
    return await read_whole(request, min(server.max_chunked_body, server.max_request_body))


async def read_whole(request: web.Request, limit: int) -> bytes:
    """The whole body, however it was cut into pieces; past ``limit`` bytes it is refused
    (``BodyTooLargeError``) without reading further. ``content.read(n)`` alone would return
    only what has arrived so far."""
    body = bytearray()
    async for chunk in request.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > limit:
            raise BodyTooLargeError
    return bytes(body)


async def announcing_end(
    body: AsyncIterator[bytes], sent: Callable[[], None]
) -> AsyncIterator[bytes]:
    """``body``, calling ``sent`` once its last byte has been handed on."""
    async for chunk in body:
        yield chunk
    sent()
