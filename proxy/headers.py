"""Header rules of a well-behaved reverse proxy (RFC 9110, RFC 9111, RFC 6265)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

# RFC 9110 section 7.6.1: connection-specific fields never cross a proxy.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

# CDN-targeted cache directives override Cache-Control at the edge (RFC 9213 and vendors').
_CDN_CACHE_HEADERS = re.compile(r"^(surrogate-control|(?:[a-z0-9-]+-)?cdn-cache-control)$", re.I)
_SHARED_CACHE_DIRECTIVES = frozenset({"public", "s-maxage", "proxy-revalidate"})
_COOKIE_DOMAIN = re.compile(r";\s*domain\s*=\s*([^;]*)", re.I)

Headers = CIMultiDict[str]
ReadHeaders = CIMultiDictProxy[str] | CIMultiDict[str]


def without_hop_by_hop(headers: ReadHeaders, drop: Iterable[str] = ()) -> Headers:
    """A copy without hop-by-hop fields, those named in Connection, and ``drop``."""
    named = {
        token.strip().lower()
        for value in headers.getall("Connection", ())
        for token in value.split(",")
    }
    excluded = HOP_BY_HOP | named | {name.lower() for name in drop}
    return CIMultiDict(
        (name, value) for name, value in headers.items() if name.lower() not in excluded
    )


def rewrite_location(value: str, origin: URL, public_base: str) -> str:
    """Point a redirect at the public site when the origin named itself in it."""
    try:
        target = URL(value)
    except ValueError:
        return value
    if not target.host or target.host.lower() != (origin.host or "").lower():
        return value
    if target.scheme and (target.scheme, target.port) != (origin.scheme, origin.port):
        return value
    if not target.scheme and target.explicit_port and target.port != origin.port:
        return value
    fragment = f"#{target.raw_fragment}" if target.raw_fragment else ""
    return f"{public_base}{target.raw_path_qs}{fragment}"


def domain_matches(host: str, domain: str) -> bool:
    """RFC 6265 section 5.1.3."""
    host, domain = host.lower(), domain.lower().lstrip(".")
    return host == domain or host.endswith("." + domain)


def rewrite_set_cookie(value: str, public_host: str, cookie_domain: str) -> str:
    """Keep an origin cookie usable on the public host.

    A Domain the public host does not belong to would make the browser drop the cookie; it
    becomes the configured cookie domain when that covers the host, else the cookie is made
    host-only. Everything else in the header stays as the origin wrote it.
    """
    match = _COOKIE_DOMAIN.search(value)
    if match is None or domain_matches(public_host, match[1].strip()):
        return value
    if cookie_domain and domain_matches(public_host, cookie_domain):
        return value[: match.start(1)] + cookie_domain + value[match.end(1) :]
    return value[: match.start()] + value[match.end() :]


def private_cache_control(value: str | None) -> str:
    """Cache-Control for a personalized page: the browser may keep it, no shared cache may."""
    directives = [d.strip() for d in (value or "").split(",") if d.strip()]
    kept = [
        d for d in directives if d.split("=")[0].strip().lower() not in _SHARED_CACHE_DIRECTIVES
    ]
    if not any(d.lower() in {"private", "no-store"} for d in kept):
        kept.insert(0, "private")
    return ", ".join(kept)


def is_cdn_cache_header(name: str) -> bool:
    return _CDN_CACHE_HEADERS.match(name) is not None


def add_vary(headers: Headers, field: str) -> None:
    tokens = [
        t.strip() for value in headers.getall("Vary", ()) for t in value.split(",") if t.strip()
    ]
    if "*" in tokens or field.lower() in (t.lower() for t in tokens):
        return
    headers.popall("Vary", None)
    headers["Vary"] = ", ".join([*tokens, field])


def has_directive(value: str | None, directive: str) -> bool:
    return directive in (d.strip().lower() for d in (value or "").split(","))
