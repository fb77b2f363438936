"""A page served as XHTML through the proxy: an origin answering ``application/xhtml+xml``, and
what a browser gets of it under a rule file (the XHTML markup tests' end-to-end cases)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import BROWSER, ProxyFactory


async def xhtml_origin(aiohttp_server: Any, page: bytes) -> TestServer:
    """An origin answering ``/page`` with ``page``, served as XML."""

    async def xhtml_page(_: web.Request) -> web.Response:
        return web.Response(body=page, content_type="application/xhtml+xml")

    app = web.Application()
    app.router.add_get("/page", xhtml_page)
    server: TestServer = await aiohttp_server(app)
    return server


async def served(proxy: ProxyFactory, tmp_path: Path, rules: str) -> bytes:
    """``/page`` as a browser gets it through the proxy with ``rules`` as its rule file."""
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.toml").write_text(rules)
    client = await proxy(rules={"directory": str(directory)})
    response = await client.get("/page", headers={"User-Agent": BROWSER})
    assert response.status == 200
    return await response.read()
