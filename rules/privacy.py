"""How a client's IP address may appear in logs (``privacy.ip_in_logs``): the one policy the
proxy's and the admin's logs share."""

from __future__ import annotations

import ipaddress


def anonymize_ip(address: str, mode: str) -> str | None:
    """Keep the network, drop the host: /24 for IPv4, /48 for IPv6 (privacy.ip_in_logs)."""
    if mode == "none" or not address:
        return None
    if mode == "full":
        return address
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return None
    prefix = 24 if parsed.version == 4 else 48
    return str(ipaddress.ip_network(f"{parsed}/{prefix}", strict=False).network_address)
