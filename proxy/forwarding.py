"""Who the visitor is on the network, and what the origin is told about it.

Forwarding headers are only believed from peers in ``trusted_proxies`` (a CDN or load
balancer in front of Refract); from anyone else they are replaced, and other claims of the
client's address (X-Real-IP and the like) dropped, since a visitor can write any it likes.
How X-Forwarded-For, X-Forwarded-Proto/-Host and Forwarded are read (all their lines, the two
chains together, IPv4-mapped addresses) is rules/trusted_proxies.py's, shared with the admin.
A trusted peer's chains go on to the origin with all their lines joined, their last
``MAX_HOPS`` hops (a Forwarded line that cannot be read as ``for=unknown``), and our hop after.

The host Refract names to others (in X-Forwarded-Host, Forwarded and redirects rewritten to
the public site) is one of the site's own names: on a ``host = "*"`` site, which any Host
reaches, that is its configured ``public_host``, a trusted proxy's X-Forwarded-Host, or none.

A host a visitor or a trusted proxy names is taken only when it is a host[:port] (``is_host``):
a ``host = "*"`` site is reached by any Host, and whatever reads one later (routing, cookies,
the origin's Host) may then rely on it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

from refract.rules.config import SiteConfig
from refract.rules.trusted_proxies import (
    TrustedNetworks,
    forwarded_elements,
    forwarded_pair_value,
    normal_address,
    parse_ip,
    x_forwarded_for_hops,
)

# Headers in which proxies tell an origin who the client is, besides the X-Forwarded-* family.
_CLIENT_ADDRESS_CLAIMS = frozenset(
    {
        "x-real-ip",
        "x-client-ip",
        "client-ip",
        "true-client-ip",
        "cf-connecting-ip",
        "fastly-client-ip",
        "x-cluster-client-ip",
    }
)
# What a front proxy says of how the client reached it (the host, the scheme, the URL before
# a rewrite), which origins obey as they do X-Forwarded-*: a visitor's own would pick the page
# the origin makes, under a URL the origin cache keys without them.
_CLIENT_REQUEST_CLAIMS = frozenset(
    {
        "x-host",
        "x-original-host",
        "x-scheme",
        "x-url-scheme",
        "front-end-https",
        "x-original-url",
        "x-rewrite-url",
    }
)


@dataclass(frozen=True, slots=True)
class ClientView:
    """The visitor as the origin should see it."""

    ip: str
    scheme: str
    host: str  # the host the visitor asked for (their Host, or a trusted proxy's word)
    peer_trusted: bool
    public_host: str  # the host Refract may name to others; "" when none is known


class TrustedProxies(TrustedNetworks):
    """The trusted networks and what the proxy makes of a request through them."""

    def client_view(
        self, peer: str, scheme: str, host: str, headers: Mapping[str, str], site: SiteConfig
    ) -> ClientView:
        """Resolve the visitor's address, scheme and host through trusted proxies."""
        told = self.forwarding(peer, headers)
        if not told.peer_trusted:
            return ClientView(told.client, scheme, host, False, _public_host(site, host, ""))
        # it lands in Location and Host: only a host[:port] is taken
        forwarded_host = told.host if is_host(told.host) else ""
        return ClientView(
            ip=told.client,
            scheme=told.scheme or scheme,
            host=forwarded_host or host,
            peer_trusted=True,
            public_host=_public_host(site, forwarded_host or host, forwarded_host),
        )


# A host name (underscores too: Docker and other internal names carry them), an IPv4 address
# or a bracketed IPv6 one, with an optional port: nothing that could carry a path,
# credentials, quotes or spaces into a header built from it.
_HOST = re.compile(
    r"(?:[A-Za-z0-9_-]{1,63}(?:\.[A-Za-z0-9_-]{1,63})*\.?|\[(?P<ipv6>[0-9A-Fa-f:.]+)\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
)
_MAX_PORT = 65535


def is_host(value: str) -> bool:
    """Is ``value`` a host[:port] (RFC 9110 section 7.2), one URL parsers take as it is? The
    brackets must hold an IPv6 address and the port be one, or yarl refuses it later."""
    match = _HOST.fullmatch(value)
    if match is None:
        return False
    if match["ipv6"] is not None and not isinstance(parse_ip(match["ipv6"]), ipaddress.IPv6Address):
        return False
    return match["port"] is None or int(match["port"]) <= _MAX_PORT


def host_name(host: str) -> str:
    """The name in a host[:port], lower-cased and without the port (an IPv6 address without
    its brackets), read from the text: whatever ``host`` holds, nothing is raised."""
    if host.startswith("["):
        return host[1:].partition("]")[0].lower()
    return host.rpartition(":")[0].lower() if ":" in host else host.lower()


def _public_host(site: SiteConfig, host: str, forwarded_host: str) -> str:
    """A named site was reached by one of its names; a ``*`` site by anything at all."""
    if site.host != "*":
        return host
    return site.public_host or forwarded_host


def is_client_claim(name: str) -> bool:
    """Does a (lower-case) field name claim who the client is, or how it reached us? From a
    peer we do not trust, none reaches the origin (ours replace the X-Forwarded-* we set)."""
    return (
        name.startswith("x-forwarded-")
        or name in _CLIENT_ADDRESS_CLAIMS
        or name in _CLIENT_REQUEST_CLAIMS
    )


def forwarding_headers(incoming: Mapping[str, str], peer: str, view: ClientView) -> dict[str, str]:
    """X-Forwarded-For/-Proto/-Host and Forwarded (RFC 7239) for the origin request; the host
    only when Refract knows a public one to name."""
    peer = normal_address(peer)
    chain = x_forwarded_for_hops(incoming) if view.peer_trusted else []
    elements = forwarded_elements(incoming) if view.peer_trusted else []
    host = {"host": view.public_host} if view.public_host else {}
    ours = {"for": _forwarded_node(peer), **host, "proto": view.scheme}
    headers = {
        "X-Forwarded-For": ", ".join([*chain, peer]),
        "X-Forwarded-Proto": view.scheme,
        "Forwarded": ", ".join(_forwarded_element(element) for element in [*elements, ours]),
    }
    if view.public_host:
        headers["X-Forwarded-Host"] = view.public_host
    return headers


def _forwarded_node(address: str) -> str:
    parsed = parse_ip(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return f"[{parsed}]"
    return address if parsed is not None else "unknown"


def _forwarded_element(element: Mapping[str, str]) -> str:
    return ";".join(f"{name}={forwarded_pair_value(value)}" for name, value in element.items())
