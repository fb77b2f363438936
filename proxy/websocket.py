"""WebSocket upgrades: a message relay between the visitor and the origin."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from refract.proxy.pages import neutral_page
from refract.proxy.sites import Site
from refract.proxy.wire import WireResponse

log = logging.getLogger("refract.proxy")

# The client library writes its own handshake fields for the origin leg.
_HANDSHAKE_FIELDS = (
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Extensions",
    "Sec-WebSocket-Protocol",
)


def is_websocket_upgrade(request: web.Request) -> bool:
    connection = request.headers.get("Connection", "").lower()
    return (
        request.method == "GET"
        and request.headers.get("Upgrade", "").lower() == "websocket"
        and "upgrade" in (token.strip() for token in connection.split(","))
    )


async def relay_websocket(
    request: web.Request, site: Site, url: URL, headers: CIMultiDict[str], max_message: int
) -> web.StreamResponse:
    """Relay messages both ways; one larger than ``max_message`` bytes closes both legs with
    1009 (server.websocket_max_message)."""
    protocols = [
        p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
    ]
    for name in _HANDSHAKE_FIELDS:
        headers.popall(name, None)
    ws_url = url.with_scheme("wss" if url.scheme == "https" else "ws")
    try:
        upstream = await site.client.ws_connect(
            ws_url, headers=headers, protocols=protocols, max_msg_size=max_message
        )
    except aiohttp.WSServerHandshakeError as error:
        return WireResponse(status=error.status, text="WebSocket refused by the website.")
    except (aiohttp.ClientError, TimeoutError):
        return neutral_page(502, "The website is not answering right now. Please try again.")
    downstream = web.WebSocketResponse(
        protocols=[upstream.protocol] if upstream.protocol else [], max_msg_size=max_message
    )
    await downstream.prepare(request)
    async with upstream:
        pumps = [
            asyncio.create_task(_pump(upstream, downstream)),
            asyncio.create_task(_pump(downstream, upstream)),
        ]
        for pump in pumps:
            pump.add_done_callback(_read_its_end)
        _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    await downstream.close()
    return downstream


def _read_its_end(pump: asyncio.Task[None]) -> None:
    """A pump's exception read, whoever stops first: a visitor gone mid-message ends one with
    ConnectionError, and the handler may be cancelled before it awaits both (the visitor
    left), which asyncio would log as an error for every such visitor."""
    if not pump.cancelled():
        pump.exception()


async def _pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
) -> None:
    async for message in source:
        if message.type == aiohttp.WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type == aiohttp.WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        else:
            break
    if not sink.closed:
        code = source.close_code or aiohttp.WSCloseCode.OK
        await sink.close(code=code)
