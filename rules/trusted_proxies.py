"""Which peers' word about the client is believed: ``server.trusted_proxies`` (a CDN or load
balancer in front of Refract), and what that word is. The proxy and the admin read
X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host and Forwarded (RFC 7239) here alone.

* **Every line.** Several lines of a list field are one comma-joined list (RFC 9110 section
  5.3), and a balancer such as HAProxy (``option forwardfor``) adds its own line after the
  ones the client sent: all of them are read, in order. Reading the first alone would believe
  whatever the visitor wrote.
* **The walk.** A chain is read from the right (the hop our trusted peer saw) past trusted
  hops; the first hop that is not trusted is the client, and when every hop read is trusted,
  the farthest one. At most ``MAX_HOPS`` hops are read. A hop that names no address
  (``unknown``, an obfuscated ``_name``, anything else) is never trusted: it is the client, as
  written (``unknown`` when longer than ``MAX_NODE`` characters).
* **X-Forwarded-For and Forwarded together.** A proxy writes one of them, or both; the one it
  does not write reaches us as the visitor wrote it. So when a trusted peer's request carries
  both, the two chains are walked side by side and believed only as far as they name the same
  hops: where they differ, or one of them ends, the client is the last hop both named (the peer
  when there is none). A visitor can therefore never choose an address through either header;
  a proxy that writes one of them should remove the other (a client's own proxy may have
  written it), or every visitor who sends it is taken for the peer. When only one is sent, it
  is walked alone. A Forwarded whose elements name no ``for=`` tells nothing of the client and
  is left out of the walk (a line that cannot be read names one: ``unknown``, below).
* **Forwarded's syntax.** Elements and ``;``-separated pairs, values a token or a quoted
  string; ``for=`` a node: IPv4 or ``[IPv6]``, each with an optional port (a number or an
  obfuscated ``_port``), ``unknown`` or an obfuscated ``_name``. The parser is strict about the
  structure (quotes closed, ``name=value`` pairs, a parameter once per element) and lenient
  about a node's characters (``for=192.0.2.1:80`` unquoted is read). A line it cannot read, or
  one longer than ``MAX_LINE`` characters, counts as one hop nobody knows (``unknown``): the
  walk stops there, and junk a visitor sends ahead of a proxy's line does not hide that line.
* **Scheme and host.** X-Forwarded-Proto's and X-Forwarded-Host's first value when sent, else
  the ``proto=`` and ``host=`` of the Forwarded element that named the client (the one the
  proxy nearest the visitor wrote; the first element when Forwarded names no ``for=``). A
  scheme is ``http`` or ``https``; the proxy checks a host before it takes one.
* **IPv4-mapped IPv6.** A dual-stack proxy writes an IPv4 peer as ``::ffff:a.b.c.d``: such an
  address is compared, and returned, as the IPv4 one; a trusted range written so is its IPv4
  range.
"""

from __future__ import annotations

import ipaddress
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from multidict import MultiMapping

from refract.rules.ip_ranges import IPAddress, IPNetwork, unmapped, unmapped_network

MAX_HOPS = 16  # hops of a chain read, from the right; farther ones are neither walked nor sent on
MAX_LINE = 4096  # characters of one Forwarded line read; a longer line is one unknown hop
MAX_NODE = 64  # characters of a hop that names no address kept as the client
_SCHEMES = frozenset({"http", "https"})
_UNKNOWN = "unknown"
# RFC 9110 token characters; an unquoted value may also hold a node's ':' and brackets.
_TCHAR = frozenset("!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits)
_VALUE_CHAR = _TCHAR | frozenset(":[]")
_OBFUSCATED = frozenset(string.ascii_letters + string.digits + "._-")
_MAX_PORT = 65535


def parse_ip(text: str) -> IPAddress | None:
    """An address, bare or in brackets; None when ``text`` is no address."""
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def normal_address(text: str) -> str:
    """``text`` as the address is written canonically, IPv4-mapped IPv6 as IPv4; as it is
    when it is no address."""
    parsed = parse_ip(text)
    return text if parsed is None else str(unmapped(parsed))


@dataclass(frozen=True, slots=True)
class Forwarding:
    """What a request says of its client, believed as far as ``server.trusted_proxies`` allow."""

    client: str  # the visitor's address (or the hop that names them); the peer's when untrusted
    scheme: str  # "http" or "https" as a trusted proxy named it; "" when none did
    host: str  # the host a trusted proxy named, unchecked; "" when none did
    peer_trusted: bool


class TrustedNetworks:
    def __init__(self, networks: Sequence[IPNetwork]) -> None:
        self._networks = tuple(unmapped_network(network) for network in networks)

    def __contains__(self, address: str) -> bool:
        if not self._networks:
            return False
        parsed = parse_ip(address)
        if parsed is None:
            return False
        parsed = unmapped(parsed)
        return any(parsed in network for network in self._networks)

    def client_address(self, peer: str, headers: Mapping[str, str]) -> str:
        """The peer's address, or, from a trusted peer, the client its chains name."""
        return self.forwarding(peer, headers).client

    def forwarding(self, peer: str, headers: Mapping[str, str]) -> Forwarding:
        """The client's address, scheme and host: the peer's own unless the peer is trusted."""
        if peer not in self:
            return Forwarding(normal_address(peer), "", "", False)
        elements = forwarded_elements(headers)
        forwarded_hops = [node_address(e.get("for", _UNKNOWN)) for e in elements]
        if not any("for" in element for element in elements):
            forwarded_hops = []  # it names no client: left out of the walk
        x_forwarded_hops = [node_address(hop) for hop in x_forwarded_for_hops(headers)]
        client, depth = self.client_behind(peer, x_forwarded_hops, forwarded_hops)
        if forwarded_hops:
            element = elements[-depth] if depth else {}
        else:
            element = elements[0] if elements else {}
        scheme = first_value(headers, "X-Forwarded-Proto") or element.get("proto", "")
        host = first_value(headers, "X-Forwarded-Host") or element.get("host", "")
        scheme = scheme.lower()
        return Forwarding(client, scheme if scheme in _SCHEMES else "", host, True)

    def client_behind(self, trusted_peer: str, *chains: Sequence[str]) -> tuple[str, int]:
        """The client behind a trusted peer, and how many hops back it was found (0: the peer).

        Each chain is a list of hops (``node_address``), nearest last; empty ones are left
        out. Several are walked side by side and believed only while they name the same hop.
        """
        walked = [chain for chain in chains if chain]
        client, depth = normal_address(trusted_peer), 0
        if not walked:
            return client, depth
        for back in range(1, min(MAX_HOPS, *(len(chain) for chain in walked)) + 1):
            hop = walked[0][-back]
            if any(chain[-back] != hop for chain in walked[1:]):
                break  # they part here: neither is believed farther
            client, depth = hop, back
            if hop not in self:
                break
        return client, depth


def field_lines(headers: Mapping[str, str], name: str) -> list[str]:
    """Every line of field ``name``, in order; a plain mapping holds one at most."""
    if isinstance(headers, MultiMapping):
        return list(headers.getall(name, ()))
    value = headers.get(name)
    return [] if value is None else [value]


def first_value(headers: Mapping[str, str], name: str) -> str:
    """The first value of a forwarding field (the proxy nearest the client wrote it)."""
    for line in field_lines(headers, name):
        for value in line.split(","):
            if value.strip():
                return value.strip()
    return ""


def x_forwarded_for_hops(headers: Mapping[str, str]) -> list[str]:
    """The last ``MAX_HOPS`` hops of X-Forwarded-For, all of its lines, as written."""
    parts = ",".join(field_lines(headers, "X-Forwarded-For")).rsplit(",", MAX_HOPS)
    if len(parts) > MAX_HOPS:
        del parts[0]  # all the farther hops, unread
    return [hop for hop in (part.strip() for part in parts) if hop]


def forwarded_elements(headers: Mapping[str, str]) -> list[dict[str, str]]:
    """The last ``MAX_HOPS`` elements of Forwarded (RFC 7239), all of its lines: each a dict of
    lower-case parameter names to values, a line that cannot be read as ``{"for": "unknown"}``."""
    elements: list[dict[str, str]] = []
    for line in reversed(field_lines(headers, "Forwarded")):
        parsed = parse_forwarded(line) if len(line) <= MAX_LINE else None
        elements[:0] = [{"for": _UNKNOWN}] if parsed is None else parsed
        if len(elements) >= MAX_HOPS:
            break
    return elements[-MAX_HOPS:]


def parse_forwarded(line: str) -> list[dict[str, str]] | None:
    """The elements of one Forwarded line, or None when it is not one (RFC 7239 section 4:
    ``1#( [pair] *( ";" [pair] ) )``, ``pair = token "=" ( token / quoted-string )``). Empty
    elements are left out; space around separators is allowed."""
    elements: list[dict[str, str]] = []
    element: dict[str, str] = {}
    at, end = 0, len(line)
    while True:
        at = _skip_space(line, at)
        if at == end:
            break
        if line[at] in ",;":
            if line[at] == "," and element:
                elements.append(element)
                element = {}
            at += 1
            continue
        start = at
        while at < end and line[at] in _TCHAR:
            at += 1
        name = line[start:at].lower()
        at = _skip_space(line, at)
        if not name or at == end or line[at] != "=" or name in element:
            return None
        value, at = _value(line, _skip_space(line, at + 1))
        if value is None:
            return None
        element[name] = value
        at = _skip_space(line, at)
        if at < end and line[at] not in ",;":
            return None
    if element:
        elements.append(element)
    return elements


def _skip_space(line: str, at: int) -> int:
    while at < len(line) and line[at] in " \t":
        at += 1
    return at


def _value(line: str, at: int) -> tuple[str | None, int]:
    """A token or a quoted string (its backslash escapes undone) at ``at``, and where it ends."""
    end = len(line)
    if at < end and line[at] == '"':
        chars: list[str] = []
        at += 1
        while at < end:
            char = line[at]
            if char == "\\" and at + 1 < end:
                char, at = line[at + 1], at + 1
            elif char == '"':
                return "".join(chars), at + 1
            if (char < " " and char != "\t") or char == "\x7f":
                return None, at
            chars.append(char)
            at += 1
        return None, at  # not closed
    start = at
    while at < end and line[at] in _VALUE_CHAR:
        at += 1
    return (line[start:at] or None), at


def node_address(node: str) -> str:
    """The hop a node names (an X-Forwarded-For hop, or Forwarded's ``for=``): its address
    without port, canonical and IPv4-mapped IPv6 as IPv4; else the node itself (``unknown``, an
    obfuscated ``_name``, junk), ``unknown`` when longer than ``MAX_NODE``."""
    node = node.strip()
    address = _node_ip(node)
    if address is not None:
        return str(unmapped(address))
    if node.lower() == _UNKNOWN or not node or len(node) > MAX_NODE:
        return _UNKNOWN
    return node


def _node_ip(node: str) -> IPAddress | None:
    """``192.0.2.1``, ``192.0.2.1:80``, ``2001:db8::1``, ``[2001:db8::1]``, ``[2001:db8::1]:80``
    (a port a number or an obfuscated ``_port``); None for anything else."""
    if node.startswith("["):
        inside, bracket, rest = node[1:].partition("]")
        if not bracket or (rest and not (rest[0] == ":" and _is_port(rest[1:]))):
            return None
        address = _ip(inside)
        return address if isinstance(address, ipaddress.IPv6Address) else None
    if node.count(":") == 1:
        host, _, port = node.partition(":")
        address = _ip(host) if _is_port(port) else None
        return address if isinstance(address, ipaddress.IPv4Address) else None
    return _ip(node)


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _is_port(text: str) -> bool:
    if text.startswith("_"):
        return len(text) > 1 and all(char in _OBFUSCATED for char in text[1:])
    return 0 < len(text) <= 5 and text.isascii() and text.isdigit() and int(text) <= _MAX_PORT


def forwarded_pair_value(value: str) -> str:
    """A value as Forwarded writes it (RFC 7239 section 4): a token as it is, anything else
    (a ':' or other separator) a quoted string."""
    if value and all(char in _TCHAR for char in value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
