"""A Host with the root's trailing dot (``a.test.``, the fully qualified spelling) is the site
``a.test``, as for nginx and browsers; the origin is told the name without the dot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from refract.proxy.sites import SiteRouter
from refract.rules.config import SiteConfig, load_config
from refract.rules.problems import InvalidFileError
from tests.conftest import BROWSER, ProxyFactory

NAVIGATION = {"User-Agent": BROWSER, "Sec-Fetch-Dest": "document"}


def site(host: str, **fields: Any) -> SiteConfig:
    return SiteConfig.model_validate({"host": host, "origin": "http://127.0.0.1:9", **fields})


async def matched_key(sites: list[SiteConfig], host: str) -> str | None:
    router = SiteRouter(sites, max_header_bytes=8190)
    try:
        found = router.match(host)
        return found.key if found else None
    finally:
        await router.close()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("a.test.", "a-test"),
        ("A.TEST.", "a-test"),
        ("a.test.:8080", "a-test"),
        ("b.test", "b-test"),  # written "b.test." in the config
    ],
)
async def test_a_name_with_its_root_dot_reaches_the_site_of_that_name(
    host: str, expected: str
) -> None:
    assert await matched_key([site("a.test"), site("b.test.")], host) == expected


async def test_a_name_with_its_root_dot_is_not_taken_by_the_catch_all() -> None:
    assert await matched_key([site("*"), site("a.test")], "a.test.") == "a-test"


async def test_only_one_trailing_dot_is_the_root() -> None:
    sites = [site("a.test")]
    assert await matched_key(sites, "a.test.") == "a-test"
    assert await matched_key(sites, "a.test..") is None


def test_a_name_and_its_fully_qualified_spelling_are_one_host_in_the_config(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[[sites]]\nhost = "a.test"\nid = "one"\norigin = "http://127.0.0.1:9"\n\n'
        '[[sites]]\nhost = "b.test"\naliases = ["A.test."]\nid = "two"\norigin = "http://o"\n'
    )
    with pytest.raises(InvalidFileError, match=r'sites: host "A\.test\." is served by two sites'):
        load_config(path, environ={})


async def test_a_named_site_answers_its_fully_qualified_name(proxy: ProxyFactory) -> None:
    client = await proxy(site={"host": "www.example.com", "host_header": "public"})
    response = await client.get("/echo", headers={**NAVIGATION, "Host": "www.example.com."})
    assert response.status == 200
    assert dict((await response.json())["headers"])["Host"] == "www.example.com"


@pytest.mark.parametrize(
    ("visitor_host", "origin_host"),
    [("tenant.test.", "tenant.test"), ("Tenant.Test.:8443", "Tenant.Test:8443")],
)
async def test_the_origin_is_told_the_visitors_host_without_the_root_dot(
    proxy: ProxyFactory, visitor_host: str, origin_host: str
) -> None:
    client = await proxy(site={"host": "*", "host_header": "public"})
    response = await client.get("/echo", headers={**NAVIGATION, "Host": visitor_host})
    assert dict((await response.json())["headers"])["Host"] == origin_host
