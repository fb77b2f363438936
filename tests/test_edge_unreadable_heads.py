"""Origin heads aiohttp's client cannot read are the origin's fault, a 502 counted as
"protocol", as README says ("Headers", "Protocol corners"): a NUL or a CR without LF in a field
(nginx refuses them too), and a 204 or 304 followed by body bytes (a known limit: a browser
and nginx discard the bytes). Should aiohttp start reading any of them, this fails and the
README must say what then happens."""

from __future__ import annotations

import pytest

from refract.proxy import metrics
from tests.conftest import BROWSER, ProxyFactory
from tests.support.metrics import counter
from tests.support.raw_origin import RawOrigin, raw_origin_fixture  # noqa: F401

PAGE = b"<html><body>page</body></html>"


def page_with(field: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
        + field
        + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(PAGE)
        + PAGE
    )


@pytest.mark.parametrize(
    "answer",
    [
        page_with(b"X-Foo: a\x00b"),
        page_with(b"X-Foo: a\rb"),
        b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello",
    ],
    ids=["nul", "bare-cr", "204-with-body", "304-with-body"],
)
async def test_an_unreadable_origin_head_is_a_502_counted_as_protocol(
    proxy: ProxyFactory, raw_origin: RawOrigin, answer: bytes
) -> None:
    client = await proxy(site={"origin": await raw_origin(answer)})
    before = counter(metrics.UPSTREAM_ERRORS, site="test", reason="protocol")
    response = await client.get("/x", headers={"User-Agent": BROWSER})
    assert response.status == 502
    assert b"<h1>Bad Gateway</h1>" in await response.read()
    assert counter(metrics.UPSTREAM_ERRORS, site="test", reason="protocol") == before + 1
