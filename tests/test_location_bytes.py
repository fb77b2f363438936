"""The URLs Refract writes into a Location keep the bytes they were made of: an origin's
redirect naming itself changes only its scheme and authority, and a split-URL test's redirect
carries the visitor's query string as the visitor sent it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from yarl import URL

from tests.conftest import BROWSER, ProxyFactory
from tests.support.raw_origin import RawOrigin, raw_origin_fixture  # noqa: F401
from tests.support.rules import everyone_redirected

NAVIGATION = {"User-Agent": BROWSER, "Sec-Fetch-Dest": "document"}


def redirect_naming_itself(field: bytes, rest: bytes) -> Callable[[str, bytes], bytes]:
    """An origin's 302 whose ``field`` is the origin's own URL followed by ``rest``."""

    def answer(origin: str, _: bytes) -> bytes:
        named = origin.encode() + rest
        return (
            b"HTTP/1.1 302 Found\r\n" + field + b": " + named + b"\r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n"
        )

    return answer


def field_bytes(raw_headers: tuple[tuple[bytes, bytes], ...], name: bytes) -> bytes:
    [value] = [value for field, value in raw_headers if field.lower() == name.lower()]
    return value


@pytest.mark.parametrize("field", [b"Location", b"Content-Location"])
@pytest.mark.parametrize(
    ("public_host", "base"),
    [(None, b""), ("www.example.com", b"http://www.example.com")],
    ids=["relative", "public-host"],
)
@pytest.mark.parametrize(
    "rest",
    [
        b"/caf\xe9",
        b"/go?next=%2Fdocs%3Fa%3D1&sig=abc",
        b"/x?cb=%3F",
        b"/a#%zz",
        b"/a%2fb;p=1/%7e",
        b"/%E2%82%AC?q=%C3%A9+x&empty=",
    ],
    ids=[
        "windows-1252-byte",
        "encoded-query",
        "encoded-question-mark",
        "malformed-escape-in-fragment",
        "encoded-slash-and-lowercase-escapes",
        "utf-8-escapes-and-plus",
    ],
)
async def test_a_location_naming_the_origin_keeps_every_byte_after_its_authority(
    proxy: ProxyFactory,
    raw_origin: RawOrigin,
    field: bytes,
    public_host: str | None,
    base: bytes,
    rest: bytes,
) -> None:
    site: dict[str, str] = {"origin": await raw_origin(redirect_naming_itself(field, rest))}
    if public_host is not None:
        site["public_host"] = public_host
    client = await proxy(site=site)
    response = await client.get("/old", headers=NAVIGATION, allow_redirects=False)
    assert field_bytes(response.raw_headers, field) == base + rest


@pytest.mark.parametrize(
    ("rest", "expected"),
    [(b"", b"/"), (b"?q=%3D", b"/?q=%3D"), (b"#top", b"/#top")],
    ids=["nothing", "query", "fragment"],
)
async def test_a_location_naming_only_the_origin_becomes_its_root(
    proxy: ProxyFactory, raw_origin: RawOrigin, rest: bytes, expected: bytes
) -> None:
    client = await proxy(
        site={"origin": await raw_origin(redirect_naming_itself(b"Location", rest))}
    )
    response = await client.get("/old", headers=NAVIGATION, allow_redirects=False)
    assert field_bytes(response.raw_headers, b"Location") == expected


SPLIT_RULES = everyone_redirected("/landing-b")


@pytest.fixture
def split_rules(tmp_path: Path) -> Path:
    """Every visitor of /page is sent to /landing-b."""
    directory = tmp_path / "split-rules"
    directory.mkdir()
    (directory / "rules.toml").write_text(SPLIT_RULES)
    return directory


@pytest.mark.parametrize(
    "query",
    [
        "utm_campaign=Q1%20%26%20Q2&email=a%2Bb%40example.com&next=%2Fx%3Fy%3D1",
        "token=ab%2F%2B%3D&expires=1",
        "utm_term=a%20b+c",
        "q=caf%E9",
        "q=%7Euser&x=%zz&next=%2fx",
    ],
    ids=[
        "encoded-reserved",
        "signed-token",
        "space-and-plus",
        "latin-1-escape",
        "unreserved-malformed-and-lowercase-escapes",
    ],
)
async def test_a_split_url_redirect_carries_the_visitors_query_as_sent(
    proxy: ProxyFactory, split_rules: Path, query: str
) -> None:
    client = await proxy(rules={"directory": str(split_rules)})
    response = await client.get(
        URL(f"/page?{query}", encoded=True), headers=NAVIGATION, allow_redirects=False
    )
    assert response.status == 302
    assert response.headers["Location"] == f"/landing-b?{query}"
