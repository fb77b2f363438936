"""Fetching a page through the proxy as one known, returning visitor."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import BROWSER
from tests.support.cookies import visitor_cookie

VISITOR = "0123456789abcdef0123456789abcdef"


SESSION = "0123456789abcdef"


async def page(
    client: TestClient[web.Request, web.Application], path: str = "/page", **headers: str
) -> bytes:
    cookie = headers.pop("cookie", visitor_cookie(VISITOR, SESSION))
    client.session.cookie_jar.clear()
    headers.setdefault("User-Agent", BROWSER)
    response = await client.get(path, headers={"Cookie": cookie, **headers})
    assert response.status == 200
    return await response.read()
