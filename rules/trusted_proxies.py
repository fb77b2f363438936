"""Which peers' word about the client is believed: ``server.trusted_proxies`` (a CDN or load
balancer in front of Refract). The proxy and the admin read X-Forwarded-For and
X-Forwarded-Proto through this one rule.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


class TrustedNetworks:
    def __init__(self, networks: Sequence[IPNetwork]) -> None:
        self._networks = tuple(networks)

    def __contains__(self, address: str) -> bool:
        if not self._networks:
            return False
        parsed = parse_ip(address)
        return parsed is not None and any(parsed in network for network in self._networks)

    def client_address(self, peer: str, forwarded_for: str) -> str:
        """The peer's address, or, from a trusted peer, the nearest untrusted hop of
        X-Forwarded-For (trusted proxies may be chained)."""
        return self.client_behind(peer, forwarded_for) if peer in self else peer

    def client_behind(self, trusted_peer: str, forwarded_for: str) -> str:
        """``client_address`` for a peer already found trusted."""
        client = trusted_peer
        for hop in reversed([hop.strip() for hop in forwarded_for.split(",") if hop.strip()]):
            client = hop
            if hop not in self:
                break
        return client


def forwarded_value(headers: Mapping[str, str], name: str) -> str:
    """The first value of a forwarding header (the proxy nearest the client wrote it)."""
    return (headers.get(name) or "").split(",")[0].strip()
