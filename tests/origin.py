"""A real origin server for the conformance suite: one route per behaviour under test."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from refract.proxy import codings

PAGE = (
    b"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>Caf\xc3\xa9 &amp; co</title>"
    b"</head>\n<body class='home'><!-- keep me --><h1 id=hero>Hello&nbsp;world</h1>"
    b'<p data-x="1">Text &lt;raw&gt;</p>\n</body>\n</html>\n'
)
CP1252_PAGE = (
    '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN">\n<html><head><title>Caf\xe9 \x93q\x94'
    "</title></head><body><p>na\xefve \x80 price</p></body></html>"
).encode("latin-1")  # bytes 0x80, 0x93, 0x94: euro sign and curly quotes in windows-1252
SHIFT_JIS_PAGE = (
    '<html><head><meta charset="shift_jis"><title>日本語</title></head>'
    "<body><p>ソフトウェア表示</p></body></html>"
).encode("shift_jis")
UTF16_PAGE = "<html><body><p>utf-16</p></body></html>".encode("utf-16")
ASSET = bytes(range(256)) * 64  # 16 KiB of every byte value


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path_qs": request.raw_path,
            "headers": [[name, value] for name, value in request.headers.items()],
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "body_length": len(body),
        }
    )


async def page(request: web.Request) -> web.Response:
    coding = request.query.get("coding", "identity")
    headers = {"Content-Type": "text/html; charset=utf-8", "ETag": '"page-v1"'}
    headers["Last-Modified"] = "Tue, 03 Nov 2026 10:00:00 GMT"
    headers["Cache-Control"] = request.query.get("cache", "public, max-age=300, s-maxage=3600")
    if coding != "identity":
        headers["Content-Encoding"] = coding
    if "declare" in request.query:  # a broken origin: claims a coding it did not apply
        headers["Content-Encoding"] = request.query["declare"]
    if "surrogate" in request.query:
        headers["Surrogate-Control"] = "max-age=3600"
        headers["CDN-Cache-Control"] = "max-age=3600"
    body = request.app[PAGE_BODY] if "body" not in request.query else request.query["body"].encode()
    return web.Response(body=_encoded(body, coding, request.query), headers=headers)


def _encoded(body: bytes, coding: str, query: Mapping[str, str]) -> bytes:
    """``?split=1``: in two gzip members or zstd frames, as an encoder that flushes per buffer
    writes it; ``?trailing=1``: with a byte after the coding's end, as broken servers do."""
    if "split" in query:
        middle = len(body) // 2
        encoded = codings.encode(body[:middle], coding) + codings.encode(body[middle:], coding)
    else:
        encoded = codings.encode(body, coding)
    return encoded + b"\n" if "trailing" in query else encoded


PAGE_BODY = web.AppKey("page_body", bytes)


def fixed(body: bytes, content_type: str) -> Handler:
    async def handler(_: web.Request) -> web.Response:
        return web.Response(body=body, headers={"Content-Type": content_type})

    return handler


async def chunked_page(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/html"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for part in (b"<html><body>", b"<p>one</p>", b"<p>two</p>", b"</body></html>"):
        await response.write(part)
        await asyncio.sleep(0.01)
    await response.write_eof()
    return response


async def redirect(request: web.Request) -> web.Response:
    target = request.query.get("to", f"http://{request.host}/landing?x=1#top")
    return web.Response(status=302, headers={"Location": target})


async def cookies(_: web.Request) -> web.Response:
    response = web.Response(text="ok")
    response.headers.add("Set-Cookie", "origin_a=1; Domain=origin.internal; Path=/; HttpOnly")
    response.headers.add("Set-Cookie", "origin_b=2; Path=/app; Secure")
    return response


async def big(request: web.Request) -> web.StreamResponse:
    size = int(request.query.get("mb", "1")) * 1024 * 1024
    chunk = b"\x00" * 65536
    content_type = request.query.get("type", "application/octet-stream")
    response = web.StreamResponse(headers={"Content-Type": content_type})
    response.content_length = size
    await response.prepare(request)
    for _ in range(size // len(chunk)):
        await response.write(chunk)
    await response.write_eof()
    return response


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("s", "2")))
    return web.Response(text="late", content_type=request.query.get("type", "text/html"))


async def status(request: web.Request) -> web.Response:
    code = int(request.match_info["code"])
    return web.Response(status=code, headers={"ETag": '"status"'})


async def websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=("chat",))
    await ws.prepare(request)
    async for message in ws:
        if message.type == web.WSMsgType.TEXT:
            await ws.send_str(f"echo:{message.data}")
        elif message.type == web.WSMsgType.BINARY:
            await ws.send_bytes(message.data[::-1])
    return ws


async def flooding_websocket(request: web.Request) -> web.WebSocketResponse:
    """Sends 200 messages of 64 KB, or fewer if the other end is gone first."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    with contextlib.suppress(ConnectionError):
        for _ in range(200):
            await ws.send_bytes(b"x" * 65_536)
    await ws.close()
    return ws


CONDITIONALS = web.AppKey("conditionals", list)
VERSION = web.AppKey("version", dict)  # {"etag": ...}: tests change the page under Refract


async def validated(request: web.Request) -> web.Response:
    """A page with an ETag that honours If-None-Match and records what it was asked."""
    etag = f'"{request.app[VERSION]["etag"]}"'
    asked = request.headers.get("If-None-Match")
    request.app[CONDITIONALS].append(asked)
    headers = {"ETag": etag, "Cache-Control": request.query.get("cc", "max-age=0")}
    if "vary" in request.query:
        headers["Vary"] = request.query["vary"]
    if asked == etag:
        return web.Response(status=304, headers=headers | {"X-Revalidated": "yes"})
    if "age" in request.query:  # the full page came through a cache on the way; a 304 did not
        headers["Age"] = request.query["age"]
    response = web.Response(
        body=b"<html><body><p>version " + etag.encode() + b"</p></body></html>",
        content_type="text/html",
        headers=headers,
    )
    if "cookie" in request.query:
        response.set_cookie("session", "secret-of-one-visitor")
    return response


async def upload(request: web.Request) -> web.Response:
    digest, size = hashlib.sha256(), 0
    async for chunk in request.content.iter_chunked(65536):
        digest.update(chunk)
        size += len(chunk)
    return web.Response(text=json.dumps({"size": size, "sha256": digest.hexdigest()}))


def build_origin(asset_dir: Path) -> web.Application:
    (asset_dir / "asset.bin").write_bytes(ASSET)
    app = web.Application(client_max_size=1024**3)
    app[PAGE_BODY] = PAGE
    app[CONDITIONALS] = []
    app[VERSION] = {"etag": "v1"}
    app.router.add_get("/validated", validated)
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    app.router.add_get("/page", page)
    app.router.add_get("/cp1252", fixed(CP1252_PAGE, "text/html; charset=windows-1252"))
    app.router.add_get("/sjis", fixed(SHIFT_JIS_PAGE, "text/html"))
    app.router.add_get("/utf16", fixed(UTF16_PAGE, "text/html; charset=utf-16"))
    app.router.add_get(
        "/nobody", fixed(b"<!doctype html><title>t</title><p>no body tag", "text/html")
    )
    app.router.add_get(
        "/svg-body",
        fixed(b"<html><body><svg><body></body></svg><p>x</p></body></html>", "text/html"),
    )
    app.router.add_get("/json", fixed(b'{"a": "</body>"}', "application/json"))
    app.router.add_get("/chunked", chunked_page)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/cookies", cookies)
    app.router.add_get("/big", big)
    app.router.add_get("/slow", slow)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/ws", websocket)
    app.router.add_post("/upload", upload)
    app.router.add_static("/static/", asset_dir)
    add_edge_safety_routes(app)
    return app


# --- edge safety (tests/test_edge_safety.py) ---------------------------------------------

CSV = b"name,amount\nAcme,100\nGlobex,200\n"
ZIP = b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(range(256))
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
DOWNLOADS = {"csv": CSV, "zip": ZIP, "png": PNG, "pdf": PDF}
REACHED = web.AppKey("reached", list)  # paths of requests that reached /record


async def download(request: web.Request) -> web.Response:
    """A download labelled text/html, as PHP's default_mimetype does; ``?attachment`` says so
    in Content-Disposition, ``?coding=`` compresses it."""
    kind, coding = request.match_info["kind"], request.query.get("coding", "identity")
    headers = {"Content-Type": "text/html; charset=UTF-8"}
    if "attachment" in request.query:
        headers["Content-Disposition"] = f'attachment; filename="export.{kind}"'
    if coding != "identity":
        headers["Content-Encoding"] = coding
    return web.Response(body=codings.encode(DOWNLOADS[kind], coding), headers=headers)


async def ranged_page(request: web.Request) -> web.Response:
    """The test page, honouring a Range of bytes=START-END as a static file server does."""
    if (asked := request.headers.get("Range", "")).startswith("bytes="):
        start, _, end = asked.removeprefix("bytes=").partition("-")
        part = PAGE[int(start) : int(end) + 1]
        content_range = f"bytes {start}-{int(start) + len(part) - 1}/{len(PAGE)}"
        return web.Response(
            status=206,
            body=part,
            headers={"Content-Type": "text/html", "Content-Range": content_range},
        )
    return web.Response(body=PAGE, headers={"Content-Type": "text/html", "Accept-Ranges": "bytes"})


async def record(request: web.Request) -> web.Response:
    """Notes that a request reached the origin at all, before reading a byte of its body."""
    request.app[REACHED].append(request.raw_path)
    await request.read()
    return web.Response(text="recorded")


async def trickle(request: web.Request) -> web.StreamResponse:
    """A page sent one byte every ``?every`` seconds: never silent long, never done."""
    response = web.StreamResponse(headers={"Content-Type": "text/html"})
    await response.prepare(request)
    for byte in PAGE:
        await response.write(bytes([byte]))
        await asyncio.sleep(float(request.query.get("every", "0.2")))
    await response.write_eof()
    return response


async def large_websocket(request: web.Request) -> web.WebSocketResponse:
    """Echoes messages of up to 64 MiB (the standard route keeps aiohttp's 4 MiB)."""
    ws = web.WebSocketResponse(max_msg_size=64 * 1024 * 1024)
    await ws.prepare(request)
    async for message in ws:
        if message.type == web.WSMsgType.BINARY:
            await ws.send_bytes(message.data)
    return ws


def add_edge_safety_routes(app: web.Application) -> None:
    app[REACHED] = []
    app.router.add_get("/download/{kind}", download)
    app.router.add_get("/ranged-page", ranged_page)
    app.router.add_route("*", "/record", record)
    app.router.add_get("/trickle", trickle)
    app.router.add_get("/ws-large", large_websocket)
    app.router.add_get("/ws-flood", flooding_websocket)
