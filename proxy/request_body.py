"""The visitor's request body on its way to the origin: the bytes as the visitor sent them,
however they are encoded (the proxy's server decodes no Content-Encoding: app.py), so the
origin gets what the Content-Encoding and Content-Length it is sent describe.

Apart from the pipeline (handler.py) because its async generator is the one construct of the
request path that mypyc cannot compile (bench/compiled_ab.py compiles the rest to measure it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from refract.rules.config import ServerConfig

_CHUNK = 64 * 1024


class BodyTooLargeError(Exception):
    pass


class BodyStalledError(Exception):
    """The visitor sent nothing of a body for ``server.request_body_timeout``."""


async def request_body(
    request: web.Request, server: ServerConfig
) -> bytes | AsyncIterator[bytes] | None:
    """A body with a Content-Length (checked against the limit already) streams; one without
    (chunked) is read whole first, so that one over the limit never reaches the origin."""
    if not request.body_exists:
        return None
    if request.content_length is not None:
        return timed_chunks(request, server.request_body_timeout)
    limit = min(server.max_chunked_body, server.max_request_body)
    return await read_whole(request, limit, server.request_body_timeout)


async def read_whole(request: web.Request, limit: int, pause_limit: float) -> bytes:
    """The whole body, however it was cut into pieces; past ``limit`` bytes it is refused
    (``BodyTooLargeError``) without reading further. ``content.read(n)`` alone would return
    only what has arrived so far."""
    body = bytearray()
    async for chunk in timed_chunks(request, pause_limit):
        body += chunk
        if len(body) > limit:
            raise BodyTooLargeError
    return bytes(body)


async def timed_chunks(request: web.Request, pause_limit: float) -> AsyncIterator[bytes]:
    """The body's pieces as they arrive; waiting longer than ``pause_limit`` seconds for the
    next ends it (``BodyStalledError``), as nginx's client_body_timeout does: a client
    trickling a body, or sending part of one and then nothing, would otherwise hold its
    connection for good."""
    pieces = request.content.iter_chunked(_CHUNK)
    while True:
        try:
            async with asyncio.timeout(pause_limit):
                chunk = await anext(pieces)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise BodyStalledError from None
        yield chunk


async def announcing_end(
    body: AsyncIterator[bytes], sent: Callable[[], None]
) -> AsyncIterator[bytes]:
    """``body``, calling ``sent`` once its last byte has been handed on."""
    async for chunk in body:
        yield chunk
    sent()
