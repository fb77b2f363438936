"""Who the visitor is on the network, and what the origin is told about it.

Forwarding headers are only believed from peers in ``trusted_proxies`` (a CDN or load
balancer in front of Refract); from anyone else they are replaced, since a visitor can write
any X-Forwarded-For it likes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class ClientView:
    """The visitor as the origin should see it."""

    ip: str
    scheme: str
    host: str
    peer_trusted: bool


class TrustedProxies:
    def __init__(self, networks: Sequence[IPNetwork]) -> None:
        self._networks = tuple(networks)

    def __contains__(self, address: str) -> bool:
        if not self._networks:
            return False
        parsed = _parse_ip(address)
        return parsed is not None and any(parsed in network for network in self._networks)

    def client_view(
        self, peer: str, scheme: str, host: str, headers: Mapping[str, str]
    ) -> ClientView:
        """Resolve the visitor's address, scheme and host through trusted proxies."""
        get = headers.get
        if peer not in self:
            return ClientView(peer, scheme, host, peer_trusted=False)
        chain = [hop.strip() for hop in (get("X-Forwarded-For") or "").split(",") if hop.strip()]
        client = peer
        for hop in reversed(chain):
            client = hop
            if hop not in self:
                break
        forwarded_scheme = (get("X-Forwarded-Proto") or "").split(",")[0].strip().lower()
        forwarded_host = (get("X-Forwarded-Host") or "").split(",")[0].strip()
        return ClientView(
            ip=client,
            scheme=forwarded_scheme if forwarded_scheme in {"http", "https"} else scheme,
            host=forwarded_host or host,
            peer_trusted=True,
        )


def forwarding_headers(incoming: Mapping[str, str], peer: str, view: ClientView) -> dict[str, str]:
    """X-Forwarded-For/-Proto/-Host and Forwarded (RFC 7239) for the origin request."""
    get = incoming.get
    xff = get("X-Forwarded-For") if view.peer_trusted else None
    forwarded = get("Forwarded") if view.peer_trusted else None
    element = f"for={_forwarded_node(peer)};host={_quote(view.host)};proto={view.scheme}"
    return {
        "X-Forwarded-For": f"{xff}, {peer}" if xff else peer,
        "X-Forwarded-Proto": view.scheme,
        "X-Forwarded-Host": view.host,
        "Forwarded": f"{forwarded}, {element}" if forwarded else element,
    }


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def _forwarded_node(address: str) -> str:
    parsed = _parse_ip(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return f'"[{parsed}]"'
    return address if parsed is not None else '"unknown"'


def _quote(value: str) -> str:
    """RFC 7239 section 4: a value with ':' or other separators must be a quoted-string."""
    if value and all(ch.isalnum() or ch in "-._~" for ch in value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
