"""Values a visitor or an upstream writes into forwarding and negotiation headers, hostile
ones included: what the proxy takes from them."""

from __future__ import annotations

import ipaddress

import pytest

from refract.proxy.codings import accepted_codings
from refract.proxy.forwarding import TrustedProxies
from refract.rules.config import SiteConfig

SITE = SiteConfig.model_validate({"host": "www.example.com", "origin": "http://127.0.0.1:9"})
TRUSTED = TrustedProxies([ipaddress.ip_network("10.0.0.0/8")])


@pytest.mark.parametrize(
    ("forwarded_host", "taken"),
    [
        ("www.example.com", "www.example.com"),
        ("www.example.com:8443", "www.example.com:8443"),
        ("[2001:db8::1]:443", "[2001:db8::1]:443"),
        ('evil.example/"><script>', "www.example.com"),
        ("user@evil.example", "www.example.com"),
        ("evil.example\r\nSet-Cookie: x=1", "www.example.com"),
        ("a b", "www.example.com"),
        ("x" * 300, "www.example.com"),
    ],
)
def test_only_a_host_and_port_is_taken_from_a_trusted_x_forwarded_host(
    forwarded_host: str, taken: str
) -> None:
    headers = {"X-Forwarded-Host": forwarded_host}
    view = TRUSTED.client_view("10.0.0.1", "http", "www.example.com", headers, SITE)
    assert view.host == taken


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip;q=nan", {"gzip": 0.0}),
        ("gzip;q=inf", {"gzip": 0.0}),
        ("gzip;q=-1", {"gzip": 0.0}),
        ("gzip;q=" + "9" * 400, {"gzip": 0.0}),
        ("br;q=5", {"br": 1.0}),
        ("gzip;q=0.5", {"gzip": 0.5}),
    ],
)
def test_accept_encoding_weights_are_bounded(header: str, expected: dict[str, float]) -> None:
    assert accepted_codings(header) == expected
