"""IP addresses and ranges as accounts hold them: ranges checked and written canonically,
addresses turned into integers for the account index's bisect."""

from __future__ import annotations

import ipaddress
import socket
from typing import Final

from refract.rules.problems import FieldError

_V4_MAPPED: Final = b"\0" * 10 + b"\xff\xff"


def normalise_ip_range(text: str) -> str:
    """``203.0.113.0/24`` or a single address -> the canonical CIDR string.

    Host bits must be zero: ``203.0.113.7/24`` is usually a typo for one address or for the
    network, and guessing which would attribute the wrong visitors.
    """
    value = text.strip()
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as error:
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise FieldError(
                f"{value!r} is not an IP range",
                "write CIDR ranges such as 203.0.113.0/24 or 2001:db8::/32, or single addresses",
            ) from error
        raise FieldError(
            f"{value!r} has host bits set",
            f"did you mean {network}? (or {network.network_address} alone, as "
            f"{network.network_address}/{network.max_prefixlen})",
        ) from error


def ip_key(ip: str) -> tuple[int, int] | None:
    """(family, integer) of an address, IPv4-mapped IPv6 as IPv4; None when not an address.

    ``inet_pton`` rather than ``ipaddress``: it is strict and about five times faster, and
    this runs for every proxied request.
    """
    try:
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, ip))
    except (OSError, ValueError, TypeError):
        pass
    try:
        packed = socket.inet_pton(socket.AF_INET6, ip)
    except (OSError, ValueError, TypeError):
        return None
    if packed[:12] == _V4_MAPPED:
        return 4, int.from_bytes(packed[12:])
    return 6, int.from_bytes(packed)
