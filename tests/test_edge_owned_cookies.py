"""Refract owns its cookie names (proxy/handler.py, IdentityPolicy.owned_names): an origin's
Set-Cookie for the visitor, session, QA override or admin cookie never reaches the browser,
where, sent after ours, it would replace the visitor's id on every page. Counted on every
answer, logged once per name and site; the origin's other cookies, the consent cookie its
banner writes included, pass as they came."""

from __future__ import annotations

import logging

import pytest

from refract.proxy import metrics
from tests.conftest import BROWSER, ProxyFactory
from tests.support.metrics import counter
from tests.support.raw_origin import RawOrigin, page_answer, raw_origin_fixture  # noqa: F401

NAVIGATION = {"User-Agent": BROWSER, "Sec-Fetch-Dest": "document"}
PAGE = b"<html><body><h1>page</h1></body></html>"
OWNED = [
    b"rf_vid=legacy123; Path=/; Max-Age=999999",
    b"rf_sid=0123456789abcdef; Path=/",
    b"rf_force=edits:bold; Path=/",
    b"rf_admin=stolen; Path=/",
    b"__Host-rf_admin=stolen; Path=/; Secure",
    b" rf_vid =spaced; Path=/",
]
THEIRS = [
    b"app_session=s1; Path=/; HttpOnly",
    b"rf_consent=yes; Path=/",  # privacy.consent_cookie: the site's banner writes it
    b"rf_vid_legacy=1; Path=/",
    b"rf_vid",  # no "=": a cookie without a name, whose value is "rf_vid"
]
FIELDS = b"".join(b"Set-Cookie: " + value + b"\r\n" for value in [*OWNED, *THEIRS])


def set_cookies(values: list[str], name: str) -> list[str]:
    return [value for value in values if value.startswith(f"{name}=")]


@pytest.mark.parametrize("content_type", [b"text/html", b"text/css"], ids=["page", "asset"])
async def test_the_origins_cookies_named_as_ours_are_dropped_and_its_others_kept(
    proxy: ProxyFactory, raw_origin: RawOrigin, content_type: bytes
) -> None:
    client = await proxy(site={"origin": await raw_origin(page_answer(PAGE, FIELDS, content_type))})
    response = await client.get("/x", headers=NAVIGATION)
    assert response.status == 200
    sent = response.headers.getall("Set-Cookie", [])
    assert [value for value in sent if "legacy123" in value or "stolen" in value] == []
    assert not [value for value in sent if "edits:bold" in value or "spaced" in value]
    assert [value.encode() for value in sent if not value.startswith(("rf_vid=", "rf_sid="))] == (
        THEIRS
    )


async def test_a_visitor_keeps_the_id_refract_gave_them(
    proxy: ProxyFactory, raw_origin: RawOrigin
) -> None:
    client = await proxy(site={"origin": await raw_origin(page_answer(PAGE, FIELDS))})
    response = await client.get("/x", headers=NAVIGATION)
    [visitor] = set_cookies(response.headers.getall("Set-Cookie"), "rf_vid")
    [session] = set_cookies(response.headers.getall("Set-Cookie"), "rf_sid")
    assert "." in visitor.partition(";")[0]  # signed: ours, the only one the browser keeps
    assert "0123456789abcdef" not in session


async def test_each_dropped_cookie_is_counted_and_each_name_logged_once(
    proxy: ProxyFactory, raw_origin: RawOrigin, caplog: pytest.LogCaptureFixture
) -> None:
    client = await proxy(site={"origin": await raw_origin(page_answer(PAGE, FIELDS))})
    before = counter(metrics.UPSTREAM_ERRORS, site="test", reason="owned_cookie")
    caplog.set_level(logging.WARNING, logger="refract.proxy")
    for _ in range(3):
        await client.get("/x", headers=NAVIGATION)
    assert counter(metrics.UPSTREAM_ERRORS, site="test", reason="owned_cookie") == before + 3 * len(
        OWNED
    )
    logged = [record.getMessage() for record in caplog.records if "Refract's" in record.msg]
    owned = ["rf_vid", "rf_sid", "rf_force", "rf_admin", "__Host-rf_admin"]
    assert sorted(logged) == sorted(
        f"origin set the cookie {name}, which is Refract's; dropped (logged once)" for name in owned
    )
