"""An origin answer with no Content-Type is served with none. aiohttp types an untyped body
``application/octet-stream``, and a browser downloads such an answer as a file instead of
sniffing it and showing the page: every visitor of a bare ``res.end(html)`` origin saw a
download. An untyped answer is no page to Refract (it is not rewritten, nor kept): it is
streamed, as it came."""

from __future__ import annotations

import pytest

from tests.conftest import ProxyFactory
from tests.support.raw_origin import RawOrigin, raw_origin_fixture  # noqa: F401

PAGE = b"<!DOCTYPE html><html><body><h1>x</h1></body></html>"
DOCUMENT = {"Sec-Fetch-Dest": "document"}


def untyped_answer(body: bytes, fields: bytes = b"") -> bytes:
    """A 200 with ``body`` and ``fields`` but no Content-Type."""
    return (
        b"HTTP/1.1 200 OK\r\n"
        + fields
        + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        + body
    )


# (case, the answer's extra fields, the request's fields, the body)
CASES = [
    ("a page", b"", DOCUMENT, PAGE),
    ("a page not asked for as a document", b"", {}, PAGE),
    ("bytes that are no page", b"", DOCUMENT, b"\x00\x01binary"),
    ("a page not to be transformed", b"Cache-Control: no-transform\r\n", DOCUMENT, PAGE),
]


@pytest.mark.parametrize(
    ("case", "fields", "asked_with", "body"), CASES, ids=[case for case, *_ in CASES]
)
async def test_an_answer_without_a_content_type_is_served_without_one(
    proxy: ProxyFactory,
    raw_origin: RawOrigin,
    case: str,
    fields: bytes,
    asked_with: dict[str, str],
    body: bytes,
) -> None:
    client = await proxy(site={"origin": await raw_origin(untyped_answer(body, fields))})
    response = await client.get("/", headers=asked_with)
    assert response.status == 200
    assert "Content-Type" not in response.headers
    assert await response.read() == body


async def test_a_page_streamed_past_the_rewrite_limit_is_served_without_a_content_type(
    proxy: ProxyFactory, raw_origin: RawOrigin
) -> None:
    large = PAGE.replace(b"<h1>", b"<h1>" + b"x" * 4096)
    client = await proxy(
        site={"origin": await raw_origin(untyped_answer(large)), "max_rewrite_bytes": 1024}
    )
    response = await client.get("/", headers=DOCUMENT)
    assert "Content-Type" not in response.headers
    assert await response.read() == large
