"""A response with more than one Content-Type field is read as a browser reads it: Fetch's
"extract a MIME type" takes every field, and the last type that parses wins (an app's
``header()`` after a server's default sends both). Refract took the first: a page a browser
parses as XHTML was rewritten as HTML, and the beacon went into a CDATA section (text, never
run); a page a browser renders as HTML was passed through as another type."""

from __future__ import annotations

import pytest

from refract.proxy.state import beacon_tag
from tests.conftest import ProxyFactory
from tests.support.raw_origin import RawOrigin, page_answer, raw_origin_fixture  # noqa: F401

XHTML = "application/xhtml+xml"
# A code sample holding "</body>" in a CDATA section: text to an XML parser, and to HTML's a
# bogus comment ending at the first ">", then an end tag.
PAGE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml">'
    b"<head><title>t</title></head><body><h1>Old</h1>"
    b'<pre><![CDATA[ if (a > b) print("</body>") ]]></pre><p>end</p></body></html>'
)
BEACON = beacon_tag("/_refract/").encode()
# The beacon before the real </body>, the CDATA section as it was (the page read as XHTML).
AS_XHTML = PAGE.replace(b"<p>end</p></body>", b"<p>end</p>" + BEACON + b"</body>")
# The beacon before the first </body> as HTML reads it: the one in the code sample, which a
# browser's HTML parser also takes for the end tag (the script is in the body and runs).
AS_HTML = PAGE.replace(b'print("</body>', b'print("' + BEACON + b"</body>", 1)


async def served(proxy: ProxyFactory, raw_origin: RawOrigin, types: list[bytes]) -> bytes:
    fields = b"".join(b"Content-Type: " + kind + b"\r\n" for kind in types[1:])
    origin = await raw_origin(page_answer(PAGE, fields, content_type=types[0]))
    client = await proxy(site={"origin": origin})
    return await (await client.get("/", headers={"Sec-Fetch-Dest": "document"})).read()


# (case, the Content-Type fields in order, what is served)
CASES = [
    ("html then xhtml: xhtml", [b"text/html", XHTML.encode()], AS_XHTML),
    ("xhtml then html: html", [XHTML.encode(), b"text/html"], AS_HTML),
    ("html then a type that does not parse: html", [b"text/html", b"html"], AS_HTML),
    ("text/plain then html: a page", [b"text/plain", b"text/html"], AS_HTML),
    ("html then json: no page", [b"text/html", b"application/json"], PAGE),
    # the charset of the same type carries over to the last: a page in ISO-2022-JP
    ("html then html with a charset", [b"text/html", b"text/html; charset=iso-2022-jp"], PAGE),
    # one field, as before
    ("xhtml alone", [XHTML.encode()], AS_XHTML),
    ("html alone", [b"text/html"], AS_HTML),
]


@pytest.mark.parametrize(("case", "types", "page"), CASES, ids=[case for case, *_ in CASES])
async def test_the_last_content_type_field_decides_how_the_page_is_read(
    proxy: ProxyFactory, raw_origin: RawOrigin, case: str, types: list[bytes], page: bytes
) -> None:
    assert await served(proxy, raw_origin, types) == page


async def test_a_kept_page_is_read_by_all_its_content_type_fields(
    proxy: ProxyFactory, raw_origin: RawOrigin
) -> None:
    asked: list[bytes] = []

    def answer(url: str, head: bytes) -> bytes:
        asked.append(head)
        fields = (
            b'Content-Type: application/xhtml+xml\r\nETag: "v1"\r\nCache-Control: max-age=60\r\n'
        )
        return page_answer(PAGE, fields, content_type=b"text/html")

    client = await proxy(site={"origin": await raw_origin(answer)})
    for _ in range(2):
        response = await client.get("/", headers={"Sec-Fetch-Dest": "document"})
        assert await response.read() == AS_XHTML
    assert len(asked) == 1  # the second was the kept page, served without asking the origin
